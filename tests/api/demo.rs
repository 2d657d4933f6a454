use std::process::ExitCode;

use clap::Parser;
use huitong::cli::{Cli, run};
use serde_json::Value;

async fn demo_no_serve(dir: &std::path::Path) -> Value {
    let args = [
        "huitong",
        "--data-dir",
        dir.to_str().unwrap(),
        "demo",
        "--no-serve",
        "--rows",
        "1000",
    ];
    assert_eq!(run(Cli::parse_from(args)).await.unwrap(), ExitCode::SUCCESS);
    let text = std::fs::read_to_string(dir.join("demo-credentials.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn demo_builds_from_nothing_and_reruns_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo_no_serve(dir.path()).await;
    for role in [
        "platform_admin",
        "provider_admin",
        "consumer_granted",
        "consumer_ungranted",
        "open_data_developer",
    ] {
        assert!(first["keys"][role].as_str().unwrap().starts_with("ht_"), "{role}");
    }
    assert_eq!(first["resource_codes"]["population"], huitong::demo::POPULATION_CODE);
    assert_eq!(first["sample_keys"]["population"].as_array().unwrap().len(), 5);
    assert_eq!(first["base_url"], "http://127.0.0.1:8080");

    let second = demo_no_serve(dir.path()).await;
    assert_eq!(first["sample_keys"], second["sample_keys"], "same seed, same data");
    assert_ne!(first["keys"]["consumer_granted"], second["keys"]["consumer_granted"]);

    let url = format!("sqlite://{}", dir.path().join("huitong.db").display());
    let catalog = catalog::Catalog::connect(&url).await.unwrap();
    // Earlier keys were revoked when the demo re-issued them.
    let old = first["keys"]["consumer_granted"].as_str().unwrap();
    assert!(policy::credentials::authenticate(&catalog, old).await.is_err());
    let new = second["keys"]["consumer_granted"].as_str().unwrap();
    assert!(policy::credentials::authenticate(&catalog, new).await.is_ok());

    for connector in catalog.connectors().await.unwrap() {
        let runs = catalog.runs(connector.id, 10).await.unwrap();
        assert_eq!(runs.len(), 2, "{}", connector.name);
        let (rerun, first_run) = (&runs[0], &runs[1]);
        assert_eq!(rerun.counts.read, first_run.counts.read);
        // The rerun finds every row already there: nothing new, nothing changed.
        assert_eq!(
            (rerun.counts.inserted, rerun.counts.updated),
            (0, 0),
            "{}",
            connector.name
        );
        assert_eq!(rerun.counts.rejected, first_run.counts.rejected);
        assert!(first_run.counts.read > 0, "{} read its source", connector.name);
    }
    // The departments' sources come in the kinds departments keep: databases, a GBK CSV
    // export, a workbook.
    let kinds: std::collections::BTreeSet<String> = catalog
        .connectors()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(kinds, ["csv", "sqlite", "xlsx"].map(String::from).into());
}

#[tokio::test]
async fn dirty_rows_are_normalized_or_quarantined_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    demo_no_serve(dir.path()).await;
    let url = format!("sqlite://{}", dir.path().join("huitong.db").display());
    let catalog = catalog::Catalog::connect(&url).await.unwrap();
    let hukou = catalog.connector_by_name("gaj-hukou").await.unwrap();
    let run = &catalog.runs(hukou.id, 10).await.unwrap()[0];
    let c = run.counts;
    assert_eq!(c.read, 1000);
    assert_eq!(
        c.read,
        c.inserted + c.updated + c.unchanged + c.rejected,
        "no row vanishes"
    );
    assert!(c.rejected > 0 && c.rejected < 50, "{c:?}");
    let quarantined = catalog.quarantined(run.id).await.unwrap();
    assert_eq!(quarantined.len() as i64, c.rejected);
    for row in &quarantined {
        assert!(
            row.position.parse::<i64>().is_ok(),
            "position is the source id: {row:?}"
        );
        assert!(
            matches!(row.field.as_deref(), Some("id_number" | "birth_date")),
            "{row:?}"
        );
        assert!(row.raw.get("sfzh").is_some(), "the raw row is kept: {row:?}");
    }
    assert!(quarantined.iter().any(|r| r.reason.contains("check character")));
    assert!(quarantined.iter().any(|r| r.reason.contains("出生日期")));

    // The other base libraries' sources: what is quarantined, exactly, and why. (The generator
    // plants its dirt at fixed positions; other dirt — lower-case codes, amounts with
    // separators, mixed date formats — is normalized.)
    let table: &[(&str, Option<i64>, &[&str], &str)] = &[
        ("scjgj-qiye", Some(4), &["uscc", "status"], "check character"),
        ("fgw-xinyong", Some(4), &["subject_id", "record_type"], "not one of"),
        ("dsj-zhengzhao", None, &["holder_id"], "neither"),
        ("zrzyj-dizhi", Some(5), &["latitude", "region_code"], "GB/T 2260"),
    ];
    for (name, rejected, fields, reason) in table {
        let connector = catalog.connector_by_name(name).await.unwrap();
        let run = &catalog.runs(connector.id, 10).await.unwrap()[0];
        let c = run.counts;
        assert!(c.read > 0, "{name}: {c:?}");
        assert_eq!(
            c.read,
            c.inserted + c.updated + c.unchanged + c.rejected,
            "{name}: no row vanishes"
        );
        match rejected {
            Some(n) => assert_eq!(c.rejected, *n, "{name}: {c:?}"),
            None => assert!(c.rejected > 0, "{name}: {c:?}"),
        }
        let quarantined = catalog.quarantined(run.id).await.unwrap();
        let seen: std::collections::BTreeSet<&str> = quarantined.iter().filter_map(|r| r.field.as_deref()).collect();
        assert_eq!(seen, fields.iter().copied().collect(), "{name}: {quarantined:?}");
        assert!(
            quarantined.iter().any(|r| r.reason.contains(reason)),
            "{name}: {quarantined:?}"
        );
        assert!(quarantined.iter().all(|r| r.position.parse::<i64>().is_ok()), "{name}");
    }
}

#[tokio::test]
async fn the_five_base_libraries_and_two_themes_are_listed_with_keys_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = demo_no_serve(dir.path()).await;
    let mut settings = huitong::settings::Settings::load(None).unwrap();
    settings.data_dir = dir.path().to_path_buf();
    let (_, libraries) = huitong::startup::open_stores(&settings).await.unwrap();
    for (code, schema) in huitong::demo::BASE_RESOURCES {
        assert_eq!(credentials["resource_codes"][schema.name], code, "{}", schema.name);
        let keys = credentials["sample_keys"][schema.name].as_array().unwrap();
        assert!(!keys.is_empty(), "{}", schema.name);
        let library = libraries.get(schema.name).unwrap();
        for key in keys {
            let key = key.as_str().unwrap();
            let record = library
                .get(key)
                .unwrap()
                .unwrap_or_else(|| panic!("{}: {key} missing", schema.name));
            assert_eq!(record.values[0].as_deref(), Some(key));
        }
    }
    // The two themes are served through their resources, with keys they hold.
    for (theme, code) in [("newborn", "2-01-001-000001"), ("enterprise_credit", "2-03-001-000001")] {
        assert_eq!(credentials["resource_codes"][theme], code, "{theme}");
        let keys = credentials["sample_keys"][theme].as_array().unwrap();
        assert!(!keys.is_empty(), "{theme}");
        let library = libraries.get(theme).unwrap_or_else(|| panic!("{theme} is not open"));
        for key in keys {
            assert!(library.get(key.as_str().unwrap()).unwrap().is_some(), "{theme}: {key}");
        }
    }
    // Every newborn has a birth certificate and a household registration.
    let newborn = libraries.get("newborn").unwrap();
    let child = credentials["sample_keys"]["newborn"][0].as_str().unwrap();
    let record = newborn.get(child).unwrap().unwrap();
    let certificate = record.values[newborn.schema().position("birth_certificate_no").unwrap()]
        .clone()
        .unwrap();
    assert!(
        libraries
            .get("license")
            .unwrap()
            .get(&format!("CSYXZM:{certificate}"))
            .unwrap()
            .is_some(),
        "{certificate}"
    );
    assert!(libraries.get("population").unwrap().get(child).unwrap().is_some());
    // A licence's key is its type and number; its holder is a person or an organization.
    let license = libraries.get("license").unwrap();
    let key = credentials["sample_keys"]["license"][0].as_str().unwrap();
    let record = license.get(key).unwrap().unwrap();
    let (kind, number) = key.split_once(':').unwrap();
    assert_eq!(
        (record.values[1].as_deref(), record.values[2].as_deref()),
        (Some(kind), Some(number))
    );
}
