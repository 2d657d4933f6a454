//! Themed libraries (主题库): declared as SQL over the population library, materialized,
//! catalogued as a resource, served through the exchange API under a grant, and following
//! their input when it changes.

use std::collections::BTreeSet;

use huitong::demo::POPULATION_CODE;
use huitong_tests::{MetaDb, TestApp, assert_problem, json_of, spawn_app};
use policy::Role;
use serde_json::{Value, json};
use sqlx::Connection;

const ELDERLY_SQL: &str = "SELECT id_number, name, birth_date, region_code FROM population \
                           WHERE birth_date < DATE '1966-01-01'";

/// 老年人口专题库: people born before 1966, with their household region.
fn elderly() -> Value {
    json!({
        "name": "elderly",
        "label_zh": "老年人口专题库",
        "description": "1966年以前出生的户籍人口，供养老服务使用",
        "sql": ELDERLY_SQL,
        "key": "id_number",
        "fields": [
            {"name": "name", "label_zh": "姓名", "kind": "person_name", "sensitivity": "L3"},
            {"name": "id_number", "label_zh": "公民身份号码", "kind": "id_number", "sensitivity": "L3"},
            {"name": "birth_date", "label_zh": "出生日期", "kind": "date", "sensitivity": "L2"},
            {"name": "region_code", "label_zh": "户籍地行政区划代码", "kind": "region_code", "sensitivity": "L1"}
        ],
        "refresh": "on_change"
    })
}

