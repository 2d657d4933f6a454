//! Data quality reports (数据质量) over HTTP: scored after every committed run, kept as a trend,
//! exact on a library with known gaps, shown on the console's report page.

use huitong::demo::POPULATION_CODE;
use huitong::settings::SyncSettings;
use huitong_tests::{MetaDb, SpawnOptions, TestApp, assert_problem, json_of, person_id, spawn_app_with};
use serde_json::{Value, json};

const DIMENSIONS: [&str; 5] = ["completeness", "validity", "uniqueness", "consistency", "timeliness"];

/// No scheduler: only the runs a test starts add reports.
fn options(demo_rows: usize) -> SpawnOptions {
    options_on(MetaDb::Sqlite, demo_rows)
}

fn options_on(meta: MetaDb, demo_rows: usize) -> SpawnOptions {
    SpawnOptions {
        demo_rows,
        sync: SyncSettings {
            scheduler: false,
            ..SyncSettings::default()
        },
        ..SpawnOptions::on(meta)
    }
}

/// Reports stored for the population resource (at most 365).
async fn resource_points(app: &TestApp) -> usize {
    let response = app
        .get(
            &format!("/api/v1/quality/resources/{POPULATION_CODE}?trend=365"),
            &app.key("platform_admin"),
        )
        .await;
    match response.status().as_u16() {
        404 => 0,
        _ => json_of(response, 200).await["trend"].as_array().unwrap().len(),
    }
}

/// Runs `connector` (feeding population) through the API, then waits for the scoring that
/// follows the commit on the run's task: the resource's report is stored after the library's.
async fn sync(app: &TestApp, connector: &str) -> Value {
    let before = resource_points(app).await;
    let run = app.run_connector(connector, &app.key("platform_admin")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    for _ in 0..6000 {
        if resource_points(app).await > before {
            return run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no quality report within ten minutes of run {}", run["id"]);
}

async fn library_report(app: &TestApp, name: &str) -> Value {
    json_of(
        app.get(
            &format!("/api/v1/quality/libraries/{name}"),
            &app.key("consumer_granted"),
        )
        .await,
        200,
    )
    .await
}

fn dimension<'a>(detail: &'a Value, code: &str) -> &'a Value {
    detail["report"]["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dimension"] == code)
        .unwrap_or_else(|| panic!("no {code} in {detail}"))
}

fn field<'a>(dimension: &'a Value, name: &str) -> &'a Value {
    dimension["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {dimension}"))
}

mod the_demo_sync_leaves_reports_and_each_run_adds_a_point_to_the_trend {
    use huitong_tests::MetaDb;

    #[tokio::test]
    async fn on_sqlite() {
        super::reports_and_trend(MetaDb::Sqlite).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        super::reports_and_trend(MetaDb::Postgres).await;
    }
}

