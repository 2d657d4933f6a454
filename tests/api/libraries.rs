//! The libraries' schemas, lineage and conflicts over HTTP, on the demo's data: five
//! departments feed the population library, 公安局 is the authority of every field, and the
//! others' differing values are kept as conflicts.

use huitong::demo::POPULATION_CODE;
use huitong_tests::{MetaDb, SpawnOptions, assert_problem, json_of, person_id, spawn_app, spawn_app_with};
use serde_json::Value;

#[tokio::test]
async fn schemas_name_each_fields_authority() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let list = json_of(app.get("/api/v1/libraries", &app.key("consumer_granted")).await, 200).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "credit",
            "legal_entity",
            "license",
            "population",
            "spatial",
            "enterprise_credit",
            "newborn"
        ]
    );
    let population = json_of(
        app.get("/api/v1/libraries/population", &app.key("consumer_granted"))
            .await,
        200,
    )
    .await;
    assert_eq!(population["class"], "base");
    assert_eq!(population["key"], "id_number");
    assert!(population["records"].as_u64().unwrap() > 900, "{population}");
    let id = &population["fields"][0];
    assert_eq!(
        (id["name"].as_str(), id["kind"].as_str()),
        (Some("id_number"), Some("id_number"))
    );
    assert_eq!(id["authority"]["department_code"], "GAJ");
    assert_eq!(id["authority"]["resource_code"], huitong::demo::POPULATION_CODE);
    let status = population["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "status")
        .unwrap();
    assert_eq!(status["allowed"], serde_json::json!(["正常", "死亡", "迁出"]));
    let license = json_of(
        app.get("/api/v1/libraries/license", &app.key("consumer_granted")).await,
        200,
    )
    .await;
    assert_eq!(license["key_parts"], serde_json::json!(["license_type", "license_no"]));
    let newborn = json_of(
        app.get("/api/v1/libraries/newborn", &app.key("consumer_granted")).await,
        200,
    )
    .await;
    assert_eq!(newborn["class"], "theme");

    assert_problem(
        app.get("/api/v1/libraries/nope", &app.key("consumer_granted")).await,
        404,
        "library_not_found",
    )
    .await;
    let anonymous = app
        .client
        .get(format!("{}/api/v1/libraries", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test]
async fn conflicts_and_lineage_show_which_source_won_each_field() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let admin = app.key("platform_admin");
    let page = json_of(
        app.get("/api/v1/libraries/population/conflicts?limit=1000", &admin)
            .await,
        200,
    )
    .await;
    let conflicts = page["items"].as_array().unwrap();
    assert!(
        !conflicts.is_empty(),
        "民政局's rented addresses differ from 公安局's: {page}"
    );
    for c in conflicts {
        assert!(["MZJ", "WJW", "RSJ"].contains(&c["source"].as_str().unwrap()), "{c}");
        assert!(!c["values"].as_object().unwrap().is_empty(), "{c}");
    }
    assert!(
        conflicts
            .iter()
            .any(|c| c["source"] == "MZJ" && c["values"]["address"].as_str().is_some_and(|a| a.ends_with("(租住)"))),
        "{page}"
    );

    // The record keeps the authority's value; its lineage says so.
    let conflict = conflicts.iter().find(|c| c["values"].get("address").is_some()).unwrap();
    let key = conflict["key"].as_str().unwrap();
    let lineage = json_of(
        app.get(&format!("/api/v1/libraries/population/records/{key}/lineage"), &admin)
            .await,
        200,
    )
    .await;
    let address = lineage["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "address")
        .unwrap();
    assert_eq!(address["filled"], true);
    assert_eq!(address["origin"]["source"], "GAJ", "{lineage}");
    assert!(address["origin"]["version"].as_i64().unwrap() >= 1);
    assert_eq!(lineage["source"], "GAJ");
    let record: Value = app.lookup_population(key, "provider_admin").await.json().await.unwrap();
    assert_ne!(record["record"]["address"], conflict["values"]["address"], "{record}");
    // A field nobody filled has no origin.
    let empty = lineage["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "marital_status")
        .unwrap();
    assert_eq!(
        (empty["filled"].as_bool(), &empty["origin"]),
        (Some(false), &Value::Null)
    );

    // One record's conflicts, and pages.
    let mine = json_of(
        app.get(&format!("/api/v1/libraries/population/conflicts?key={key}"), &admin)
            .await,
        200,
    )
    .await;
    assert!(
        mine["items"].as_array().unwrap().iter().all(|c| c["key"] == key),
        "{mine}"
    );
    let first = json_of(
        app.get("/api/v1/libraries/population/conflicts?limit=1", &admin).await,
        200,
    )
    .await;
    assert_eq!(first["next_offset"], 1);
    assert_eq!(first["items"][0], conflicts[0]);
    let second = json_of(
        app.get("/api/v1/libraries/population/conflicts?limit=1&offset=1", &admin)
            .await,
        200,
    )
    .await;
    assert_eq!(second["items"][0], conflicts[1]);
}

#[tokio::test]
async fn lineage_and_conflicts_are_for_the_platform_and_the_librarys_providers() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let key = &app.sample_ids[0];
    let lineage = |library: &str| format!("/api/v1/libraries/{library}/records/{key}/lineage");
    // 公安局 provides population, not legal entities; consumers govern nothing.
    let provider = app.key("provider_admin");
    assert_eq!(app.get(&lineage("population"), &provider).await.status().as_u16(), 200);
    assert_eq!(
        app.get("/api/v1/libraries/population/conflicts", &provider)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_problem(
        app.get("/api/v1/libraries/legal_entity/conflicts", &provider).await,
        403,
        "forbidden",
    )
    .await;
    for role in ["consumer_granted", "consumer_ungranted", "open_data_developer"] {
        assert_problem(app.get(&lineage("population"), &app.key(role)).await, 403, "forbidden").await;
        assert_problem(
            app.get("/api/v1/libraries/population/conflicts", &app.key(role)).await,
            403,
            "forbidden",
        )
        .await;
    }
    for role in ["platform_admin", "reviewer"] {
        assert_eq!(
            app.get(&lineage("population"), &app.key(role)).await.status().as_u16(),
            200,
            "{role}"
        );
    }

    // Bad input.
    let admin = app.key("platform_admin");
    let body = assert_problem(
        app.get(
            "/api/v1/libraries/population/records/110105194912310021/lineage",
            &admin,
        )
        .await,
        422,
        "invalid_key",
    )
    .await;
    assert_eq!(body["field"], "key");
    let body = assert_problem(
        app.get(
            &format!("/api/v1/libraries/population/records/{}/lineage", person_id(424_242)),
            &admin,
        )
        .await,
        404,
        "record_not_found",
    )
    .await;
    assert_eq!(body["field"], "key");
    for bad in ["limit=0", "limit=1001"] {
        let body = assert_problem(
            app.get(&format!("/api/v1/libraries/population/conflicts?{bad}"), &admin)
                .await,
            422,
            "invalid_query",
        )
        .await;
        assert_eq!(body["field"], "limit", "{bad}");
    }
    assert_problem(
        app.get("/api/v1/libraries/population/conflicts?offset=x", &admin).await,
        422,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get("/api/v1/libraries/population/conflicts?nope=1", &admin).await,
        422,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get("/api/v1/libraries/nope/conflicts", &admin).await,
        404,
        "library_not_found",
    )
    .await;
}

/// 一数一源 through the catalog: when 卫健委 registers a resource on the population library that
/// claims the phone, and 公安局's resource stops claiming it, the phone is 卫健委's — in the
/// schema's authorities, in where an objection on it goes, and in how the next sync writes it.
#[tokio::test]
async fn a_field_claimed_by_another_department_is_routed_and_written_as_theirs() {
    let app = spawn_app_with(SpawnOptions {
        catalog_cache_seconds: 0.0,
        ..SpawnOptions::on(MetaDb::Sqlite)
    })
    .await;
    let population = app.catalog.resource_by_code(POPULATION_CODE).await.unwrap();
    let mut gaj = population.meta.clone();
    for item in &mut gaj.items {
        item.authoritative = item.name != "phone";
    }
    app.catalog
        .update_resource("test", POPULATION_CODE, &gaj)
        .await
        .unwrap();
    let mut wjw = population.meta.clone();
    wjw.code = None;
    wjw.name = "签约居民联系电话".into();
    wjw.provider_code = "WJW".into();
    wjw.connector = None;
    wjw.items = population
        .meta
        .items
        .iter()
        .filter(|i| i.name == "id_number" || i.name == "phone")
        .cloned()
        .map(|mut i| {
            i.authoritative = i.name == "phone";
            i
        })
        .collect();
    let claimed = app.catalog.create_resource("test", &wjw).await.unwrap();

    let schema = json_of(
        app.get("/api/v1/libraries/population", &app.key("consumer_granted"))
            .await,
        200,
    )
    .await;
    let authority = |field: &str| {
        schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == field)
            .unwrap()["authority"]
            .clone()
    };
    assert_eq!(authority("phone")["department_code"], "WJW");
    assert_eq!(authority("phone")["resource_code"], claimed.code);
    assert_eq!(authority("name")["department_code"], "GAJ");

    // An objection on the phone goes to 卫健委; one on the name still to 公安局.
    for (field, routed) in [("phone", "WJW"), ("name", "GAJ")] {
        let body = serde_json::json!({
            "resource_code": POPULATION_CODE, "key": app.sample_ids[0], "field": field, "reason": "与本人核实不一致",
        });
        let raised = json_of(
            app.post("/api/v1/objections", &app.key("consumer_granted"), &body)
                .await,
            201,
        )
        .await;
        assert_eq!(raised["routed_to_department"], routed, "{field}: {raised}");
    }

    // 卫健委's next sync writes the phones as the authority's: every record it changed now has
    // its phone from 卫健委, and nothing else of those records changed hands.
    let (before, _) = app.population_health().await;
    let run = app.run_connector("wjw-qianyue", &app.key("platform_admin")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let changes = json_of(
        app.get(
            &format!("/api/v1/exchange/{POPULATION_CODE}/changes?since_version={before}&limit=1000"),
            &app.key("consumer_granted"),
        )
        .await,
        200,
    )
    .await;
    let changed = changes["changes"].as_array().unwrap();
    assert!(
        !changed.is_empty(),
        "the authority takes over the phones it holds: {run}"
    );
    for change in changed.iter().take(20) {
        let key = change["key"].as_str().unwrap();
        let lineage = json_of(
            app.get(
                &format!("/api/v1/libraries/population/records/{key}/lineage"),
                &app.key("platform_admin"),
            )
            .await,
            200,
        )
        .await;
        let origin = |field: &str| {
            lineage["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["field"] == field)
                .unwrap()["origin"]["source"]
                .clone()
        };
        assert_eq!(origin("phone"), "WJW", "{lineage}");
        assert_ne!(origin("id_number"), "WJW", "{lineage}");
    }
}
