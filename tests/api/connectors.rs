//! Connectors against real sources: the PostgreSQL and MariaDB servers `scripts/test` starts,
//! GBK CSV and XLSX files, a local HTTP server, and a second Huitong. Configured, run and
//! inspected over the HTTP API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use huitong::demo::POPULATION_CODE;
use huitong_tests::{
    SpawnOptions, TestApp, assert_problem, fresh_mysql_database, fresh_postgres_database, json_of, person_id,
    spawn_app_with,
};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor};

const SURNAMES: [&str; 6] = ["张", "王", "李", "赵", "刘", "陈"];
const GIVEN: [&str; 6] = ["伟", "芳", "娜", "敏", "静", "强"];

fn name_of(n: u32) -> String {
    format!("{}{}", SURNAMES[n as usize % 6], GIVEN[(n / 6) as usize % 6])
}

fn gender_code(n: u32) -> &'static str {
    if n.is_multiple_of(2) { "1" } else { "2" }
}

fn phone_of(n: u32) -> String {
    format!("139{:08}", n)
}

/// A department source table of `n` people (ids 1..=n) in PostgreSQL, loaded with COPY.
async fn postgres_source(n: u32) -> (String, sqlx::PgConnection) {
    let url = fresh_postgres_database().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("source database");
    conn.execute(
        "CREATE TABLE hukou (id bigint PRIMARY KEY, sfzh text, xm text, xb text, csrq date, hjqh text, \
         hjdz text, lxdh text, updated_at timestamp NOT NULL DEFAULT '2024-01-01 00:00:00')",
    )
    .await
    .unwrap();
    let mut copy = conn
        .copy_in_raw("COPY hukou (id, sfzh, xm, xb, csrq, hjqh, hjdz, lxdh) FROM STDIN")
        .await
        .unwrap();
    let mut chunk = String::new();
    for i in 1..=n {
        let id = person_id(i);
        let birth = format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]);
        chunk.push_str(&format!(
            "{i}\t{id}\t{}\t{}\t{birth}\t110105\t北京市朝阳区建国路{i}号\t{}\n",
            name_of(i),
            gender_code(i),
            phone_of(i)
        ));
        if chunk.len() > 1 << 20 {
            copy.send(chunk.as_bytes()).await.unwrap();
            chunk.clear();
        }
    }
    copy.send(chunk.as_bytes()).await.unwrap();
    copy.finish().await.unwrap();
    (url, conn)
}

fn hukou_mapping() -> Value {
    json!({
        "id_number": "sfzh",
        "name": "xm",
        "gender": {"column": "xb", "transforms": ["trim", {"code_table": {"codes": {"1": "男", "2": "女"}}}]},
        "birth_date": "csrq",
        "region_code": "hjqh",
        "address": "hjdz",
        "phone": "lxdh"
    })
}

/// Registers a connector of 公安局 feeding the population resource; returns its view.
async fn save_connector(app: &TestApp, name: &str, config: Value) -> Value {
    json_of(
        app.post(
            "/api/v1/connectors",
            &app.key("platform_admin"),
            &json!({"name": name, "department_code": "GAJ", "resource_code": POPULATION_CODE, "config": config}),
        )
        .await,
        200,
    )
    .await
}

/// The record of `key` as the demo's granted consumer (卫健委) sees it; `None` on 404.
async fn record(app: &TestApp, key: &str) -> Option<Value> {
    let response = app.lookup_population(key, "consumer_granted").await;
    match response.status().as_u16() {
        404 => None,
        200 => Some(response.json::<Value>().await.unwrap()["record"].clone()),
        other => panic!("lookup of {key}: {other}: {}", response.text().await.unwrap()),
    }
}

fn counts(run: &Value) -> (i64, i64, i64, i64, i64, i64) {
    let c = &run["counts"];
    let n = |k: &str| c[k].as_i64().unwrap();
    (
        n("read"),
        n("inserted"),
        n("updated"),
        n("unchanged"),
        n("rejected"),
        n("deleted"),
    )
}

