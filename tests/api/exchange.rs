use huitong::demo::POPULATION_CODE;
use huitong::settings::RateLimitSettings;
use huitong_tests::{MetaDb, SpawnOptions, TestApp, assert_problem, json_of, person_id, spawn_app, spawn_app_with};
use serde_json::Value;

/// Who calls → what they get, for a record present in the library. The same table runs with
/// the metadata DB on SQLite and on PostgreSQL.
const ROLE_MATRIX: &[(Option<&str>, u16, &str)] = &[
    (Some("consumer_granted"), 200, "allowed"),
    (Some("provider_admin"), 200, "allowed"),
    (Some("consumer_ungranted"), 403, "no_grant"),
    (Some("platform_admin"), 403, "role_forbidden"),
    (Some("open_data_developer"), 403, "role_forbidden"),
    (None, 401, "unauthenticated"),
];

async fn check_role_matrix(app: &TestApp) {
    let id = &app.sample_ids[0];
    for (role, status, code) in ROLE_MATRIX {
        let key = role.map(|r| app.key(r));
        let response = app.lookup(POPULATION_CODE, id, key.as_deref()).await;
        if *status == 200 {
            assert_eq!(response.status().as_u16(), 200, "{role:?}");
        } else {
            assert_problem(response, *status, code).await;
        }
    }
}

#[tokio::test]
async fn granted_consumer_sees_granted_items_masked_as_granted() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let id = &app.sample_ids[0];
    let response = app.lookup_population(id, "consumer_granted").await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    let record = &body["record"];
    // The grant makes id_number plain; name, address and phone (L3/L4) stay masked.
    assert_eq!(record["id_number"], id.as_str());
    let name = record["name"].as_str().unwrap();
    assert!(
        name.chars().skip(1).all(|c| c == '*') && name.chars().count() >= 2,
        "{name}"
    );
    assert!(record["address"].as_str().unwrap().ends_with("****"), "{record}");
    if let Some(phone) = record["phone"].as_str() {
        assert_eq!(&phone[3..7], "****", "{phone}");
    }
    // L2 items are plain; ethnicity was not granted and is absent.
    assert!(matches!(record["gender"].as_str(), Some("男" | "女")));
    assert_eq!(record["birth_date"].as_str().unwrap().len(), 10);
    assert!(record.get("ethnicity").is_none(), "{record}");
    let masked: Vec<&str> = body["masked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(masked, ["name", "address", "phone"]);
}

#[tokio::test]
async fn the_providing_department_sees_its_own_data_plain() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let id = &app.sample_ids[1];
    let body: Value = app.lookup_population(id, "provider_admin").await.json().await.unwrap();
    let name = body["record"]["name"].as_str().unwrap();
    assert!(!name.contains('*'), "{name}");
    assert!(body["record"].get("ethnicity").is_some());
    assert_eq!(body["masked"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn keys_are_normalized_before_lookup() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let id = &app.sample_ids[0];
    let full_width: String = id.chars().map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap()).collect();
    let response = app.lookup_population(&full_width, "consumer_granted").await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["record"]["id_number"], id.as_str());
}

/// resource code, key, API key, expected status, code and field.
type BadInput = (String, String, Option<String>, u16, &'static str, Option<&'static str>);

#[tokio::test]
async fn bad_input_gets_a_clear_problem() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let granted = app.key("consumer_granted");
    let id = app.sample_ids[0].clone();
    // A wrong check character is a 422 that says so, not a 404.
    let mut wrong_check = id.clone();
    let last = wrong_check.pop().unwrap();
    wrong_check.push(if last == '0' { '1' } else { '0' });
    let cases: Vec<BadInput> = vec![
        (
            POPULATION_CODE.into(),
            wrong_check,
            Some(granted.clone()),
            422,
            "invalid_key",
            Some("key"),
        ),
        (
            POPULATION_CODE.into(),
            "12345".into(),
            Some(granted.clone()),
            422,
            "invalid_key",
            Some("key"),
        ),
        // Valid but absent: 11010519491231002X is a valid number the demo never generates.
        (
            POPULATION_CODE.into(),
            "11010519491231002X".into(),
            Some(granted.clone()),
            404,
            "record_not_found",
            Some("key"),
        ),
        (
            "9-99-999-999999".into(),
            id.clone(),
            Some(granted.clone()),
            404,
            "resource_not_found",
            Some("resource_code"),
        ),
        (
            POPULATION_CODE.into(),
            id.clone(),
            Some("ht_0000000000000000000000000000000000000000".into()),
            401,
            "unauthenticated",
            None,
        ),
        (
            POPULATION_CODE.into(),
            id.clone(),
            Some("not-a-key".into()),
            401,
            "unauthenticated",
            None,
        ),
    ];
    for (resource, key, api_key, status, code, field) in cases {
        let response = app.lookup(&resource, &key, api_key.as_deref()).await;
        let body = assert_problem(response, status, code).await;
        assert_eq!(body["field"].as_str(), field, "{body}");
    }
}