async fn reports_and_trend(meta: MetaDb) {
    let app = spawn_app_with(options_on(meta, huitong_tests::TEST_ROWS)).await;
    let reader = app.key("consumer_granted");

    let ranking = json_of(app.get("/api/v1/quality", &reader).await, 200).await;
    let items = ranking["items"].as_array().unwrap();
    let population = items
        .iter()
        .find(|i| i["scope"] == "library" && i["name"] == "population")
        .unwrap_or_else(|| panic!("no population report in {ranking}"));
    assert_eq!(population["label_zh"], "人口基础库");
    assert!(
        items
            .iter()
            .any(|i| i["scope"] == "resource" && i["name"] == POPULATION_CODE),
        "{ranking}"
    );
    let ranks: Vec<i64> = items.iter().map(|i| i["rank"].as_i64().unwrap()).collect();
    assert_eq!(ranks, (1..=items.len() as i64).collect::<Vec<_>>());
    let overalls: Vec<f64> = items.iter().map(|i| i["overall"].as_f64().unwrap()).collect();
    assert!(
        overalls.windows(2).all(|w| w[0] >= w[1]),
        "ranked best first: {overalls:?}"
    );

    let before = library_report(&app, "population").await;
    let report = &before["report"];
    assert_eq!(report["scope"], "library");
    let codes: Vec<&str> = report["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dimension"].as_str().unwrap())
        .collect();
    assert_eq!(codes, DIMENSIONS);
    for d in report["dimensions"].as_array().unwrap() {
        assert!(!d["rule_zh"].as_str().unwrap().is_empty(), "{d}");
        assert!(!d["rule_en"].as_str().unwrap().is_empty(), "{d}");
        assert!(d["figures"].is_object(), "{d}");
    }
    // Every population field has its completeness bar; the demo's sources were just read.
    assert_eq!(
        dimension(&before, "completeness")["fields"].as_array().unwrap().len(),
        12
    );
    assert_eq!(dimension(&before, "timeliness")["score"], 100.0);
    // The demo's dirty rows are quarantined: validity is below full marks.
    assert!(
        dimension(&before, "validity")["score"].as_f64().unwrap() < 100.0,
        "{before}"
    );
    let trend = before["trend"].as_array().unwrap();
    assert!(!trend.is_empty());
    assert_eq!(trend.last().unwrap()["overall"], report["overall"]);
    assert_eq!(population["overall"], report["overall"]);

    let resource_before = json_of(
        app.get(&format!("/api/v1/quality/resources/{POPULATION_CODE}"), &reader)
            .await,
        200,
    )
    .await;
    assert_eq!(resource_before["report"]["scope"], "resource");
    assert_eq!(resource_before["report"]["library"], "population");

    sync(&app, "gaj-hukou").await;

    let after = library_report(&app, "population").await;
    assert_eq!(after["trend"].as_array().unwrap().len(), trend.len() + 1, "{after}");
    assert!(after["report"]["computed_at"].as_str() > report["computed_at"].as_str());
    let resource_after = json_of(
        app.get(&format!("/api/v1/quality/resources/{POPULATION_CODE}"), &reader)
            .await,
        200,
    )
    .await;
    assert_eq!(
        resource_after["trend"].as_array().unwrap().len(),
        resource_before["trend"].as_array().unwrap().len() + 1
    );
    // `trend` bounds the points returned.
    let two = json_of(
        app.get("/api/v1/quality/libraries/population?trend=2", &reader).await,
        200,
    )
    .await;
    assert_eq!(two["trend"].as_array().unwrap().len(), 2);
    assert_eq!(two["trend"][1]["overall"], after["report"]["overall"]);
}

mod a_library_with_known_gaps_scores_exactly {
    use huitong_tests::MetaDb;

    #[tokio::test]
    async fn on_sqlite() {
        super::known_gaps(MetaDb::Sqlite).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        super::known_gaps(MetaDb::Postgres).await;
    }
}

async fn known_gaps(meta: MetaDb) {
    let app = spawn_app_with(options_on(meta, 0)).await;
    let admin = app.key("platform_admin");
    let dir = tempfile::tempdir().unwrap();
    // Ten people, phones for four; then a wrong check character and a repeated key.
    let mut csv = String::from("编号,身份证号,姓名,电话\n");
    for i in 1..=10u32 {
        let phone = if i <= 4 {
            format!("1390000000{i}")
        } else {
            String::new()
        };
        csv.push_str(&format!("{i},{},测试{i},{phone}\n", person_id(40_000 + i)));
    }
    csv.push_str("11,110105194912310021,坏号码,\n");
    csv.push_str(&format!("12,{},重复,\n", person_id(40_001)));
    let path = dir.path().join("gaps.csv");
    std::fs::write(&path, csv).unwrap();
    json_of(
        app.post(
            "/api/v1/connectors",
            &admin,
            &json!({"name": "gaj-gaps", "department_code": "GAJ", "resource_code": POPULATION_CODE, "config": {
                "source": {"kind": "csv", "path": path},
                "mapping": {"id_number": "身份证号", "name": "姓名", "phone": "电话"},
                "position_column": "编号",
                "schedule": "manual"
            }}),
        )
        .await,
        200,
    )
    .await;
    let run = sync(&app, "gaj-gaps").await;
    assert_eq!(run["counts"]["read"], 12, "{run}");
    assert_eq!(run["counts"]["inserted"], 10, "{run}");
    assert_eq!(run["counts"]["rejected"], 2, "{run}");

    let detail = library_report(&app, "population").await;
    let completeness = dimension(&detail, "completeness");
    assert_eq!(completeness["figures"]["records"], 10, "{completeness}");
    // 12 fields: id_number and name required (weight 2), ten optional (1): Σ weight = 14.
    // Filled: id_number 10, name 10, gender and birth_date 10 each (derived from the ID
    // number), phone 4, the other seven 0 → (2×10 + 2×10 + 10 + 10 + 4) / (10 × 14) = 64/140.
    assert_eq!(completeness["score"], 45.7);
    assert_eq!(completeness["figures"]["weighted_filled"], 64);
    assert_eq!(completeness["figures"]["weighted_total"], 140);
    assert_eq!(field(completeness, "phone")["score"], 40.0);
    assert_eq!(field(completeness, "name")["score"], 100.0);
    assert_eq!(field(completeness, "current_address")["score"], 0.0);

    // The bad ID number is a validity failure of id_number; the repeat is uniqueness's.
    let validity = dimension(&detail, "validity");
    assert_eq!(
        field(validity, "id_number")["figures"]["rejected_in_runs"],
        1,
        "{validity}"
    );
    assert_eq!(validity["figures"]["valid_values"], validity["figures"]["values"]);
    let uniqueness = dimension(&detail, "uniqueness");
    let read = uniqueness["figures"]["read"].as_f64().unwrap();
    let duplicates = uniqueness["figures"]["duplicates"].as_f64().unwrap();
    assert!(read >= 12.0 && duplicates >= 1.0, "{uniqueness}");
    let expected = ((100.0 * (1.0 - duplicates / read)) * 10.0).round() / 10.0;
    assert_eq!(uniqueness["score"].as_f64().unwrap(), expected);
    // Population references no other library.
    assert_eq!(dimension(&detail, "consistency")["score"], Value::Null);
}