/// The theme's resource, as the platform registers it (provider: 市大数据管理局).
fn elderly_resource() -> Value {
    json!({
        "name": "老年人口专题信息",
        "provider_code": "DSJ",
        "classification": "theme",
        "class_code": "2-01-001",
        "library": "elderly",
        "summary": "1966年以前出生的户籍人口",
        "share_type": "conditional",
        "share_conditions": "仅用于养老服务与补贴发放",
        "legal_basis": "《中华人民共和国老年人权益保障法》",
        "share_method": "api",
        "open_type": "not_open",
        "update_cycle": "real_time",
        "items": [
            {"name": "id_number", "label_zh": "公民身份号码", "data_type": "string", "length": 18, "sensitivity": "L3", "is_key": true},
            {"name": "name", "label_zh": "姓名", "data_type": "string", "sensitivity": "L3"},
            {"name": "birth_date", "label_zh": "出生日期", "data_type": "date", "sensitivity": "L2"},
            {"name": "region_code", "label_zh": "户籍地行政区划代码", "data_type": "string", "sensitivity": "L1"}
        ]
    })
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The id numbers of every record of `resource` that `key` may see under `filter`.
async fn ids(app: &TestApp, resource: &str, key: &str, filter: Option<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut query = vec!["limit=1000".to_string()];
        if let Some(f) = filter {
            query.push(format!("filter={}", encode(f)));
        }
        if let Some(c) = &cursor {
            query.push(format!("cursor={}", encode(c)));
        }
        let page = json_of(
            app.get(&format!("/api/v1/exchange/{resource}/records?{}", query.join("&")), key)
                .await,
            200,
        )
        .await;
        for record in page["records"].as_array().unwrap() {
            out.insert(record["id_number"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
    panic!("paging did not end");
}

/// The population records born before 1966, as 卫健委's demo grant sees them (id number and
/// birth date plain): what the theme must hold.
async fn expected_elderly(app: &TestApp) -> BTreeSet<String> {
    ids(
        app,
        POPULATION_CODE,
        &app.key("consumer_granted"),
        Some("birth_date < '1966-01-01'"),
    )
    .await
}

/// Registers and publishes the theme's resource; 卫健委 (WJW) asks for it and 大数据局 grants
/// it with the id number plain. Returns the resource code.
async fn catalogue_and_grant(app: &TestApp) -> String {
    let admin = app.key("platform_admin");
    let created = json_of(app.post("/api/v1/resources", &admin, &elderly_resource()).await, 201).await;
    let code = created["code"].as_str().unwrap().to_string();
    for action in ["submit", "publish"] {
        json_of(
            app.post(&format!("/api/v1/resources/{code}/{action}"), &admin, &json!({}))
                .await,
            200,
        )
        .await;
    }
    let items = ["id_number", "name", "birth_date", "region_code"];
    let demand = json_of(
        app.post(
            "/api/v1/demands",
            &app.key("consumer_granted"),
            &json!({"resource_code": code, "purpose": "高龄津贴发放核对", "legal_basis": "《老年人权益保障法》",
                    "requested_items": items, "expected_daily_calls": 500}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(demand["responsible_department"], "DSJ");
    let dsj = app.issue_key(Role::ProviderAdmin, Some("DSJ")).await;
    json_of(
        app.post(
            &format!("/api/v1/demands/{}/decision", demand["id"]),
            &dsj,
            &json!({"decision": "approve", "items": items, "plain_items": ["id_number"]}),
        )
        .await,
        200,
    )
    .await;
    code
}

/// Follows the theme until a materialization after `since` (by id) has read population at
/// `version` or later; returns it.
async fn wait_for_materialization(app: &TestApp, since: i64, version: i64) -> Value {
    let admin = app.key("platform_admin");
    for _ in 0..6000 {
        let theme = json_of(app.get("/api/v1/themes/elderly", &admin).await, 200).await;
        let done = theme["materializations"].as_array().unwrap().iter().find(|m| {
            m["id"].as_i64().unwrap() > since
                && m["status"] != "running"
                && m["input_versions"]["population"].as_i64().unwrap_or(-1) >= version
        });
        if let Some(done) = done {
            return done.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the theme did not follow population v{version} within ten minutes");
}

huitong_tests::on_both_databases! {
    a_theme_is_materialized_served_under_its_grant_and_follows_its_input => theme_lifecycle;
}

async fn theme_lifecycle(app: &TestApp) {
    let admin = app.key("platform_admin");

    // Declared: open and empty, reading population.
    let declared = json_of(app.post("/api/v1/themes", &admin, &elderly()).await, 201).await;
    assert_eq!(declared["inputs"], json!(["population"]));
    assert_eq!(declared["refresh"], "on_change");
    assert_eq!(declared["department_code"], "DSJ");
    assert_eq!(declared["library"]["records"], 0);
    assert!(declared["last_materialized_at"].is_null());

    // Materialized by hand: exactly the population records born before 1966.
    let expected = expected_elderly(app).await;
    assert!(expected.len() > 100, "the demo has elderly people: {}", expected.len());
    let first = json_of(
        app.post("/api/v1/themes/elderly/materializations", &admin, &Value::Null)
            .await,
        201,
    )
    .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["trigger"], "manual");
    assert_eq!(
        first["counts"]["inserted"].as_u64().unwrap() as usize,
        expected.len(),
        "{first}"
    );
    assert_eq!(first["counts"]["rejected"], 0, "{first}");
    assert!(first["input_versions"]["population"].as_i64().unwrap() > 0);
    let theme = json_of(app.get("/api/v1/themes/elderly", &admin).await, 200).await;
    assert_eq!(theme["last_version"], first["library_version"]);
    assert_eq!(theme["library"]["records"].as_u64().unwrap() as usize, expected.len());
    assert_eq!(theme["materializations"][0]["id"], first["id"]);

    // Nothing changed: a second materialization commits nothing.
    let again = json_of(
        app.post("/api/v1/themes/elderly/materializations", &admin, &Value::Null)
            .await,
        201,
    )
    .await;
    assert_eq!(again["counts"]["unchanged"].as_u64().unwrap() as usize, expected.len());
    assert_eq!(again["library_version"], first["library_version"]);

    // Served like a base library once catalogued and granted: the grant's plain id number,
    // the name masked, the region as stored; a younger person is not in the theme.
    let code = catalogue_and_grant(app).await;
    let wjw = app.key("consumer_granted");
    assert_eq!(ids(app, &code, &wjw, None).await, expected);
    let someone = expected.iter().next().unwrap();
    let record = json_of(app.lookup(&code, someone, Some(&wjw)).await, 200).await;
    assert_eq!(record["record"]["id_number"], someone.as_str());
    let name = record["record"]["name"].as_str().unwrap();
    assert!(name.chars().skip(1).all(|c| c == '*'), "{record}");
    assert!(record["record"]["birth_date"].as_str().unwrap() < "1966-01-01");
    assert_eq!(record["masked"], json!(["name"]));
    assert_problem(
        app.lookup(&code, someone, Some(&app.key("consumer_ungranted"))).await,
        403,
        "no_grant",
    )
    .await;

    // Population changes at its source: one elderly person is removed, one younger person's
    // birth date is corrected to 1950. After 公安局's next run the theme follows by itself.
    let source = app.data_path().join("sources").join("gongan_hukou.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", source.display()))
        .await
        .unwrap();
    let (mut removed, mut corrected) = (None, None);
    for id in &expected {
        if sqlx::query("SELECT 1 FROM hukou WHERE sfzh = $1")
            .bind(id)
            .fetch_optional(&mut conn)
            .await
            .unwrap()
            .is_some()
        {
            removed = Some(id.clone());
            break;
        }
    }
    let younger: Vec<String> = sqlx::query_scalar("SELECT sfzh FROM hukou WHERE csrq >= '1970' ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    for id in younger {
        if app.lookup(&code, &id, Some(&wjw)).await.status() == 404
            && app.lookup_population(&id, "consumer_granted").await.status() == 200
        {
            corrected = Some(id);
            break;
        }
    }
    let (removed, corrected) = (
        removed.expect("a clean elderly row"),
        corrected.expect("a younger person"),
    );
    sqlx::query("DELETE FROM hukou WHERE sfzh = $1")
        .bind(&removed)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE hukou SET csrq = '1950-03-01' WHERE sfzh = $1")
        .bind(&corrected)
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let run = app.run_connector("gaj-hukou", &admin).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let followed = wait_for_materialization(
        app,
        again["id"].as_i64().unwrap(),
        run["library_version"].as_i64().unwrap(),
    )
    .await;
    assert_eq!(followed["trigger"], "on_change");
    assert_eq!(followed["status"], "succeeded", "{followed}");
    assert_eq!(
        (
            followed["counts"]["inserted"].as_i64(),
            followed["counts"]["deleted"].as_i64()
        ),
        (Some(1), Some(1)),
        "{followed}"
    );
    let expected_now = expected_elderly(app).await;
    assert!(expected_now.contains(&corrected) && !expected_now.contains(&removed));
    assert_eq!(ids(app, &code, &wjw, None).await, expected_now);
    assert_problem(app.lookup(&code, &removed, Some(&wjw)).await, 404, "record_not_found").await;
    let moved_in = json_of(app.lookup(&code, &corrected, Some(&wjw)).await, 200).await;
    assert_eq!(moved_in["record"]["birth_date"], "1950-03-01");
}

/// Each bad declaration → its problem; none leaves a theme behind.
#[tokio::test]
async fn bad_declarations_are_refused_naming_the_part_at_fault() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let admin = app.key("platform_admin");
    let with = |changes: &[(&str, Value)]| {
        let mut body = elderly();
        for (k, v) in changes {
            body[*k] = v.clone();
        }
        body
    };
    let sql = |s: &str| with(&[("sql", json!(s))]);
    let fields = |names: &[&str]| {
        let all = elderly()["fields"].as_array().unwrap().clone();
        json!(
            all.into_iter()
                .filter(|f| names.contains(&f["name"].as_str().unwrap()))
                .collect::<Vec<_>>()
        )
    };
    // (case, body, status, code, the field named; None where serde names the bad value instead)
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "a base library's name",
            with(&[("name", json!("population"))]),
            422,
            "validation_failed",
            Some("name"),
        ),
        (
            "not snake_case",
            with(&[("name", json!("Elderly"))]),
            422,
            "validation_failed",
            Some("name"),
        ),
        (
            "an unknown table",
            sql("SELECT id_number FROM nowhere"),
            422,
            "validation_failed",
            Some("sql"),
        ),
        (
            "itself",
            sql("SELECT * FROM elderly"),
            422,
            "validation_failed",
            Some("sql"),
        ),
        (
            "an unknown column",
            sql("SELECT id_number, nickname AS name, birth_date, region_code FROM population"),
            422,
            "validation_failed",
            Some("sql"),
        ),
        (
            "a system column",
            sql("SELECT id_number, _source AS name, birth_date, region_code FROM population"),
            422,
            "validation_failed",
            Some("sql"),
        ),
        (
            "not SQL",
            sql("SELEKT everything"),
            422,
            "validation_failed",
            Some("sql"),
        ),
        (
            "two statements",
            sql(&format!("{ELDERLY_SQL}; {ELDERLY_SQL}")),
            422,
            "validation_failed",
            Some("sql"),
        ),
        (
            "a write",
            sql("DELETE FROM population"),
            422,
            "validation_failed",
            Some("sql"),
        ),
        (
            "a definition",
            sql("CREATE TABLE x AS SELECT * FROM population"),
            422,
            "validation_failed",
            Some("sql"),
        ),
        (
            "an undeclared output column",
            sql("SELECT id_number, name, birth_date, region_code, gender FROM population"),
            422,
            "validation_failed",
            Some("fields"),
        ),
        (
            "a declared field not output",
            with(&[(
                "fields",
                json!(
                    elderly()["fields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .cloned()
                        .chain([
                            json!({"name": "phone", "label_zh": "联系电话", "kind": "mobile", "sensitivity": "L4"})
                        ])
                        .collect::<Vec<_>>()
                ),
            )]),
            422,
            "validation_failed",
            Some("fields"),
        ),
        (
            "a column output twice",
            sql(
                "SELECT p.id_number, p.name, p.birth_date, p.region_code, q.name FROM population p \
                 JOIN population q ON p.id_number = q.id_number",
            ),
            422,
            "validation_failed",
            Some("fields"),
        ),
        (
            "no fields",
            with(&[("fields", json!([]))]),
            422,
            "validation_failed",
            Some("fields"),
        ),
        (
            "a key not among the fields",
            with(&[("key", json!("phone"))]),
            422,
            "validation_failed",
            Some("key"),
        ),
        (
            "fields missing the key",
            with(&[("fields", fields(&["name", "birth_date", "region_code"]))]),
            422,
            "validation_failed",
            Some("key"),
        ),
        (
            "an unknown kind",
            with(&[(
                "fields",
                json!([{"name": "id_number", "label_zh": "公民身份号码", "kind": "passport", "sensitivity": "L3"}]),
            )]),
            422,
            "invalid_body",
            None,
        ),
        (
            "an unknown refresh",
            with(&[("refresh", json!("hourly"))]),
            422,
            "invalid_body",
            Some("refresh"),
        ),
    ];
    for (case, body, status, code, field) in cases {
        let problem = assert_problem(app.post("/api/v1/themes", &admin, &body).await, status, code).await;
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{case}: {problem}");
        }
    }
    assert_problem(
        app.post("/api/v1/themes", &app.key("consumer_granted"), &elderly())
            .await,
        403,
        "forbidden",
    )
    .await;
    let listed = json_of(app.get("/api/v1/themes", &app.key("consumer_granted")).await, 200).await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["enterprise_credit", "newborn"],
        "only the demo's: no refused declaration left a theme"
    );
    assert_problem(app.get("/api/v1/themes/elderly", &admin).await, 404, "theme_not_found").await;
    assert_problem(
        app.post("/api/v1/themes/elderly/materializations", &admin, &Value::Null)
            .await,
        404,
        "theme_not_found",
    )
    .await;

    // Declared once; a second declaration of the name is a conflict.
    json_of(app.post("/api/v1/themes", &admin, &elderly()).await, 201).await;
    let taken = assert_problem(app.post("/api/v1/themes", &admin, &elderly()).await, 409, "conflict").await;
    assert_eq!(taken["field"], "name");
    let listed = json_of(app.get("/api/v1/themes", &app.key("consumer_granted")).await, 200).await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        3,
        "the demo's two and elderly, once"
    );
}

/// Rows without a key, with a value that does not normalize as its declared field requires, or
/// repeating a key are counted as rejected with the reason; the rest are written.
#[tokio::test]
async fn rows_a_theme_cannot_hold_are_rejected_with_their_reason() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let admin = app.key("platform_admin");
    let (_, people) = app.population_health().await;
    let (bad_date, twice) = (&app.sample_ids[0], &app.sample_ids[1]);
    let sql = format!(
        "SELECT id_number, CASE WHEN id_number = '{bad_date}' THEN 'not a date' \
         ELSE CAST(birth_date AS VARCHAR) END AS birth_date FROM population \
         UNION ALL SELECT CAST(NULL AS VARCHAR) AS id_number, '1990-01-02' AS birth_date \
         UNION ALL SELECT id_number, CAST(birth_date AS VARCHAR) AS birth_date FROM population \
         WHERE id_number = '{twice}'"
    );
    let declaration = json!({
        "name": "birthdays", "label_zh": "出生日期专题库", "sql": sql, "key": "id_number",
        "fields": [
            {"name": "id_number", "label_zh": "公民身份号码", "kind": "id_number", "sensitivity": "L3"},
            {"name": "birth_date", "label_zh": "出生日期", "kind": "date", "sensitivity": "L2"}
        ],
        "refresh": "irregular"
    });
    json_of(app.post("/api/v1/themes", &admin, &declaration).await, 201).await;
    let done = json_of(
        app.post("/api/v1/themes/birthdays/materializations", &admin, &Value::Null)
            .await,
        201,
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let counts = &done["counts"];
    assert_eq!(counts["read"], people + 2, "{done}");
    assert_eq!(counts["rejected"], 3, "{done}");
    assert_eq!(counts["inserted"], people - 1, "{done}");
    let mut rejections: Vec<(Value, Value, String)> = done["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].clone(),
                r["field"].clone(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rejections.sort_by_key(|r| r.0.to_string());
    let expected = [
        (json!(bad_date), "birth_date", "not a recognizable date"),
        (json!(twice), "id_number", "more than once"),
        (Value::Null, "id_number", "has no id_number"),
    ];
    for (key, field, reason) in expected {
        assert!(
            rejections
                .iter()
                .any(|r| r.0 == key && r.1 == field && r.2.contains(reason)),
            "{key} {field} {reason}: {rejections:?}"
        );
    }
    let theme = json_of(app.get("/api/v1/themes/birthdays", &admin).await, 200).await;
    assert_eq!(theme["library"]["records"], people - 1);
    assert_eq!(theme["refresh"], "irregular");
}

/// Without a server: the demo's way of declaring and materializing a theme; the theme's library
/// is opened again with the data dir, and `huitong sync` refreshes it when its input changes.
#[tokio::test]
async fn a_theme_is_reopened_with_its_data_dir_and_follows_huitong_sync() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let settings = huitong::settings::Settings {
        data_dir: dir.path().to_path_buf(),
        ..huitong::settings::Settings::default()
    };
    let declaration: huitong::themes::ThemeDeclaration = serde_json::from_value(elderly()).unwrap();
    let demo = huitong::demo::prepare(&settings, huitong_tests::TEST_ROWS, 7)
        .await
        .unwrap();
    let (theme, first) =
        huitong::themes::declare_and_materialize(&demo.catalog, &demo.libraries, dir.path(), &declaration, "DSJ")
            .await
            .unwrap();
    assert_eq!(first.status, catalog::RunStatus::Succeeded, "{first:?}");
    assert_eq!(first.trigger, "declare");
    assert!(first.counts.inserted > 100, "{first:?}");
    // Declared again (the demo run twice): the declaration stands, nothing changes.
    let (_, again) =
        huitong::themes::declare_and_materialize(&demo.catalog, &demo.libraries, dir.path(), &declaration, "DSJ")
            .await
            .unwrap();
    assert_eq!(
        (again.counts.unchanged, again.library_version),
        (first.counts.inserted, first.library_version)
    );
    // A theme over the theme: how many elderly people each region has.
    let regions: huitong::themes::ThemeDeclaration = serde_json::from_value(json!({
        "name": "elderly_by_region", "label_zh": "分区老年人口统计",
        "sql": "SELECT region_code, CAST(COUNT(*) AS VARCHAR) AS people FROM elderly GROUP BY region_code",
        "key": "region_code",
        "fields": [
            {"name": "region_code", "label_zh": "行政区划代码", "kind": "region_code", "sensitivity": "L1"},
            {"name": "people", "label_zh": "老年人口数", "kind": "text", "sensitivity": "L1"}
        ]
    }))
    .unwrap();
    let (regions, counted) =
        huitong::themes::declare_and_materialize(&demo.catalog, &demo.libraries, dir.path(), &regions, "DSJ")
            .await
            .unwrap();
    assert_eq!(regions.inputs, ["elderly"]);
    assert_eq!(counted.status, catalog::RunStatus::Succeeded, "{counted:?}");
    assert!(counted.counts.inserted > 1, "{counted:?}");
    drop(demo);

    // Reopened with the data dir: the theme's library is there with its records. An elderly
    // person leaves the household register.
    let removed = {
        let (_catalog, libraries) = huitong::startup::open_stores(&settings).await.unwrap();
        let elderly = libraries.get("elderly").expect("the theme is opened with the data dir");
        assert_eq!(elderly.len().unwrap() as i64, first.counts.inserted);
        let source = dir.path().join("sources").join("gongan_hukou.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", source.display()))
            .await
            .unwrap();
        let ids: Vec<String> = sqlx::query_scalar("SELECT sfzh FROM hukou ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let removed = ids
            .into_iter()
            .find(|id| elderly.get(id).unwrap().is_some())
            .expect("an elderly person with a clean ID number");
        sqlx::query("DELETE FROM hukou WHERE sfzh = $1")
            .bind(&removed)
            .execute(&mut conn)
            .await
            .unwrap();
        removed
    };

    let args = [
        "huitong",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "sync",
        "gaj-hukou",
    ];
    assert_eq!(
        huitong::cli::run(huitong::cli::Cli::parse_from(args)).await.unwrap(),
        std::process::ExitCode::SUCCESS
    );
    let (catalog, libraries) = huitong::startup::open_stores(&settings).await.unwrap();
    let elderly = libraries.get("elderly").unwrap();
    assert!(elderly.get(&removed).unwrap().is_none());
    assert_eq!(elderly.len().unwrap() as i64, first.counts.inserted - 1);
    let latest = &catalog.materializations(theme.id, 1).await.unwrap()[0];
    assert_eq!(latest.trigger, "on_change");
    assert_eq!((latest.counts.deleted, latest.counts.inserted), (1, 0), "{latest:?}");
    // The theme over it followed in turn: the removed person's region counts one fewer.
    let latest = &catalog.materializations(regions.id, 1).await.unwrap()[0];
    assert_eq!(latest.trigger, "on_change");
    assert_eq!(latest.counts.updated + latest.counts.deleted, 1, "{latest:?}");
}