#[tokio::test]
async fn request_ids_are_echoed() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let response = app
        .client
        .get(format!(
            "{}/api/v1/exchange/{POPULATION_CODE}/records/{}",
            app.address, app.sample_ids[0]
        ))
        .bearer_auth(app.key("consumer_granted"))
        .header("X-Request-Id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    let generated = app.lookup_population(&app.sample_ids[0], "consumer_granted").await;
    assert_eq!(generated.headers()["x-request-id"].len(), 24);
}

#[tokio::test]
async fn over_quota_is_429_with_retry_after() {
    // A burst of 3, refilled once every 1,000 s: the 4th call is over quota whatever the timing.
    let app = spawn_app_with(SpawnOptions {
        rate_limit: RateLimitSettings {
            requests_per_second: 0.001,
            burst: 3,
            requests_per_day: None,
        },
        ..SpawnOptions::on(MetaDb::Sqlite)
    })
    .await;
    let id = &app.sample_ids[0];
    for _ in 0..3 {
        assert_eq!(
            app.lookup_population(id, "consumer_granted").await.status().as_u16(),
            200
        );
    }
    let response = app.lookup_population(id, "consumer_granted").await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 100, "{retry_after}");
    assert_eq!(response.headers()["ratelimit-limit"], "3");
    assert_problem(response, 429, "quota_exceeded").await;
    // Another consumer's allowance is its own.
    assert_eq!(app.lookup_population(id, "provider_admin").await.status().as_u16(), 200);
}

huitong_tests::on_both_databases! {
    role_matrix => check_role_matrix;
}

/// A grant on the demo population resource for a new consumer department, as the test
/// arranges it; `None` arranges no grant.
struct GrantCase {
    name: &'static str,
    grant: Option<GrantSetup>,
    /// `deny:<code>` or `allow:<item>=<plain|masked>,…` over the returned items.
    want: &'static str,
}

struct GrantSetup {
    items: &'static [&'static str],
    plain: &'static [&'static str],
    state: &'static str,
}

/// A grant on the demo population resource to `department` of `items`, `plain` of them
/// unmasked; no expiry, filter or quota.
async fn population_grant(app: &TestApp, department: i64, items: &[&str], plain: &[&str]) -> catalog::NewGrant {
    let resource = app.catalog.resource_by_code(POPULATION_CODE).await.unwrap();
    catalog::NewGrant {
        resource_id: resource.id,
        consumer_department_id: department,
        items: items.iter().map(|s| s.to_string()).collect(),
        plain_items: plain.iter().map(|s| s.to_string()).collect(),
        expires_at: None,
        demand_id: None,
        row_filter: None,
        quota_per_second: None,
        quota_per_day: None,
    }
}

/// Arranges a consumer department `code` with `grant` on population; returns its key.
async fn consumer_with_grant(app: &TestApp, code: &str, grant: Option<&GrantSetup>) -> String {
    let department = app
        .catalog
        .upsert_department(code, &format!("测试局 {code}"), None)
        .await
        .unwrap();
    if let Some(setup) = grant {
        let expires_at = (setup.state == "expired").then(|| chrono::Utc::now() - chrono::Duration::days(1));
        let grant = app
            .catalog
            .create_grant(&catalog::NewGrant {
                expires_at,
                ..population_grant(app, department.id, setup.items, setup.plain).await
            })
            .await
            .unwrap();
        if setup.state == "revoked" {
            sqlx::query("UPDATE grants SET status = 'revoked' WHERE id = $1")
                .bind(grant.id)
                .execute(app.catalog.pool())
                .await
                .unwrap();
        }
    }
    app.issue_key(policy::Role::Consumer, Some(code)).await
}

