use std::process::ExitCode;

use clap::Parser;
use huitong::cli::{Cli, run};
use huitong_tests::{MetaDb, TestApp, spawn_app};

/// Makes `n` calls with a mix of outcomes; returns how many were made.
async fn make_calls(app: &TestApp) -> u64 {
    let id = &app.sample_ids[0];
    let calls = [
        ("consumer_granted", id.as_str()),
        ("consumer_ungranted", id.as_str()),
        ("consumer_granted", "110105194912310021"),
        ("platform_admin", id.as_str()),
        ("provider_admin", id.as_str()),
    ];
    for (role, key) in calls {
        app.lookup_population(key, role).await;
    }
    app.lookup(huitong::demo::POPULATION_CODE, id, None).await;
    calls.len() as u64 + 1
}

async fn verify_cli(app: &TestApp, extra: &[&str]) -> ExitCode {
    let data_dir = app.data_path();
    let mut args = vec!["huitong", "--data-dir", data_dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend(["audit", "verify"]);
    run(Cli::parse_from(args)).await.expect("verify runs")
}

#[tokio::test]
async fn every_call_allowed_or_denied_is_recorded_in_an_intact_chain() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let calls = make_calls(&app).await;
    // Checked through the journal: every call answered is there.
    let report = app.verify_audit().await;
    assert_eq!(report.records, calls);
    assert_eq!(report.first_broken, None);

    let records = app.audit_records().await;
    let outcomes: Vec<(&str, i64)> = records.iter().map(|r| (r.outcome.as_str(), r.status)).collect();
    assert_eq!(
        outcomes,
        [
            ("allowed", 200),
            ("no_grant", 403),
            ("invalid_key", 422),
            ("role_forbidden", 403),
            ("allowed", 200),
            ("unauthenticated", 401),
        ]
    );
    let first = &records[0];
    assert_eq!(first.items_masked, ["name", "address", "phone"]);
    let subject = first.subject_hash.as_deref().unwrap();
    assert_eq!(subject.len(), 64);
    assert!(!subject.contains(&app.sample_ids[0]), "the key itself is never stored");
    // Nothing is copied into the DB: the journal is the trail.
    let in_table: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(app.catalog.pool())
        .await
        .unwrap();
    assert_eq!(in_table, 0);
    assert_eq!(verify_cli(&app, &[]).await, ExitCode::SUCCESS);
}

#[tokio::test]
async fn a_changed_record_is_named_by_audit_verify() {
    let app = spawn_app(MetaDb::Sqlite).await;
    make_calls(&app).await;
    app.tamper_audit(2, |mut line| {
        line["record"]["status"] = 200.into();
        line["record"]["outcome"] = "allowed".into();
        Some(line)
    });
    let report = app.verify_audit().await;
    let broken = report.first_broken.expect("tampering detected");
    assert_eq!(broken.seq, 2);
    assert!(broken.reason.contains("changed"), "{}", broken.reason);
    assert_eq!(verify_cli(&app, &[]).await, ExitCode::FAILURE);
}

#[tokio::test]
async fn a_removed_record_is_named_by_audit_verify() {
    let app = spawn_app(MetaDb::Sqlite).await;
    make_calls(&app).await;
    app.tamper_audit(3, |_| None);
    let broken = app.verify_audit().await.first_broken.unwrap();
    assert_eq!(broken.seq, 4);
    assert!(broken.reason.contains("removed"), "{}", broken.reason);
}

#[tokio::test]
async fn audit_verify_on_postgres_via_config_file() {
    let app = spawn_app(MetaDb::Postgres).await;
    make_calls(&app).await;
    let config = app.data_path().join("huitong.toml");
    let url = secrecy::ExposeSecret::expose_secret(app.settings.database_url.as_ref().unwrap()).to_string();
    std::fs::write(&config, format!("database_url = \"{url}\"\n")).unwrap();
    let config = config.to_str().unwrap().to_string();
    assert_eq!(verify_cli(&app, &["--config", &config]).await, ExitCode::SUCCESS);
    app.tamper_audit(1, |mut line| {
        line["record"]["items_masked"] = "[]".into();
        Some(line)
    });
    assert_eq!(verify_cli(&app, &["--config", &config]).await, ExitCode::FAILURE);
    let broken = app.verify_audit().await.first_broken.unwrap();
    assert_eq!(broken.seq, 1);
}