#[tokio::test]
async fn postgres_full_runs_track_inserts_updates_and_deletes_and_quarantine_bad_rows() {
    let app = spawn_app_with(SpawnOptions::empty_library()).await;
    let admin = app.key("platform_admin");
    let (url, mut source) = postgres_source(300).await;
    // Dirt: a wrong check character, a gender outside the code table, a key twice.
    let bad_check = format!("{}0", &person_id(9001)[..17]);
    let bad_check = if bad_check == person_id(9001) {
        format!("{}1", &person_id(9001)[..17])
    } else {
        bad_check
    };
    source
        .execute(AssertSqlSafe(format!(
            "INSERT INTO hukou (id, sfzh, xm, xb, csrq, hjqh) VALUES \
             (9001, '{bad_check}', '错号', '1', '1990-01-01', '110105'), \
             (9002, '{}', '怪性别', '3', NULL, '110105'), \
             (9003, '{}', '重复', '1', NULL, '110105')",
            person_id(9002),
            person_id(1)
        )))
        .await
        .unwrap();
    let secret_dir = tempfile::tempdir().unwrap();
    let secret_file = secret_dir.path().join("gaj-pg-password");
    std::fs::write(&secret_file, "s3cret-never-shown\n").unwrap();
    let config = json!({
        "source": {"kind": "postgres", "url": url, "password": {"file": secret_file}, "table": "hukou"},
        "mapping": hukou_mapping(),
        "position_column": "id",
        "schedule": "manual"
    });
    let saved = save_connector(&app, "gaj-pg", config).await;
    assert_eq!(saved["kind"], "postgres");
    assert_eq!(saved["mode"], "full");

    let first = app.run_connector("gaj-pg", &admin).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(counts(&first), (303, 300, 0, 0, 3, 0));
    let version = first["library_version"].as_i64().unwrap();

    let quarantine = json_of(
        app.get(
            &format!("/api/v1/connectors/gaj-pg/runs/{}/quarantine", first["id"]),
            &admin,
        )
        .await,
        200,
    )
    .await;
    let by_position: BTreeMap<String, (Value, String)> = quarantine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["position"].as_str().unwrap().to_string(),
                (q["field"].clone(), q["reason"].as_str().unwrap().to_string()),
            )
        })
        .collect();
    assert_eq!(by_position["9001"].0, "id_number");
    assert!(by_position["9001"].1.contains("check"), "{:?}", by_position["9001"]);
    assert_eq!(by_position["9002"].0, "gender");
    assert!(by_position["9002"].1.contains("code table") && by_position["9002"].1.contains("xb"));
    assert_eq!(by_position["9003"].0, "id_number");
    assert!(by_position["9003"].1.contains("more than once"));

    let one = record(&app, &person_id(7)).await.expect("person 7 is in the library");
    assert_eq!(one["gender"], "女");
    assert_eq!(
        one["birth_date"],
        format!(
            "{}-{}-{}",
            &person_id(7)[6..10],
            &person_id(7)[10..12],
            &person_id(7)[12..14]
        )
    );

    // The source changes: 10 people move, 5 are removed.
    source
        .execute("UPDATE hukou SET hjdz = '北京市海淀区中关村大街1号', updated_at = now() WHERE id BETWEEN 11 AND 20")
        .await
        .unwrap();
    source
        .execute("DELETE FROM hukou WHERE id BETWEEN 21 AND 25")
        .await
        .unwrap();
    let second = app.run_connector("gaj-pg", &admin).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(counts(&second), (298, 0, 10, 285, 3, 5));
    assert!(second["library_version"].as_i64().unwrap() > version);
    assert!(
        record(&app, &person_id(21)).await.is_none(),
        "deleted in the source, deleted here"
    );
    assert!(record(&app, &person_id(11)).await.is_some());

    // Nothing changed: nothing new is written.
    let third = app.run_connector("gaj-pg", &admin).await;
    assert_eq!(counts(&third), (298, 0, 0, 295, 3, 0));

    // The password is read from its file at run time and shown nowhere.
    for path in [
        "/api/v1/connectors",
        "/api/v1/connectors/gaj-pg",
        "/api/v1/connectors/gaj-pg/runs",
    ] {
        let body = app.get(path, &admin).await.text().await.unwrap();
        assert!(!body.contains("s3cret"), "{path} shows the password");
        assert!(body.contains("gaj-pg-password") || path.ends_with("runs"), "{path}");
    }
}