/// The outcome of a lookup as a compact string, like the policy unit test's.
async fn outcome(response: reqwest::Response) -> String {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    if status != 200 {
        return format!("deny:{}", body["code"].as_str().unwrap());
    }
    let record = body["record"].as_object().unwrap();
    let masked: Vec<&str> = body["masked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let items: Vec<String> = record
        .keys()
        .map(|k| {
            format!(
                "{k}={}",
                if masked.contains(&k.as_str()) {
                    "masked"
                } else {
                    "plain"
                }
            )
        })
        .collect();
    format!("allow:{}", items.join(","))
}

/// Share type (the demo's population is conditional) × grant state × item sensitivity →
/// outcome, over HTTP. Items are listed alphabetically (JSON object order).
#[tokio::test]
async fn grant_state_and_item_sensitivity_decide_each_call() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let cases = [
        GrantCase {
            name: "no grant",
            grant: None,
            want: "deny:no_grant",
        },
        GrantCase {
            name: "active: L3 name granted plain, L3 id_number masked, L2 gender plain",
            grant: Some(GrantSetup {
                items: &["id_number", "name", "gender"],
                plain: &["name"],
                state: "active",
            }),
            want: "allow:gender=plain,id_number=masked,name=plain",
        },
        GrantCase {
            name: "active: L4 phone granted masked, L2 birth_date plain",
            grant: Some(GrantSetup {
                items: &["phone", "birth_date"],
                plain: &[],
                state: "active",
            }),
            want: "allow:birth_date=plain,phone=masked",
        },
        GrantCase {
            name: "expired",
            grant: Some(GrantSetup {
                items: &["name"],
                plain: &["name"],
                state: "expired",
            }),
            want: "deny:grant_expired",
        },
        GrantCase {
            name: "revoked",
            grant: Some(GrantSetup {
                items: &["name"],
                plain: &["name"],
                state: "revoked",
            }),
            want: "deny:no_grant",
        },
    ];
    let id = &app.sample_ids[0];
    for (i, case) in cases.iter().enumerate() {
        let key = consumer_with_grant(&app, &format!("T{i}"), case.grant.as_ref()).await;
        let got = outcome(app.lookup(POPULATION_CODE, id, Some(&key)).await).await;
        assert_eq!(got, case.want, "{}", case.name);
    }
}

async fn post_json(app: &TestApp, path: &str, role: &str, body: &Value) -> reqwest::Response {
    app.post(
        &format!("/api/v1/exchange/{POPULATION_CODE}/{path}"),
        &app.key(role),
        body,
    )
    .await
}

#[tokio::test]
async fn a_batch_answers_in_request_order_and_marks_misses() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let present = &app.sample_ids[0];
    let absent = person_id(16_799_999);
    let full_width: String = present
        .chars()
        .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
        .collect();
    let keys = [
        present.as_str(),
        absent.as_str(),
        "110105194912310021",
        full_width.as_str(),
    ];
    let body = json_of(
        post_json(
            &app,
            "records:batch",
            "consumer_granted",
            &serde_json::json!({"keys": keys}),
        )
        .await,
        200,
    )
    .await;
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<&str> = results.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["found", "not_found", "invalid_key", "found"]);
    let echoed: Vec<&str> = results.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(echoed, keys);
    assert_eq!(results[0]["record"]["id_number"], present.as_str());
    assert!(
        results[0]["record"]["name"].as_str().unwrap().contains('*'),
        "masked as granted"
    );
    assert!(
        results[2]["detail"].as_str().unwrap().contains("check"),
        "{}",
        results[2]
    );
    assert_eq!(body["found"], 2);

    // The audit record counts the rows returned and names the demand behind the grant.
    let last = app.audit_records().await.pop().unwrap();
    assert_eq!(last.row_count, Some(2));
    assert!(last.demand_id.is_some());
    assert!(last.endpoint.ends_with("records:batch"));
    let report = app.verify_audit().await;
    assert_eq!(report.first_broken, None);

    // Bad batches: named, never a 500.
    let too_many: Vec<String> = (0..1001).map(person_id).collect();
    for (body, code, field) in [
        (serde_json::json!({"keys": too_many}), "invalid_batch", "keys"),
        (serde_json::json!({"keys": []}), "invalid_batch", "keys"),
        (
            serde_json::json!({"keys": [present], "fields": ["name"]}),
            "invalid_body",
            "fields",
        ),
        (serde_json::json!({"key": present}), "invalid_body", "key"),
    ] {
        let problem = assert_problem(
            post_json(&app, "records:batch", "consumer_granted", &body).await,
            422,
            code,
        )
        .await;
        assert_eq!(problem["field"], field, "{problem}");
    }
    assert_problem(
        post_json(
            &app,
            "records:batch",
            "consumer_ungranted",
            &serde_json::json!({"keys": [present]}),
        )
        .await,
        403,
        "no_grant",
    )
    .await;
}

