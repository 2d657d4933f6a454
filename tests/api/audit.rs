use std::process::ExitCode;

use clap::Parser;
use huitong::cli::{Cli, run};
use huitong_tests::{MetaDb, TestApp, spawn_app};
use sqlx::Row;

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
    let report = policy::audit::verify(&app.catalog).await.unwrap();
    assert_eq!(report.records, calls);
    assert_eq!(report.first_broken, None);

    let rows =
        sqlx::query("SELECT outcome, status, items_plain, items_masked, subject_hash FROM audit_log ORDER BY seq")
            .fetch_all(app.catalog.pool())
            .await
            .unwrap();
    let outcomes: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r.get::<String, _>("outcome"), r.get::<i64, _>("status")))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("allowed".to_string(), 200),
            ("no_grant".into(), 403),
            ("invalid_key".into(), 422),
            ("role_forbidden".into(), 403),
            ("allowed".into(), 200),
            ("unauthenticated".into(), 401),
        ]
    );
    let first = &rows[0];
    assert_eq!(first.get::<String, _>("items_masked"), r#"["name","address","phone"]"#);
    let subject: String = first.get("subject_hash");
    assert_eq!(subject.len(), 64);
    assert!(!subject.contains(&app.sample_ids[0]), "the key itself is never stored");
    assert_eq!(verify_cli(&app, &[]).await, ExitCode::SUCCESS);
}

#[tokio::test]
async fn a_changed_record_is_named_by_audit_verify() {
    let app = spawn_app(MetaDb::Sqlite).await;
    make_calls(&app).await;
    sqlx::query("UPDATE audit_log SET status = 200, outcome = 'allowed' WHERE seq = 2")
        .execute(app.catalog.pool())
        .await
        .unwrap();
    let report = policy::audit::verify(&app.catalog).await.unwrap();
    let broken = report.first_broken.expect("tampering detected");
    assert_eq!(broken.seq, 2);
    assert!(broken.reason.contains("changed"), "{}", broken.reason);
    assert_eq!(verify_cli(&app, &[]).await, ExitCode::FAILURE);
}

#[tokio::test]
async fn a_removed_record_is_named_by_audit_verify() {
    let app = spawn_app(MetaDb::Sqlite).await;
    make_calls(&app).await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(app.catalog.pool())
        .await
        .unwrap();
    let broken = policy::audit::verify(&app.catalog).await.unwrap().first_broken.unwrap();
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
    sqlx::query("UPDATE audit_log SET items_masked = '[]' WHERE seq = 1")
        .execute(app.catalog.pool())
        .await
        .unwrap();
    assert_eq!(verify_cli(&app, &["--config", &config]).await, ExitCode::FAILURE);
    let broken = policy::audit::verify(&app.catalog).await.unwrap().first_broken.unwrap();
    assert_eq!(broken.seq, 1);
}
