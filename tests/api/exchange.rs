use huitong::demo::POPULATION_CODE;
use huitong::settings::RateLimitSettings;
use huitong_tests::{MetaDb, SpawnOptions, TestApp, assert_problem, spawn_app, spawn_app_with};
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