#[tokio::test]
async fn a_truncated_source_does_not_empty_the_library() {
    let app = spawn_app_with(SpawnOptions::empty_library()).await;
    let admin = app.key("platform_admin");
    let (url, mut source) = postgres_source(100).await;
    let config = json!({
        "source": {"kind": "postgres", "url": url, "table": "hukou"},
        "mapping": hukou_mapping(),
        "schedule": "manual"
    });
    save_connector(&app, "gaj-pg", config).await;
    assert_eq!(app.run_connector("gaj-pg", &admin).await["status"], "succeeded");
    source.execute("DELETE FROM hukou WHERE id > 30").await.unwrap();
    let refused = app.run_connector("gaj-pg", &admin).await;
    assert_eq!(refused["status"], "failed");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("70 of the 100") && error.contains("max_delete_percent"),
        "{error}"
    );
    assert!(record(&app, &person_id(99)).await.is_some(), "nothing was deleted");
}

#[tokio::test]
async fn postgres_incremental_runs_read_from_the_watermark() {
    let app = spawn_app_with(SpawnOptions::empty_library()).await;
    let admin = app.key("platform_admin");
    let (url, mut source) = postgres_source(200).await;
    source
        .execute("UPDATE hukou SET updated_at = '2024-01-01 00:00:00'::timestamp + id * interval '1 minute'")
        .await
        .unwrap();
    let config = json!({
        "source": {"kind": "postgres", "url": url, "table": "hukou"},
        "mapping": hukou_mapping(),
        "mode": "incremental",
        "cursor": {"column": "updated_at", "kind": "timestamp"},
        "schedule": "manual"
    });
    save_connector(&app, "gaj-pg-inc", config).await;
    let first = app.run_connector("gaj-pg-inc", &admin).await;
    assert_eq!(counts(&first), (200, 200, 0, 0, 0, 0));

    // Three people change, two are born; a later run reads them and the row at the watermark.
    source
        .execute(
            "UPDATE hukou SET xm = '新名字', updated_at = '2025-06-01 08:00:00' WHERE id IN (3, 4, 5); \
             INSERT INTO hukou (id, sfzh, xm, xb, csrq, hjqh, updated_at) \
             SELECT 1000 + g, NULL, '新生儿', '1', '2025-05-01', '110105', '2025-06-01 09:00:00' \
             FROM generate_series(1, 2) g",
        )
        .await
        .unwrap();
    for (row, n) in [(1001, 5001), (1002, 5002)] {
        source
            .execute(AssertSqlSafe(format!(
                "UPDATE hukou SET sfzh = '{}' WHERE id = {row}",
                person_id(n)
            )))
            .await
            .unwrap();
    }
    let second = app.run_connector("gaj-pg-inc", &admin).await;
    let (read, inserted, updated, unchanged, rejected, deleted) = counts(&second);
    assert_eq!((inserted, updated, rejected, deleted), (2, 3, 0, 0), "{second}");
    assert_eq!(read, 6, "the five changed rows and the one at the old watermark");
    assert_eq!(unchanged, 1);
    assert_eq!(
        record(&app, &person_id(4)).await.unwrap()["name"],
        "新**",
        "masked for 卫健委"
    );

    let third = app.run_connector("gaj-pg-inc", &admin).await;
    assert_eq!(counts(&third).1 + counts(&third).2, 0, "nothing new: {third}");
}