#[tokio::test]
async fn the_report_page_draws_the_json_numbers() {
    let app = spawn_app_with(options(huitong_tests::TEST_ROWS)).await;
    let reader = app.key("consumer_granted");
    let detail = library_report(&app, "population").await;

    let page = app.get("/console/quality", &reader).await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("数据质量报告"), "{html}");
    assert!(html.contains("href=\"/console/quality/population\""), "{html}");
    let overall = format!("{:.1}", detail["report"]["overall"].as_f64().unwrap());
    assert!(html.contains(&overall), "{overall} not in {html}");

    let html = app
        .get("/console/quality/population", &reader)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("<span class=\"big\" id=\"overall\">{overall}</span>")),
        "{html}"
    );
    for d in DIMENSIONS {
        assert!(html.contains(&format!("<svg id=\"trend-{d}\"")), "trend-{d}");
    }
    assert!(html.contains("<svg id=\"trend-overall\""));
    for d in ["completeness", "validity"] {
        assert!(html.contains(&format!("<svg id=\"fields-{d}\"")), "fields-{d}");
    }
    assert!(
        html.contains("<title id=\"trend-overall-t\">综合得分趋势</title>"),
        "{html}"
    );
    let phone = field(dimension(&detail, "completeness"), "phone")["score"]
        .as_f64()
        .unwrap();
    assert!(
        html.contains(&format!("联系电话 phone: {phone:.1}")),
        "phone {phone:.1}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from outside"
    );

    let english = app
        .get("/console/quality/population?lang=en", &reader)
        .await
        .text()
        .await
        .unwrap();
    assert!(english.contains("Overall score trend"));
    assert!(
        english.contains(
            dimension(&detail, "timeliness")["rule_en"]
                .as_str()
                .unwrap()
                .split(" (")
                .next()
                .unwrap()
        )
    );
    let resource = app.get(&format!("/console/quality/{POPULATION_CODE}"), &reader).await;
    assert_eq!(resource.status().as_u16(), 200);
}