/// Who reads which audit records: (demo role, the calling departments whose records it sees;
/// "" for the unauthenticated call; the platform admin acts for 大数据局 DSJ).
const READERS: &[(&str, &[&str])] = &[
    ("platform_admin", &["WJW", "RSJ", "GAJ", "DSJ", ""]),
    // 公安局 provides the population resource, which every call was on: it sees them all.
    ("provider_admin", &["WJW", "RSJ", "GAJ", "DSJ", ""]),
    ("consumer_granted", &["WJW"]),
    ("consumer_ungranted", &["RSJ"]),
];

#[tokio::test]
async fn providers_see_who_used_their_data_and_consumers_their_own_calls() {
    let app = spawn_app(MetaDb::Sqlite).await;
    make_calls(&app).await;
    for (role, departments) in READERS {
        let body = huitong_tests::json_of(app.get("/api/v1/audit?limit=1000", &app.key(role)).await, 200).await;
        let mut seen: Vec<String> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["department"].as_str().unwrap_or("").to_string())
            .collect();
        seen.sort();
        seen.dedup();
        let mut want: Vec<String> = departments.iter().map(|d| d.to_string()).collect();
        want.sort();
        assert_eq!(seen, want, "{role}");
    }
    // Filters: by resource, and by time (a date is a day in China Standard Time).
    let admin = app.key("platform_admin");
    let on_population = huitong_tests::json_of(
        app.get(
            &format!("/api/v1/audit?resource={}", huitong::demo::POPULATION_CODE),
            &admin,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(on_population["items"].as_array().unwrap().len(), 6);
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d");
    let later = huitong_tests::json_of(app.get(&format!("/api/v1/audit?from={tomorrow}"), &admin).await, 200).await;
    assert_eq!(later["items"].as_array().unwrap().len(), 0);
    let problem = huitong_tests::assert_problem(
        app.get("/api/v1/audit?from=yesterday", &admin).await,
        422,
        "invalid_query",
    )
    .await;
    assert_eq!(problem["field"], "from");
    // Paging: two records a page, every record once.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let page = huitong_tests::json_of(
            app.get(&format!("/api/v1/audit?limit=2&after={after}"), &admin).await,
            200,
        )
        .await;
        paged.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["seq"].as_i64().unwrap()),
        );
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    let total = app.verify_audit().await.records as i64;
    assert_eq!(paged, (1..=total).collect::<Vec<_>>());
    // A consumer cannot read another department's calls.
    huitong_tests::assert_problem(
        app.get("/api/v1/audit?department=RSJ", &app.key("consumer_granted"))
            .await,
        403,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn the_audit_exports_as_csv_and_verifies_over_http() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let calls = make_calls(&app).await;
    let admin = app.key("platform_admin");
    let response = app.get("/api/v1/audit?format=csv", &admin).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = response.text().await.unwrap();
    let mut reader = csv_reader(&text);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(&header[..3], ["seq", "at", "request_id"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len() as u64, calls);
    assert_eq!(&rows[0][11], "name;address;phone", "masked items of the first call");

    let body = huitong_tests::json_of(app.get("/api/v1/audit/verify", &admin).await, 200).await;
    assert_eq!(
        (body["intact"].as_bool(), body["records"].as_u64()),
        (Some(true), Some(calls))
    );
    app.tamper_audit(2, |mut line| {
        line["record"]["department"] = "GAJ".into();
        Some(line)
    });
    let body = huitong_tests::json_of(app.get("/api/v1/audit/verify", &admin).await, 200).await;
    assert_eq!(body["intact"], false);
    assert_eq!(body["first_broken"]["seq"], 2);
    huitong_tests::assert_problem(
        app.get("/api/v1/audit/verify", &app.key("consumer_granted")).await,
        403,
        "forbidden",
    )
    .await;
}

fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    csv::Reader::from_reader(text.as_bytes())
}