#[tokio::test]
async fn mariadb_full_and_incremental_runs() {
    let app = spawn_app_with(SpawnOptions::empty_library()).await;
    let admin = app.key("platform_admin");
    let url = fresh_mysql_database().await;
    let mut source = sqlx::MySqlConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE jiuzhu (id INT PRIMARY KEY, shenfenzheng VARCHAR(18), xingming VARCHAR(20), \
         chusheng DATE, dizhi VARCHAR(100), gengxin DATETIME(6) NOT NULL)",
    )
    .execute(&mut source)
    .await
    .unwrap();
    let mut values = Vec::new();
    for i in 1..=150u32 {
        let id = person_id(20_000 + i);
        values.push(format!(
            "({i}, '{id}', '{}', '{}-{}-{}', '杭州市西湖区文三路{i}号', '2024-03-01 08:00:00.{i:06}')",
            name_of(i),
            &id[6..10],
            &id[10..12],
            &id[12..14]
        ));
    }
    // Full-width digits and spaces, as typed at a counter: normalized, not rejected.
    values.push(format!(
        "(151, '{}', ' 周　八 ', NULL, NULL, '2024-03-01 09:00:00')",
        person_id(20_151)
            .chars()
            .map(|c| if c.is_ascii_digit() {
                char::from_u32(c as u32 + 0xFEE0).unwrap()
            } else {
                c
            })
            .collect::<String>()
    ));
    sqlx::raw_sql(AssertSqlSafe(format!(
        "INSERT INTO jiuzhu VALUES {}",
        values.join(", ")
    )))
    .execute(&mut source)
    .await
    .unwrap();
    let config = json!({
        "source": {"kind": "mysql", "url": url, "table": "jiuzhu"},
        "mapping": {"id_number": "shenfenzheng", "name": "xingming", "birth_date": "chusheng", "address": "dizhi"},
        "position_column": "id",
        "mode": "incremental",
        "cursor": {"column": "gengxin", "kind": "timestamp"},
        "schedule": "manual"
    });
    save_connector(&app, "mzj-mariadb", config).await;
    let first = app.run_connector("mzj-mariadb", &admin).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(counts(&first), (151, 151, 0, 0, 0, 0));
    let zhou = record(&app, &person_id(20_151)).await.unwrap();
    assert_eq!(zhou["name"], "周*", "folded and trimmed, then masked for 卫健委");

    sqlx::raw_sql("UPDATE jiuzhu SET dizhi = '杭州市滨江区江南大道1号', gengxin = '2024-04-01 00:00:00' WHERE id <= 4")
        .execute(&mut source)
        .await
        .unwrap();
    let second = app.run_connector("mzj-mariadb", &admin).await;
    // The four changed rows, and the one at the old watermark (read again, unchanged).
    assert_eq!(counts(&second), (5, 0, 4, 1, 0, 0), "{second}");
}

/// Forwards TCP to `target` until a connection has brought `cut_after` bytes back from the
/// server: then drops that connection mid-stream and refuses new ones.
struct CuttingProxy {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    async fn start(target: String, cut_after: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::SeqCst) {
                    return; // dropping the listener: refused from now on
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let flag = flag.clone();
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.split();
                    let (mut sr, mut sw) = server.split();
                    let sent = AtomicU64::new(0);
                    let up = tokio::io::copy(&mut cr, &mut sw);
                    let down = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            let n = sr.read(&mut buf).await?;
                            if n == 0 {
                                return Ok::<_, std::io::Error>(());
                            }
                            let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                            if total > cut_after {
                                flag.store(true, Ordering::SeqCst);
                                return Ok(());
                            }
                            cw.write_all(&buf[..n]).await?;
                        }
                    };
                    tokio::select! { _ = up => {}, _ = down => {} }
                });
            }
        });
        Self { port, cut }
    }
}

