//! The data lab: SQL over the caller's views cannot reach an ungranted item or a masked item's
//! plain value, whatever the shape of the query, and runs nothing but one query.

use std::collections::BTreeSet;

use huitong::demo::POPULATION_CODE;
use huitong::query::lab::view_name;
use huitong_tests::{MetaDb, TestApp, assert_problem, json_of, spawn_app};
use serde_json::{Value, json};

async fn lab(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post("/api/v1/lab/query", key, &body).await
}

/// Every plain value of the items the granted consumer sees masked or not at all.
async fn secrets(app: &TestApp) -> BTreeSet<String> {
    let view = view_name(POPULATION_CODE);
    let body = json_of(
        lab(
            app,
            &app.key("provider_admin"),
            json!({"sql": format!("SELECT name, address, phone, ethnicity FROM {view}"), "max_rows": 10000}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["truncated"], false);
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
        })
        .collect()
}

#[tokio::test]
async fn lab_sql_cannot_reach_ungranted_or_plain_values_by_any_query_shape() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let secrets = secrets(&app).await;
    assert!(secrets.len() > 100, "the provider sees plain values");
    let granted = app.key("consumer_granted");
    let v = view_name(POPULATION_CODE);
    let id = &app.sample_ids[0];
    let masked = json_of(app.lookup_population(id, "consumer_granted").await, 200).await;
    let masked_name = masked["record"]["name"].as_str().unwrap().to_string();

    // sql, status, code ("" when allowed)
    let cases: Vec<(String, u16, &str)> = vec![
        // Allowed shapes: whatever they return is already masked.
        (format!("SELECT * FROM {v}"), 200, ""),
        (
            format!("SELECT name, address, phone FROM {v} WHERE id_number = '{id}'"),
            200,
            "",
        ),
        (
            format!("SELECT a.name, b.address, b.phone FROM {v} a JOIN {v} b ON a.id_number = b.id_number"),
            200,
            "",
        ),
        (
            format!("SELECT name FROM {v} WHERE id_number IN (SELECT id_number FROM {v} WHERE phone IS NOT NULL)"),
            200,
            "",
        ),
        (format!("SELECT (SELECT max(address) FROM {v}) AS a"), 200, ""),
        (
            format!("WITH t AS (SELECT name, address FROM {v}) SELECT * FROM t"),
            200,
            "",
        ),
        (
            format!("WITH RECURSIVE t AS (SELECT name FROM {v}) SELECT * FROM t"),
            200,
            "",
        ),
        (
            format!("SELECT name FROM {v} UNION SELECT address FROM {v} UNION ALL SELECT phone FROM {v}"),
            200,
            "",
        ),
        (
            format!(
                "SELECT upper(name), lower(address), concat(name, phone), reverse(name), substr(phone, 1, 11), trim(address) FROM {v}"
            ),
            200,
            "",
        ),
        (format!("SELECT string_agg(name, ',') FROM {v}"), 200, ""),
        (format!("SELECT array_agg(address) FROM {v}"), 200, ""),
        (
            format!(
                "SELECT max(name), min(phone), first_value(address) OVER (ORDER BY id_number) FROM {v} GROUP BY address, id_number"
            ),
            200,
            "",
        ),
        (format!("SELECT name FROM {v} WHERE name NOT LIKE '%*%'"), 200, ""),
        (
            format!("SELECT * FROM (SELECT * FROM {v}) s CROSS JOIN (VALUES (1)) x LIMIT 5"),
            200,
            "",
        ),
        // An item not granted does not exist in the view.
        (format!("SELECT ethnicity FROM {v}"), 422, "invalid_sql"),
        (format!("SELECT \"ethnicity\" FROM {v}"), 422, "invalid_sql"),
        (
            format!("SELECT count(*) FROM {v} WHERE ethnicity = '汉族'"),
            422,
            "invalid_sql",
        ),
        (
            format!("SELECT * FROM {v} a JOIN {v} b USING (ethnicity)"),
            422,
            "invalid_sql",
        ),
        // Nothing but the views is reachable.
        ("SELECT * FROM information_schema.tables".into(), 422, "unknown_view"),
        ("SELECT * FROM information_schema.columns".into(), 422, "unknown_view"),
        ("SELECT * FROM population".into(), 422, "unknown_view"),
        ("SELECT * FROM library".into(), 422, "unknown_view"),
        (format!("SELECT * FROM datafusion.public.{v}"), 422, "unknown_view"),
        ("SELECT * FROM '/etc/passwd'".into(), 422, "unknown_view"),
        (format!("SELECT * FROM {v}, r_1_04_001_000001"), 422, "unknown_view"),
        ("SHOW TABLES".into(), 422, "sql_not_allowed"),
        ("SHOW ALL".into(), 422, "sql_not_allowed"),
        // Nothing that writes, defines, copies, explains or sets.
        (format!("CREATE TABLE t AS SELECT * FROM {v}"), 422, "sql_not_allowed"),
        ("CREATE VIEW x AS SELECT 1".into(), 422, "sql_not_allowed"),
        (
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'".into(),
            422,
            "sql_not_allowed",
        ),
        (format!("DROP TABLE {v}"), 422, "sql_not_allowed"),
        (format!("INSERT INTO {v} (name) VALUES ('x')"), 422, "sql_not_allowed"),
        (format!("DELETE FROM {v}"), 422, "sql_not_allowed"),
        (format!("UPDATE {v} SET name = 'x'"), 422, "sql_not_allowed"),
        (format!("COPY {v} TO '/tmp/leak.csv'"), 422, "sql_not_allowed"),
        (
            format!("COPY (SELECT * FROM {v}) TO '/tmp/leak.csv'"),
            422,
            "sql_not_allowed",
        ),
        (
            "SET datafusion.catalog.information_schema = true".into(),
            422,
            "sql_not_allowed",
        ),
        (format!("EXPLAIN SELECT * FROM {v}"), 422, "sql_not_allowed"),
        ("SELECT 1; SELECT 2".into(), 422, "sql_not_allowed"),
        (format!("SELECT 1; DROP TABLE {v}"), 422, "sql_not_allowed"),
        // Not SQL.
        ("SELEC 1".into(), 422, "invalid_sql"),
        ("".into(), 422, "sql_not_allowed"),
        (format!("SELECT nope FROM {v}"), 422, "invalid_sql"),
    ];
    for (sql, status, code) in &cases {
        let response = lab(&app, &granted, json!({"sql": sql, "max_rows": 10000})).await;
        if *status != 200 {
            let body = assert_problem(response, *status, code).await;
            assert_eq!(body["field"], "sql", "{sql}: {body}");
            continue;
        }
        let body = json_of(response, 200).await;
        let mut cells = 0;
        for row in body["rows"].as_array().unwrap() {
            for cell in row.as_array().unwrap() {
                let text = match cell {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                for part in text.split(',') {
                    assert!(
                        !secrets.contains(part.trim_matches(['"', '[', ']', ' '])),
                        "{sql} returned {part}"
                    );
                }
                cells += 1;
            }
        }
        assert!(cells > 0 || sql.contains("NOT LIKE"), "{sql} returned nothing");
    }

    // Functions see the masked value: its length, its characters.
    let body = json_of(
        lab(
            &app,
            &granted,
            json!({"sql": format!("SELECT length(name), substr(name, 2, 1), name FROM {v} WHERE id_number = '{id}'")}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["rows"], json!([[masked_name.chars().count(), "*", masked_name]]));
    // The masked-name filter finds nobody by a plain name.
    let body = json_of(
        lab(
            &app,
            &granted,
            json!({"sql": format!("SELECT count(*) FROM {v} WHERE name NOT LIKE '%*%'")}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["rows"], json!([[0]]));
}

#[tokio::test]
async fn views_rows_and_limits() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let granted = app.key("consumer_granted");
    let v = view_name(POPULATION_CODE);
    assert_eq!(v, "r_1_01_001_000001");
    let body = json_of(app.get("/api/v1/lab/views", &granted).await, 200).await;
    let population = body["views"]
        .as_array()
        .unwrap()
        .iter()
        .find(|view| view["resource_code"] == POPULATION_CODE)
        .expect("the granted consumer has a population view")
        .clone();
    assert_eq!(population["view"], v.as_str());
    let columns: Vec<(&str, bool)> = population["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["masked"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        columns,
        [
            ("id_number", false),
            ("name", true),
            ("gender", false),
            ("birth_date", false),
            ("region_code", false),
            ("address", true),
            ("phone", true),
        ]
    );
    // The ungranted consumer has no population view.
    let body = json_of(app.get("/api/v1/lab/views", &app.key("consumer_ungranted")).await, 200).await;
    assert!(
        body["views"]
            .as_array()
            .unwrap()
            .iter()
            .all(|view| view["resource_code"] != POPULATION_CODE),
        "{body}"
    );
    assert_problem(
        lab(
            &app,
            &app.key("consumer_ungranted"),
            json!({"sql": format!("SELECT * FROM {v}")}),
        )
        .await,
        422,
        "unknown_view",
    )
    .await;

    // Row limits: `truncated` says rows were left out.
    let body = json_of(
        lab(
            &app,
            &granted,
            json!({"sql": format!("SELECT id_number FROM {v}"), "max_rows": 10}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["row_count"], 10);
    assert_eq!(body["truncated"], true);
    assert_eq!(body["columns"], json!([{"name": "id_number", "type": "Utf8"}]));
    let count = json_of(
        lab(&app, &granted, json!({"sql": format!("SELECT count(*) FROM {v}")})).await,
        200,
    )
    .await;
    let total = count["rows"][0][0].as_u64().unwrap();
    let body = json_of(
        lab(&app, &granted, json!({"sql": format!("SELECT id_number FROM {v}")})).await,
        200,
    )
    .await;
    assert_eq!(body["row_count"].as_u64().unwrap(), total.min(1000));
    assert_eq!(body["truncated"], total > 1000);
    for bad in [json!(0), json!(10_001)] {
        let body = assert_problem(
            lab(&app, &granted, json!({"sql": "SELECT 1", "max_rows": bad})).await,
            422,
            "invalid_body",
        )
        .await;
        assert_eq!(body["field"], "max_rows");
    }
    assert_problem(
        lab(&app, &granted, json!({"sql": "SELECT 1", "limit": 5})).await,
        422,
        "invalid_body",
    )
    .await;
    let response = app
        .client
        .post(format!("{}/api/v1/lab/query", app.address))
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "unauthenticated").await;
}
