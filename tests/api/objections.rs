//! Objections (异议处理) over HTTP: raise → routed to the authoritative department → confirm,
//! correct by hand (audited, written to the library) or resolve by a connector run.

use huitong::demo::POPULATION_CODE;
use huitong_tests::{MetaDb, SpawnOptions, TestApp, assert_problem, json_of, spawn_app, spawn_app_with};
use policy::Role;
use serde_json::{Value, json};
use sqlx::Connection;

const OBJECTIONS: &str = "/api/v1/objections";

fn objection_on(key: &str, field: Option<&str>) -> Value {
    let mut body = json!({
        "resource_code": POPULATION_CODE,
        "key": key,
        "reason": "与户籍档案不一致",
    });
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    body
}

async fn raise(app: &TestApp, role: &str, body: &Value) -> Value {
    json_of(app.post(OBJECTIONS, &app.key(role), body).await, 201).await
}

fn kinds(objection: &Value) -> Vec<String> {
    objection["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn ids(list: &Value) -> Vec<i64> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect()
}

/// The record as the provider (plain) sees it, with its library version.
async fn provider_view(app: &TestApp, key: &str) -> Value {
    json_of(app.lookup_population(key, "provider_admin").await, 200).await
}

/// A granted consumer disputes a name → 公安局 (authoritative for population) sees it,
/// corrects it → the consumer sees the outcome, the new value and the timeline; the
/// correction is in the audit trail.
async fn raise_route_correct(app: &TestApp) {
    let wjw = app.key("consumer_granted");
    let gaj = app.key("provider_admin");
    let key = app.sample_ids[0].clone();
    let before = provider_view(app, &key).await;

    let mut body = objection_on(&key, Some("name"));
    body["claimed_value"] = json!(" 欧阳 更正 ");
    let response = app.post(OBJECTIONS, &wjw, &body).await;
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let raised = json_of(response, 201).await;
    let id = raised["id"].as_i64().unwrap();
    assert_eq!(location, format!("{OBJECTIONS}/{id}"));
    assert_eq!(raised["status"], "open");
    assert_eq!(raised["raised_by_department"], "WJW");
    assert_eq!(raised["routed_to_department"], "GAJ");
    assert_eq!(raised["routing"], "field_authority");
    assert_eq!(raised["field"], "name");
    assert_eq!(raised["claimed_value"], "欧阳更正", "normalized as a name");
    assert_eq!(raised["record_key"], key.as_str());
    assert_eq!(raised["record_version"], before["library_version"]);
    assert_eq!(raised["overdue"], false);
    assert!(raised["due_at"].as_str().unwrap() > raised["created_at"].as_str().unwrap());
    assert_eq!(kinds(&raised), ["raised", "routed"]);
    // The value the consumer saw is not stored.
    assert!(!raised.to_string().contains(before["record"]["name"].as_str().unwrap()));

    // Who lists it: the raiser, the routed department, the platform; not a bystander.
    for (role, sees) in [
        ("consumer_granted", true),
        ("provider_admin", true),
        ("platform_admin", true),
        ("consumer_ungranted", false),
    ] {
        let list = json_of(app.get(OBJECTIONS, &app.key(role)).await, 200).await;
        assert_eq!(ids(&list).contains(&id), sees, "{role}: {list}");
    }
    assert_problem(
        app.get(&format!("{OBJECTIONS}/{id}"), &app.key("consumer_ungranted"))
            .await,
        403,
        "forbidden",
    )
    .await;

    // The routed department opens it: one `viewed` event, however often it looks.
    json_of(app.get(&format!("{OBJECTIONS}/{id}"), &gaj).await, 200).await;
    let seen = json_of(app.get(&format!("{OBJECTIONS}/{id}"), &gaj).await, 200).await;
    assert_eq!(kinds(&seen), ["raised", "routed", "viewed"]);

    let corrected = json_of(
        app.post(
            &format!("{OBJECTIONS}/{id}/correct"),
            &gaj,
            &json!({"values": {"name": "欧阳更正"}, "note": "按户籍档案更正"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(corrected["status"], "corrected");
    assert_eq!(corrected["resolution"], "manual");
    assert_eq!(corrected["answer"], "按户籍档案更正");
    let version = corrected["corrected_version"].as_i64().unwrap();
    assert!(version > raised["record_version"].as_i64().unwrap());

    // The consumer sees the outcome and the timeline, in time order.
    let outcome = json_of(app.get(&format!("{OBJECTIONS}/{id}"), &wjw).await, 200).await;
    assert_eq!(outcome["status"], "corrected");
    assert_eq!(outcome["corrected_version"], version);
    assert_eq!(kinds(&outcome), ["raised", "routed", "viewed", "corrected"]);
    let times: Vec<&str> = outcome["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(outcome["events"][3]["department"], "GAJ");
    assert_eq!(outcome["events"][3]["detail"]["fields"], json!(["name"]));

    // The new value through the exchange API: verified by the consumer, plain to the provider.
    let verified = json_of(
        app.post(
            &format!("/api/v1/exchange/{POPULATION_CODE}/verify"),
            &wjw,
            &json!({"key": key, "claims": {"name": "欧阳更正"}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(verified["results"]["name"], "match", "{verified}");
    let after = provider_view(app, &key).await;
    assert_eq!(after["record"]["name"], "欧阳更正");
    assert_eq!(after["library_version"], version);
    assert_eq!(
        after["record"]["address"], before["record"]["address"],
        "other fields kept"
    );

    // The correction is in the audit trail, and so is the raise.
    let audit = json_of(
        app.get(&format!("/api/v1/audit?resource={POPULATION_CODE}&limit=1000"), &gaj)
            .await,
        200,
    )
    .await;
    let records = audit["items"].as_array().unwrap();
    let correction = records
        .iter()
        .find(|r| r["endpoint"] == "POST /api/v1/objections/{id}/correct")
        .unwrap_or_else(|| panic!("no correction audited: {audit}"));
    assert_eq!(correction["outcome"], "allowed");
    assert_eq!(correction["department"], "GAJ");
    assert_eq!(correction["status"], 200);
    assert!(
        records
            .iter()
            .any(|r| r["endpoint"] == "POST /api/v1/objections" && r["department"] == "WJW")
    );

    // Final: no second answer.
    for (action, body) in [
        ("correct", json!({"values": {"name": "再次更正"}})),
        ("confirm", json!({"answer": "数据无误"})),
        ("resolve", json!({"library_version": version})),
    ] {
        assert_problem(
            app.post(&format!("{OBJECTIONS}/{id}/{action}"), &gaj, &body).await,
            409,
            "invalid_state",
        )
        .await;
    }
}

huitong_tests::on_both_databases! {
    objection_round_trip => raise_route_correct;
}

#[tokio::test]
async fn a_confirmed_objection_carries_the_answer_and_only_the_routed_department_answers() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let key = app.sample_ids[1].clone();
    // The whole record: routed to the resource's provider.
    let raised = raise(&app, "consumer_granted", &objection_on(&key, None)).await;
    let id = raised["id"].as_i64().unwrap();
    assert_eq!(raised["routing"], "resource_provider");
    assert_eq!(raised["routed_to_department"], "GAJ");
    assert_eq!(raised["field"], Value::Null);
    let confirm = format!("{OBJECTIONS}/{id}/confirm");
    let answer = json!({"answer": "经核查户籍档案，数据无误"});

    let mzj_officer = app.issue_key(Role::ProviderAdmin, Some("MZJ")).await;
    for (key, status, code) in [
        (app.key("consumer_granted"), 403, "forbidden"),
        (mzj_officer.clone(), 403, "forbidden"),
        (app.key("platform_admin"), 403, "forbidden"),
    ] {
        assert_problem(app.post(&confirm, &key, &answer).await, status, code).await;
    }
    for path in ["correct", "resolve"] {
        let body = if path == "correct" {
            json!({"values": {"name": "他人更正"}})
        } else {
            json!({"library_version": 1})
        };
        assert_problem(
            app.post(&format!("{OBJECTIONS}/{id}/{path}"), &mzj_officer, &body)
                .await,
            403,
            "forbidden",
        )
        .await;
    }
    let body = assert_problem(
        app.post(&confirm, &app.key("provider_admin"), &json!({"answer": "  "}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "answer");

    let confirmed = json_of(app.post(&confirm, &app.key("provider_admin"), &answer).await, 200).await;
    assert_eq!(confirmed["status"], "confirmed");
    let seen = json_of(
        app.get(&format!("{OBJECTIONS}/{id}"), &app.key("consumer_granted"))
            .await,
        200,
    )
    .await;
    assert_eq!(seen["status"], "confirmed");
    assert_eq!(seen["answer"], "经核查户籍档案，数据无误");
    assert!(seen["answered_at"].as_str().is_some());
    assert_eq!(kinds(&seen), ["raised", "routed", "confirmed"]);
    assert_problem(
        app.post(&confirm, &app.key("provider_admin"), &answer).await,
        409,
        "invalid_state",
    )
    .await;
}

/// Who may raise an objection on a population record: whoever may read it through the
/// exchange policy.
const RAISERS: &[(Option<&str>, u16, &str)] = &[
    (Some("consumer_granted"), 201, ""),
    (Some("provider_admin"), 201, ""),
    (Some("consumer_ungranted"), 403, "no_grant"),
    (Some("platform_admin"), 403, "role_forbidden"),
    (Some("open_data_developer"), 403, "role_forbidden"),
    (None, 401, "unauthenticated"),
];

#[tokio::test]
async fn only_a_reader_of_the_record_may_object_to_it() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let body = objection_on(&app.sample_ids[2], Some("gender"));
    for (role, status, code) in RAISERS {
        let mut request = app.client.post(format!("{}{OBJECTIONS}", app.address)).json(&body);
        if let Some(role) = role {
            request = request.bearer_auth(app.key(role));
        }
        let response = request.send().await.unwrap();
        if *status == 201 {
            assert_eq!(response.status().as_u16(), 201, "{role:?}");
        } else {
            assert_problem(response, *status, code).await;
        }
    }
    // A field outside the grant (民族 is not granted to 卫健委), a record it cannot see.
    let refused = assert_problem(
        app.post(
            OBJECTIONS,
            &app.key("consumer_granted"),
            &objection_on(&app.sample_ids[2], Some("ethnicity")),
        )
        .await,
        403,
        "item_not_granted",
    )
    .await;
    assert_eq!(refused["field"], "field");
    let missing = assert_problem(
        app.post(
            OBJECTIONS,
            &app.key("consumer_granted"),
            &objection_on("11010519491231002X", None),
        )
        .await,
        404,
        "record_not_found",
    )
    .await;
    assert_eq!(missing["field"], "key");
    let list = json_of(app.get(OBJECTIONS, &app.key("platform_admin")).await, 200).await;
    assert_eq!(ids(&list).len(), 2, "only the allowed raises were stored: {list}");
}

/// Bad input → 422 naming the field; nothing is stored or written.
#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let wjw = app.key("consumer_granted");
    let gaj = app.key("provider_admin");
    let key = app.sample_ids[3].clone();
    let with = |patch: Value| {
        let mut body = objection_on(&key, Some("name"));
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let raises: Vec<(Value, &str, &str)> = vec![
        (with(json!({"field": "nickname"})), "unknown_item", "field"),
        (with(json!({"key": "12345"})), "invalid_key", "key"),
        (with(json!({"reason": "   "})), "validation_failed", "reason"),
        (with(json!({"reason": null})), "invalid_body", "reason"),
        (
            with(json!({"field": "gender", "claimed_value": "maybe"})),
            "invalid_claim",
            "claimed_value",
        ),
        (
            with(json!({"field": null, "claimed_value": "欧阳更正"})),
            "validation_failed",
            "claimed_value",
        ),
    ];
    for (body, code, field) in &raises {
        let problem = assert_problem(app.post(OBJECTIONS, &wjw, body).await, 422, code).await;
        assert_eq!(problem["field"], *field, "{body}: {problem}");
    }
    let list = json_of(app.get(OBJECTIONS, &app.key("platform_admin")).await, 200).await;
    assert!(ids(&list).is_empty(), "{list}");

    let id = raise(&app, "consumer_granted", &with(json!({}))).await["id"]
        .as_i64()
        .unwrap();
    let before = provider_view(&app, &key).await;
    let current_name = before["record"]["name"].as_str().unwrap().to_string();
    let corrections: Vec<(Value, &str, &str)> = vec![
        (json!({"values": {}}), "validation_failed", "values"),
        (json!({"values": {"nickname": "x"}}), "unknown_item", "values.nickname"),
        (
            json!({"values": {"id_number": "11010519491231002X"}}),
            "validation_failed",
            "values.id_number",
        ),
        (json!({"values": {"gender": "maybe"}}), "invalid_value", "values.gender"),
        (json!({"values": {"name": " "}}), "validation_failed", "values.name"),
        (
            json!({"values": {"name": current_name}}),
            "correction_unchanged",
            "values",
        ),
    ];
    for (body, code, field) in &corrections {
        let problem = assert_problem(
            app.post(&format!("{OBJECTIONS}/{id}/correct"), &gaj, body).await,
            422,
            code,
        )
        .await;
        assert_eq!(problem["field"], *field, "{body}: {problem}");
    }
    let resolve = assert_problem(
        app.post(
            &format!("{OBJECTIONS}/{id}/resolve"),
            &gaj,
            &json!({"library_version": 999_999}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(resolve["field"], "library_version");
    // Nothing changed: the record, its version, the objection.
    assert_eq!(provider_view(&app, &key).await, before);
    let still = json_of(app.get(&format!("{OBJECTIONS}/{id}"), &wjw).await, 200).await;
    assert_eq!(still["status"], "open");
}

#[tokio::test]
async fn overdue_objections_are_listed_on_sqlite() {
    overdue_objections_are_listed(MetaDb::Sqlite).await;
}

#[tokio::test]
async fn overdue_objections_are_listed_on_postgres() {
    overdue_objections_are_listed(MetaDb::Postgres).await;
}

/// The filters of the list, the overdue one set up by moving a deadline into the past.
async fn overdue_objections_are_listed(meta: MetaDb) {
    let app = spawn_app_with(SpawnOptions {
        catalog_cache_seconds: 0.0,
        ..SpawnOptions::on(meta)
    })
    .await;
    let late = raise(
        &app,
        "consumer_granted",
        &objection_on(&app.sample_ids[0], Some("phone")),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let on_time = raise(&app, "consumer_granted", &objection_on(&app.sample_ids[1], None)).await["id"]
        .as_i64()
        .unwrap();
    // Its deadline passed (written behind the server, as time would).
    sqlx::query("UPDATE objections SET due_at = '2000-01-03T00:00:00.000000Z' WHERE id = $1")
        .bind(late)
        .execute(app.catalog.pool())
        .await
        .unwrap();

    let admin = app.key("platform_admin");
    let overdue = json_of(app.get(&format!("{OBJECTIONS}?overdue=true"), &admin).await, 200).await;
    assert_eq!(ids(&overdue), [late]);
    assert_eq!(overdue["items"][0]["overdue"], true);
    for (role, expected) in [
        ("provider_admin", vec![late]),
        ("consumer_granted", vec![late]),
        ("consumer_ungranted", vec![]),
    ] {
        let list = json_of(
            app.get(&format!("{OBJECTIONS}?overdue=true"), &app.key(role)).await,
            200,
        )
        .await;
        assert_eq!(ids(&list), expected, "{role}");
    }
    let open = json_of(app.get(&format!("{OBJECTIONS}?status=open"), &admin).await, 200).await;
    assert_eq!(ids(&open), [on_time, late], "newest first");
    let elsewhere = json_of(
        app.get(&format!("{OBJECTIONS}?resource=1-02-001-000001"), &admin).await,
        200,
    )
    .await;
    assert!(ids(&elsewhere).is_empty());
    let here = json_of(
        app.get(&format!("{OBJECTIONS}?resource={POPULATION_CODE}&overdue=true"), &admin)
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&here), [late]);
    for query in ["status=closed", "overdue=soon"] {
        let problem = assert_problem(
            app.get(&format!("{OBJECTIONS}?{query}"), &admin).await,
            422,
            "invalid_query",
        )
        .await;
        assert_eq!(problem["field"], query.split('=').next().unwrap());
    }

    // Answered late, it is no longer overdue.
    json_of(
        app.post(
            &format!("{OBJECTIONS}/{late}/confirm"),
            &app.key("provider_admin"),
            &json!({"answer": "数据无误"}),
        )
        .await,
        200,
    )
    .await;
    let overdue = json_of(app.get(&format!("{OBJECTIONS}?overdue=true"), &admin).await, 200).await;
    assert!(ids(&overdue).is_empty(), "{overdue}");
}

/// Fixed at the source, brought in by a normal run of the department's connector: resolved
/// with the version of the change, and only once the record differs.
#[tokio::test]
async fn an_objection_is_resolved_by_a_connector_run() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let gaj = app.key("provider_admin");
    let (key, other) = (app.sample_ids[0].clone(), app.sample_ids[1].clone());
    let raised = raise(&app, "consumer_granted", &objection_on(&key, Some("address"))).await;
    let id = raised["id"].as_i64().unwrap();
    let resolve = format!("{OBJECTIONS}/{id}/resolve");
    let record_version = raised["record_version"].as_i64().unwrap();
    let too_early = assert_problem(
        app.post(&resolve, &gaj, &json!({"library_version": record_version}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(too_early["field"], "library_version");

    let source = app.data_path().join("sources").join("gongan_hukou.db");
    let change_source = |sfzh: String, address: &'static str| {
        let source = source.clone();
        async move {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", source.display()))
                .await
                .unwrap();
            let done = sqlx::query("UPDATE hukou SET hjdz = $1 WHERE sfzh = $2")
                .bind(address)
                .bind(sfzh)
                .execute(&mut conn)
                .await
                .unwrap();
            assert_eq!(done.rows_affected(), 1);
        }
    };

    // A run that changes another record: this one is as disputed.
    change_source(other, "浙江省杭州市西湖区文三路90号").await;
    let run = app.run_connector("gaj-hukou", &gaj).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let unrelated = run["library_version"].as_i64().unwrap();
    let unchanged = assert_problem(
        app.post(&resolve, &gaj, &json!({"library_version": unrelated})).await,
        422,
        "record_unchanged",
    )
    .await;
    assert_eq!(unchanged["field"], "library_version");

    // The fix at the source, then the run that brings it in.
    change_source(key.clone(), "浙江省杭州市余杭区文一西路969号").await;
    let run = app.run_connector("gaj-hukou", &gaj).await;
    let fixed = run["library_version"].as_i64().unwrap();
    assert!(fixed > unrelated, "{run}");
    let resolved = json_of(
        app.post(
            &resolve,
            &gaj,
            &json!({"library_version": fixed, "note": "已在户籍系统更正"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(resolved["status"], "corrected");
    assert_eq!(resolved["resolution"], "run");
    assert_eq!(resolved["corrected_version"], fixed);
    assert_eq!(kinds(&resolved), ["raised", "routed", "resolved"]);
    assert_eq!(
        provider_view(&app, &key).await["record"]["address"],
        "浙江省杭州市余杭区文一西路969号"
    );
}

/// A correction whose library commit landed but whose later steps failed (the objection left
/// open) is finished by retrying it: the library's last correction names the objection, so the
/// retry marks it corrected with that commit's version and writes nothing again. The same
/// values for another objection are still "nothing to correct".
#[tokio::test]
async fn a_retried_correction_finishes_what_a_failed_one_committed() {
    let app = huitong_tests::spawn_app(huitong_tests::MetaDb::Sqlite).await;
    let gaj = app.key("provider_admin");
    let key = app.sample_ids[0].clone();
    let id = raise(&app, "consumer_granted", &objection_on(&key, Some("name"))).await["id"]
        .as_i64()
        .unwrap();
    let other = raise(&app, "consumer_granted", &objection_on(&key, Some("name"))).await["id"]
        .as_i64()
        .unwrap();

    // The first attempt's commit, as the server makes it, without the steps after it.
    let library = app.libraries.get("population").unwrap();
    let schema = library.schema();
    let mut row = vec![None; schema.fields.len()];
    row[0] = Some(key.clone());
    row[schema.position("name").unwrap()] = Some("欧阳更正".to_string());
    let authority = exchange_core::Authority::by_field(schema, |f| f == "name");
    let mut writer = library.writer("GAJ", 0, authority).await.unwrap();
    writer.upsert(row).unwrap();
    let committed = writer.commit("huitong-corrections", id).await.unwrap().version;
    let open = json_of(app.get(&format!("{OBJECTIONS}/{id}"), &gaj).await, 200).await;
    assert_eq!(open["status"], "open");

    let body = json!({"values": {"name": "欧阳更正"}});
    // Not for the other objection: its correction was never made.
    assert_problem(
        app.post(&format!("{OBJECTIONS}/{other}/correct"), &gaj, &body).await,
        422,
        "correction_unchanged",
    )
    .await;
    let retried = json_of(app.post(&format!("{OBJECTIONS}/{id}/correct"), &gaj, &body).await, 200).await;
    assert_eq!(retried["status"], "corrected", "{retried}");
    assert_eq!(retried["corrected_version"], committed, "{retried}");
    assert_eq!(library.version().unwrap(), committed, "nothing written again");
    assert_eq!(provider_view(&app, &key).await["record"]["name"], "欧阳更正");
}