#[tokio::test]
async fn a_source_lost_mid_run_is_retried_then_fails_with_nothing_committed() {
    let app = spawn_app_with(SpawnOptions::empty_library()).await;
    let admin = app.key("platform_admin");
    let (url, _source) = postgres_source(20_000).await;
    let parsed = url::Url::parse(&url).unwrap();
    let target = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap());
    let proxy = CuttingProxy::start(target, 256 * 1024).await;
    let mut via_proxy = parsed.clone();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let config = |url: &str| {
        json!({
            "source": {"kind": "postgres", "url": url, "table": "hukou"},
            "mapping": hukou_mapping(),
            "retries": 2,
            "retry_backoff_ms": 20,
            "schedule": "manual"
        })
    };
    save_connector(&app, "gaj-flaky", config(via_proxy.as_str())).await;
    let failed = app.run_connector("gaj-flaky", &admin).await;
    assert!(proxy.cut.load(Ordering::SeqCst), "the proxy cut the stream");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["attempts"], 3);
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("unreachable") && error.contains("gave up after 3 attempts"),
        "{error}"
    );
    assert!(failed["library_version"].is_null());
    assert!(
        record(&app, &person_id(1)).await.is_none(),
        "nothing of the failed run is visible"
    );
    let quarantine = json_of(
        app.get(
            &format!("/api/v1/connectors/gaj-flaky/runs/{}/quarantine", failed["id"]),
            &admin,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(quarantine["items"], json!([]));

    // Back online: the next run takes everything.
    save_connector(&app, "gaj-flaky", config(&url)).await;
    let recovered = app.run_connector("gaj-flaky", &admin).await;
    assert_eq!(counts(&recovered), (20_000, 20_000, 0, 0, 0, 0));
}

#[tokio::test]
async fn connector_configs_are_checked_whole_and_runs_are_for_their_owners() {
    let app = spawn_app_with(SpawnOptions::empty_library()).await;
    let admin = app.key("platform_admin");
    let save = |config: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.post(
                "/api/v1/connectors",
                &admin,
                &json!({"name": "bad", "department_code": "GAJ", "resource_code": POPULATION_CODE, "config": config}),
            )
            .await
        }
    };
    let source = json!({"kind": "postgres", "url": "postgres://reader@127.0.0.1:1/x", "table": "t"});
    let problem = assert_problem(
        save(json!({"source": source, "mapping": {"id_number": "sfzh", "shoe_size": "x"}})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["field"], "config.mapping.shoe_size");
    let problem = assert_problem(
        save(
            json!({"source": {"kind": "postgres", "url": "postgres://reader:pw@h/x", "table": "t"},
                    "mapping": {"id_number": "sfzh"}}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["field"], "config.source.url");
    assert!(!problem["detail"].as_str().unwrap().contains("pw"));
    let problem = assert_problem(
        save(json!({"source": {"kind": "oracle", "url": "x"}, "mapping": {}})).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("oracle"), "{problem}");
    let problem = assert_problem(
        save(json!({"source": source, "mapping": {"id_number": "sfzh"}, "mode": "incremental"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["field"], "config.cursor");
    assert_eq!(
        json_of(app.get("/api/v1/connectors", &admin).await, 200).await["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "bad")
            .count(),
        0,
        "nothing saved"
    );

    // The demo's 民政局 connector is not 公安局's to run; a consumer sees no connectors.
    let gaj = app.key("provider_admin");
    assert_problem(
        app.post("/api/v1/connectors/mzj-jiuzhu/runs", &gaj, &Value::Null).await,
        403,
        "forbidden",
    )
    .await;
    let listed = json_of(app.get("/api/v1/connectors", &gaj).await, 200).await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gaj-hukou"]);
    assert_problem(
        app.get("/api/v1/connectors", &app.key("consumer_granted")).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get("/api/v1/connectors/nope/runs", &admin).await,
        404,
        "connector_not_found",
    )
    .await;
    assert_problem(
        app.get("/api/v1/connectors/gaj-hukou/runs/999999", &admin).await,
        404,
        "run_not_found",
    )
    .await;
    assert_problem(
        app.get("/api/v1/connectors/gaj-hukou/runs?limit=0", &admin).await,
        422,
        "invalid_query",
    )
    .await;

    // An unreachable source fails its run with a clear message.
    let unreachable = json!({"source": source, "mapping": {"id_number": "sfzh"}, "retries": 0, "schedule": "manual"});
    json_of(
        app.post(
            "/api/v1/connectors",
            &admin,
            &json!({"name": "gaj-down", "department_code": "GAJ", "resource_code": POPULATION_CODE, "config": unreachable}),
        )
        .await,
        200,
    )
    .await;
    let run = app.run_connector("gaj-down", &admin).await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("source unreachable: postgres 127.0.0.1:1/x"),
        "{run}"
    );
}

#[tokio::test]
async fn the_scheduler_runs_connectors_on_their_schedule() {
    let mut options = SpawnOptions::empty_library();
    options.sync.tick_seconds = 1;
    let app = spawn_app_with(options).await;
    let admin = app.key("platform_admin");
    let (url, _source) = postgres_source(10).await;
    save_connector(
        &app,
        "gaj-every-second",
        json!({"source": {"kind": "postgres", "url": url, "table": "hukou"}, "mapping": hukou_mapping(),
               "schedule": {"every": 1}}),
    )
    .await;
    let mut scheduled = Vec::new();
    let mut runs = Value::Null;
    for _ in 0..600 {
        runs = json_of(app.get("/api/v1/connectors/gaj-every-second/runs", &admin).await, 200).await;
        scheduled = runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["trigger"] == "schedule" && r["status"] == "succeeded")
            .cloned()
            .collect();
        if scheduled.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(scheduled.len() >= 2, "two scheduled runs within a minute: {runs}");
    let view = json_of(app.get("/api/v1/connectors/gaj-every-second", &admin).await, 200).await;
    assert_eq!(view["schedule"], json!({"every": 1}));
    assert!(view["next_run_at"].is_string());
    // The demo's connectors follow the population resource's update cycle: not due again yet.
    let demo = json_of(app.get("/api/v1/connectors/gaj-hukou/runs", &admin).await, 200).await;
    assert!(demo["items"].as_array().unwrap().iter().all(|r| r["trigger"] == "cli"));
}

/// Grants `department` of `app` every population item in plain, through the demand workflow;
/// returns a consumer key of that department.
async fn plain_grant(app: &TestApp, department: &str) -> String {
    let consumer = app.issue_key(policy::Role::Consumer, Some(department)).await;
    let items = [
        "id_number",
        "name",
        "gender",
        "birth_date",
        "ethnicity",
        "region_code",
        "address",
        "phone",
    ];
    let demand = json_of(
        app.post(
            "/api/v1/demands",
            &consumer,
            &json!({"resource_code": POPULATION_CODE, "purpose": "区县数据回流：户籍人口", "legal_basis": "《浙江省公共数据条例》",
                    "requested_items": items, "expected_daily_calls": 100}),
        )
        .await,
        201,
    )
    .await;
    json_of(
        app.post(
            &format!("/api/v1/demands/{}/decision", demand["id"]),
            &app.key("provider_admin"),
            &json!({"decision": "approve", "items": items, "plain_items": items}),
        )
        .await,
        200,
    )
    .await;
    consumer
}

#[tokio::test]
async fn one_huitong_follows_another_through_its_change_feed() {
    let province = huitong_tests::spawn_app(huitong_tests::MetaDb::Sqlite).await;
    let city = spawn_app_with(SpawnOptions::empty_library()).await;
    let city_admin = city.key("platform_admin");
    let key_dir = tempfile::tempdir().unwrap();
    let plain_key = key_dir.path().join("province.key");
    std::fs::write(&plain_key, plain_grant(&province, "JTJ").await).unwrap();
    let masked_key = key_dir.path().join("masked.key");
    std::fs::write(&masked_key, province.key("consumer_granted")).unwrap();
    let all_fields = json!({"id_number": "id_number", "name": "name", "gender": "gender", "birth_date": "birth_date",
                            "ethnicity": "ethnicity", "region_code": "region_code", "address": "address", "phone": "phone"});
    let config = |key: &std::path::Path| {
        json!({
            "source": {"kind": "huitong", "base_url": province.address, "resource_code": POPULATION_CODE,
                       "api_key": {"file": key}, "page_size": 97},
            "mapping": all_fields,
            "mode": "incremental",
            "cursor": {"column": "_huitong_version", "kind": "integer"},
            "schedule": "manual"
        })
    };

    // A grant that masks items cannot feed a library.
    save_connector(&city, "province-population", config(&masked_key)).await;
    let refused = city.run_connector("province-population", &city_admin).await;
    assert_eq!(refused["status"], "failed");
    assert!(refused["error"].as_str().unwrap().contains("masked"), "{refused}");

    save_connector(&city, "province-population", config(&plain_key)).await;
    let first = city.run_connector("province-population", &city_admin).await;
    let (_, province_records) = province.population_health().await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(counts(&first).1, province_records, "every province record arrives");
    assert_eq!(city.population_health().await.1, province_records);
    for id in &province.sample_ids {
        assert_eq!(record(&city, id).await, record(&province, id).await, "{id}");
    }

    // The province's source changes: one person moves, one is removed; the province syncs,
    // then the city follows.
    let source = province.data_path().join("sources").join("gongan_hukou.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", source.display()))
        .await
        .unwrap();
    let (moved, removed) = (&province.sample_ids[0], &province.sample_ids[1]);
    sqlx::query("UPDATE hukou SET hjdz = '浙江省杭州市余杭区文一西路969号' WHERE sfzh = $1")
        .bind(moved)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM hukou WHERE sfzh = $1")
        .bind(removed)
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let province_run = province
        .run_connector("gaj-hukou", &province.key("platform_admin"))
        .await;
    assert_eq!(
        (counts(&province_run).2, counts(&province_run).5),
        (1, 1),
        "{province_run}"
    );

    let second = city.run_connector("province-population", &city_admin).await;
    let (_, _, updated, _, rejected, deleted) = counts(&second);
    assert_eq!((updated, deleted, rejected), (1, 1, 0), "{second}");
    assert!(counts(&second).0 < 10, "only the changes travel: {second}");
    assert_eq!(record(&city, moved).await, record(&province, moved).await);
    assert!(record(&city, removed).await.is_none());
}

#[tokio::test]
async fn the_change_feed_pages_by_key_under_policy() {
    let app = huitong_tests::spawn_app(huitong_tests::MetaDb::Sqlite).await;
    let path = format!("/api/v1/exchange/{POPULATION_CODE}/changes");
    let granted = app.key("consumer_granted");
    let (version, records) = app.population_health().await;
    let mut cursor: Option<String> = None;
    let mut keys = Vec::new();
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?since_version=0&limit=150&cursor={c}"),
            None => format!("{path}?since_version=0&limit=150"),
        };
        let page = json_of(app.get(&url, &granted).await, 200).await;
        assert_eq!(page["as_of_version"], version);
        assert_eq!(page["masked"], json!(["name", "address", "phone"]));
        for change in page["changes"].as_array().unwrap() {
            assert_eq!(change["op"], "upsert");
            assert!(
                change["record"]["name"].as_str().unwrap().contains('*'),
                "masked as granted"
            );
            keys.push(change["key"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(keys.len() as i64, records, "every record once");
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "in key order");
    let none = json_of(app.get(&format!("{path}?since_version={version}"), &granted).await, 200).await;
    assert_eq!(none["changes"], json!([]));

    assert_problem(
        app.get(&format!("{path}?since_version=0"), &app.key("consumer_ungranted"))
            .await,
        403,
        "no_grant",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}?since_version=-1"), &granted).await,
        422,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}?since_version=0&cursor=zz"), &granted).await,
        422,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}?since_version=0&limit=0"), &granted).await,
        422,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}?since=0"), &granted).await,
        422,
        "invalid_query",
    )
    .await;
}

#[tokio::test]
async fn gbk_csv_and_xlsx_files_feed_the_library() {
    let app = spawn_app_with(SpawnOptions::empty_library()).await;
    let admin = app.key("platform_admin");
    let dir = tempfile::tempdir().unwrap();
    // 公安 exports a GBK CSV with Chinese headers, as Excel on Chinese Windows saves it.
    let mut csv = String::from("编号,公民身份号码,姓名,性别,出生日期\r\n");
    for i in 1..=120u32 {
        let id = person_id(30_000 + i);
        csv.push_str(&format!(
            "{i},{id},{},{},{}年{}月{}日\r\n",
            name_of(i),
            gender_code(i),
            &id[6..10],
            &id[10..12],
            &id[12..14]
        ));
    }
    csv.push_str("121,11010519491231002X,坏日期,1,1990年13月1日\r\n");
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&csv);
    assert!(!unmappable);
    let csv_path = dir.path().join("户籍.csv");
    std::fs::write(&csv_path, &gbk).unwrap();
    save_connector(
        &app,
        "gaj-csv",
        json!({
            "source": {"kind": "csv", "path": csv_path},
            "mapping": {"id_number": "公民身份号码", "name": "姓名", "birth_date": "出生日期",
                        "gender": {"column": "性别", "transforms": [{"code_table": {"codes": {"1": "男", "2": "女"}}}]}},
            "position_column": "编号",
            "schedule": "manual"
        }),
    )
    .await;
    let run = app.run_connector("gaj-csv", &admin).await;
    assert_eq!(counts(&run), (121, 120, 0, 0, 1, 0), "{run}");
    let q = json_of(
        app.get(
            &format!("/api/v1/connectors/gaj-csv/runs/{}/quarantine", run["id"]),
            &admin,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(q["items"][0]["position"], "121");
    assert_eq!(q["items"][0]["field"], "birth_date");
    assert_eq!(q["items"][0]["raw"]["姓名"], "坏日期");
    let one = record(&app, &person_id(30_001)).await.unwrap();
    assert_eq!(one["gender"], "女");
    assert_eq!(
        one["birth_date"],
        format!(
            "{}-{}-{}",
            &person_id(30_001)[6..10],
            &person_id(30_001)[10..12],
            &person_id(30_001)[12..14]
        )
    );

    // 民政 keeps a workbook: a title row, then headers; phones typed as numbers.
    let xlsx_path = dir.path().join("救助对象.xlsx");
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet().set_name("救助对象").unwrap();
    sheet.write(0, 0, "2024年度城乡低保对象名册").unwrap();
    for (c, h) in ["身份证号", "姓名", "联系电话"].iter().enumerate() {
        sheet.write(1, c as u16, *h).unwrap();
    }
    for i in 1..=40u32 {
        let row = i + 1;
        sheet.write(row, 0, person_id(30_000 + i)).unwrap();
        sheet.write(row, 1, name_of(i)).unwrap();
        sheet.write(row, 2, 13_900_000_000f64 + f64::from(i)).unwrap();
    }
    workbook.save(&xlsx_path).unwrap();
    json_of(
        app.post(
            "/api/v1/connectors",
            &admin,
            &json!({"name": "mzj-xlsx", "department_code": "MZJ", "resource_code": POPULATION_CODE, "config": {
                "source": {"kind": "xlsx", "path": xlsx_path, "sheet": "救助对象", "header_row": 2},
                "mapping": {"id_number": "身份证号", "name": "姓名", "phone": "联系电话"},
                "schedule": "manual"
            }}),
        )
        .await,
        200,
    )
    .await;
    let run = app.run_connector("mzj-xlsx", &admin).await;
    // 民政 is not the authoritative source of population: it fills the phone 公安 left empty.
    assert_eq!(counts(&run), (40, 0, 40, 0, 0, 0), "{run}");
    assert_eq!(record(&app, &person_id(30_001)).await.unwrap()["phone"], "139****0001");
}

#[tokio::test]
async fn the_change_feed_returns_exactly_the_changes_of_a_second_demo_sync() {
    let app = huitong_tests::spawn_app(huitong_tests::MetaDb::Sqlite).await;
    let (before, _) = app.population_health().await;
    let sources =
        huitong::demo::generate::ensure_sources(&app.data_path().join("sources"), huitong_tests::TEST_ROWS, 7)
            .await
            .unwrap();
    let day = huitong::demo::generate::next_day(&sources).await.unwrap();
    assert_eq!(
        (day.moved.len(), day.removed.len(), day.born.len()),
        (2, 1, 2),
        "{day:?}"
    );
    let run = app.run_connector("gaj-hukou", &app.key("platform_admin")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (_, inserted, updated, _, _, deleted) = counts(&run);
    assert_eq!((inserted, updated, deleted), (2, 2, 1), "{run}");
    // The other departments feeding population sync too, as the demo does, and change nothing.
    for connector in ["mzj-jiuzhu", "wjw-qianyue", "rsj-canbao"] {
        let run = app.run_connector(connector, &app.key("platform_admin")).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let (_, inserted, updated, _, _, deleted) = counts(&run);
        assert_eq!((inserted, updated, deleted), (0, 0, 0), "{connector}: {run}");
    }

    let mut changes: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/api/v1/exchange/{POPULATION_CODE}/changes?since_version={before}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = json_of(app.get(&url, &app.key("consumer_granted")).await, 200).await;
        changes.extend(page["changes"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let got: std::collections::BTreeMap<String, String> = changes
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_string(),
                c["op"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got.len(), changes.len(), "each key once: {changes:?}");
    let mut want = std::collections::BTreeMap::new();
    for id in day.moved.iter().chain(&day.born) {
        want.insert(id.clone(), "upsert".to_string());
    }
    for id in &day.removed {
        want.insert(id.clone(), "delete".to_string());
    }
    assert_eq!(got, want, "exactly the day's changes: {changes:?}");
    let moved = &changes.iter().find(|c| c["key"] == day.moved[0].as_str()).unwrap()["record"];
    assert!(
        moved["address"].as_str().unwrap().contains("****"),
        "masked as granted: {moved}"
    );
}