#[tokio::test]
async fn refusals_are_problems() {
    let app = spawn_app_with(options(huitong_tests::TEST_ROWS)).await;
    let reader = app.key("consumer_granted");
    let admin = app.key("platform_admin");

    let body = assert_problem(
        app.get("/api/v1/quality/libraries/populace", &reader).await,
        404,
        "library_not_found",
    )
    .await;
    assert_eq!(body["field"], "name");
    let body = assert_problem(
        app.get("/api/v1/quality/resources/9-99-999-000001", &reader).await,
        404,
        "resource_not_found",
    )
    .await;
    assert_eq!(body["field"], "code");
    assert_problem(
        app.get("/console/quality/populace", &reader).await,
        404,
        "resource_not_found",
    )
    .await;
    // Known but not scored yet: no report. (The demo feeds every base library, so the test
    // forgets spatial's reports behind the server.)
    sqlx::query("DELETE FROM quality_reports WHERE name = 'spatial'")
        .execute(app.catalog.pool())
        .await
        .unwrap();
    assert_problem(
        app.get("/api/v1/quality/libraries/spatial", &reader).await,
        404,
        "quality_report_not_found",
    )
    .await;
    let body = assert_problem(
        app.get("/api/v1/quality/libraries/population?trend=0", &reader).await,
        422,
        "invalid_query",
    )
    .await;
    assert_eq!(body["field"], "trend");
    let anonymous = app
        .client
        .get(format!("{}/api/v1/quality", app.address))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;
    let anonymous = app
        .client
        .get(format!("{}/console/quality", app.address))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401, "unauthenticated").await;

    // Scoring on demand is the platform admin's.
    assert_problem(
        app.post("/api/v1/quality/evaluations", &reader, &json!({})).await,
        403,
        "forbidden",
    )
    .await;
    let body = assert_problem(
        app.post("/api/v1/quality/evaluations", &admin, &json!({"library": "populace"}))
            .await,
        404,
        "library_not_found",
    )
    .await;
    assert_eq!(body["field"], "library");
    let body = assert_problem(
        app.post("/api/v1/quality/evaluations", &admin, &json!({"libary": "population"}))
            .await,
        422,
        "invalid_body",
    )
    .await;
    assert_eq!(body["field"], "libary");
    let points = library_report(&app, "population").await["trend"]
        .as_array()
        .unwrap()
        .len();
    let scored = json_of(
        app.post("/api/v1/quality/evaluations", &admin, &json!({"library": "population"}))
            .await,
        201,
    )
    .await;
    assert_eq!(scored["items"][0]["name"], "population");
    assert_eq!(
        library_report(&app, "population").await["trend"]
            .as_array()
            .unwrap()
            .len(),
        points + 1
    );
    // An empty body scores every library: spatial gets its report again.
    let empty = app
        .client
        .post(format!("{}/api/v1/quality/evaluations", app.address))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let scored = json_of(empty, 201).await;
    assert!(
        scored["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "spatial")
    );
    let spatial = library_report(&app, "spatial").await;
    assert_eq!(spatial["trend"].as_array().unwrap().len(), 1, "{spatial}");
    assert_eq!(
        dimension(&spatial, "timeliness")["score"],
        100.0,
        "synced just now: {spatial}"
    );
}

/// Themed libraries are scored like base libraries: after each materialization, from their
/// records and the materialization's counts, fresh against their resource's update cycle.
#[tokio::test]
async fn themed_libraries_are_scored_after_each_materialization() {
    let app = spawn_app_with(options(huitong_tests::TEST_ROWS)).await;
    let newborn = library_report(&app, "newborn").await;
    assert_eq!(newborn["report"]["library"], "newborn", "{newborn}");
    let points = newborn["trend"].as_array().unwrap().len();
    assert_eq!(
        dimension(&newborn, "timeliness")["score"],
        100.0,
        "just materialized: {newborn}"
    );
    // Newborns whose household-register row was quarantined came from other departments,
    // without household details.
    let completeness = dimension(&newborn, "completeness");
    let (filled, total) = (
        completeness["figures"]["weighted_filled"].as_f64().unwrap(),
        completeness["figures"]["weighted_total"].as_f64().unwrap(),
    );
    assert!(filled > 0.0 && total >= filled, "{newborn}");
    assert_eq!(
        completeness["score"].as_f64().unwrap(),
        (1000.0 * filled / total).round() / 10.0,
        "{newborn}"
    );
    let resource = json_of(
        app.get(
            "/api/v1/quality/resources/2-01-001-000001",
            &app.key("consumer_granted"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(resource["report"]["library"], "newborn", "{resource}");

    let done = json_of(
        app.post(
            "/api/v1/themes/newborn/materializations",
            &app.key("platform_admin"),
            &Value::Null,
        )
        .await,
        201,
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        library_report(&app, "newborn").await["trend"].as_array().unwrap().len(),
        points + 1
    );
    let ranking = json_of(app.get("/api/v1/quality", &app.key("consumer_granted")).await, 200).await;
    assert!(
        ranking["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "enterprise_credit"),
        "{ranking}"
    );
}