#[tokio::test]
async fn verify_answers_match_or_no_match_without_returning_data() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let id = &app.sample_ids[0];
    let record = json_of(app.lookup_population(id, "provider_admin").await, 200).await["record"].clone();
    let name = record["name"].as_str().unwrap();
    let birth = record["birth_date"].as_str().unwrap();
    let chinese_birth = format!("{}年{}月{}日", &birth[0..4], &birth[5..7], &birth[8..10]);
    let body = json_of(
        post_json(
            &app,
            "verify",
            "consumer_granted",
            &serde_json::json!({"key": id, "claims": {"name": name, "birth_date": chinese_birth}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["results"]["name"], "match");
    assert_eq!(body["results"]["birth_date"], "match", "claims are normalized: {body}");
    assert_eq!(body["match"], true);
    assert!(!body.to_string().contains(name), "verify returns no data: {body}");

    let body = json_of(
        post_json(
            &app,
            "verify",
            "consumer_granted",
            &serde_json::json!({"key": id, "claims": {"name": format!("{name}某")}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (body["results"]["name"].as_str(), body["match"].as_bool()),
        (Some("no_match"), Some(false))
    );

    let absent = person_id(16_799_999);
    let body = json_of(
        post_json(
            &app,
            "verify",
            "consumer_granted",
            &serde_json::json!({"key": absent, "claims": {"name": name}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (body["found"].as_bool(), body["results"]["name"].as_str()),
        (Some(false), Some("no_match"))
    );

    // Refusals name the field.
    for (claims, status, code, field) in [
        (
            serde_json::json!({"ethnicity": "汉族"}),
            403,
            "item_not_granted",
            "claims.ethnicity",
        ),
        (
            serde_json::json!({"shoe_size": "42"}),
            422,
            "unknown_item",
            "claims.shoe_size",
        ),
        (
            serde_json::json!({"birth_date": "not a date"}),
            422,
            "invalid_claim",
            "claims.birth_date",
        ),
        (serde_json::json!({}), 422, "invalid_claims", "claims"),
    ] {
        let problem = assert_problem(
            post_json(
                &app,
                "verify",
                "consumer_granted",
                &serde_json::json!({"key": id, "claims": claims}),
            )
            .await,
            status,
            code,
        )
        .await;
        assert_eq!(problem["field"], field);
    }
    let problem = assert_problem(
        post_json(
            &app,
            "verify",
            "consumer_granted",
            &serde_json::json!({"key": "110105194912310021", "claims": {"name": name}}),
        )
        .await,
        422,
        "invalid_key",
    )
    .await;
    assert_eq!(problem["field"], "key");
}

#[tokio::test]
async fn a_grant_quota_binds_the_whole_department() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let department = app.catalog.upsert_department("TQ", "测试局", None).await.unwrap();
    app.catalog
        .create_grant(&catalog::NewGrant {
            quota_per_day: Some(2),
            ..population_grant(&app, department.id, &["name"], &[]).await
        })
        .await
        .unwrap();
    let (first, second) = (
        app.issue_key(policy::Role::Consumer, Some("TQ")).await,
        app.issue_key(policy::Role::Consumer, Some("TQ")).await,
    );
    let id = &app.sample_ids[0];
    for key in [&first, &second] {
        assert_eq!(app.lookup(POPULATION_CODE, id, Some(key)).await.status().as_u16(), 200);
    }
    let response = app.lookup(POPULATION_CODE, id, Some(&first)).await;
    assert_eq!(response.headers()["ratelimit-policy"], "2;w=86400");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    let problem = assert_problem(response, 429, "quota_exceeded").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("grant's daily quota"),
        "{problem}"
    );
}
