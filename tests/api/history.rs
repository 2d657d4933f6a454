//! Library history over HTTP: a record's versions, a record and the whole library as of a
//! version or a time, and the diff between two versions — after a second sync of the demo's
//! household register with changed rows, under policy.

use std::collections::BTreeMap;

use huitong::demo::POPULATION_CODE;
use huitong_tests::{MetaDb, SpawnOptions, TestApp, assert_problem, json_of, person_id, spawn_app_with};
use serde_json::{Value, json};
use sqlx::Connection;

const MOVED_TO: &str = "浙江省杭州市余杭区文一西路969号";
const TEMPORARY: &str = "浙江省杭州市临平区临时地址1号";

/// The answer of `records/{key}` (with `query` when not empty) as `role`.
async fn record(app: &TestApp, key: &str, query: &str, role: &str) -> reqwest::Response {
    let path = format!("/api/v1/exchange/{POPULATION_CODE}/records/{key}");
    let path = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    app.get(&path, &app.key(role)).await
}

async fn history(app: &TestApp, key: &str, role: &str) -> reqwest::Response {
    app.get(
        &format!("/api/v1/exchange/{POPULATION_CODE}/records/{key}/history"),
        &app.key(role),
    )
    .await
}

async fn diff(app: &TestApp, query: &str, role: &str) -> reqwest::Response {
    app.get(
        &format!("/api/v1/exchange/{POPULATION_CODE}/diff?{query}"),
        &app.key(role),
    )
    .await
}

/// Every change of a diff, following `next_cursor`, as key → change.
async fn whole_diff(app: &TestApp, from: i64, to: i64, limit: usize, role: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut query = format!("from_version={from}&to_version={to}&limit={limit}");
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let page = json_of(diff(app, &query, role).await, 200).await;
        assert_eq!(
            (page["from_version"].as_i64(), page["to_version"].as_i64()),
            (Some(from), Some(to))
        );
        let changes = page["changes"].as_array().unwrap();
        assert!(changes.len() <= limit);
        for change in changes {
            let key = change["key"].as_str().unwrap().to_string();
            keys.push(key.clone());
            assert!(out.insert(key, change.clone()).is_none(), "a key once");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => {
                assert!(keys.windows(2).all(|w| w[0] < w[1]), "in key order: {keys:?}");
                return out;
            }
        }
    }
    panic!("paging did not end");
}

async fn export(app: &TestApp, query: &str) -> (u16, Option<String>, String) {
    let response = app
        .get(
            &format!("/api/v1/exchange/{POPULATION_CODE}/export?{query}"),
            &app.key("consumer_granted"),
        )
        .await;
    let status = response.status().as_u16();
    let version = response
        .headers()
        .get("x-library-version")
        .map(|v| v.to_str().unwrap().to_string());
    (status, version, response.text().await.unwrap())
}

/// The household register of the demo, as the public-security bureau changes it.
async fn change_source(app: &TestApp, statements: &[(&str, &[&str])]) {
    let source = app.data_path().join("sources").join("gongan_hukou.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", source.display()))
        .await
        .unwrap();
    for (sql, binds) in statements {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        for bind in *binds {
            query = query.bind(bind.to_string());
        }
        query.execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
}

async fn sync(app: &TestApp) -> i64 {
    let run = app.run_connector("gaj-hukou", &app.key("platform_admin")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run["library_version"].as_i64().unwrap()
}

/// A record of a plain answer with one item changed.
fn with(record: &Value, item: &str, value: &str) -> Value {
    let mut record = record.clone();
    record[item] = json!(value);
    record
}

#[tokio::test]
async fn history_as_of_and_diff_after_a_second_sync() {
    // The export needs a bulk share method, set in the metadata DB behind the server's back.
    let app = spawn_app_with(SpawnOptions {
        catalog_cache_seconds: 0.0,
        ..SpawnOptions::on(MetaDb::Sqlite)
    })
    .await;
    let (moved, removed, back, kept) = (
        app.sample_ids[0].clone(),
        app.sample_ids[1].clone(),
        app.sample_ids[2].clone(),
        app.sample_ids[3].clone(),
    );
    let born = person_id(16_000_001);
    let v0 = app.population_health().await.0;
    let plain = |key: String| {
        let app = &app;
        async move { json_of(record(app, &key, "", "provider_admin").await, 200).await }
    };
    let (moved0, removed0, back0, kept0) = (
        plain(moved.clone()).await,
        plain(removed.clone()).await,
        plain(back.clone()).await,
        plain(kept.clone()).await,
    );
    let mut resource = app.catalog.resource_by_code(POPULATION_CODE).await.unwrap();
    resource.meta.share_method = exchange_core::ShareMethod::Bulk;
    app.catalog
        .update_resource("test", POPULATION_CODE, &resource.meta)
        .await
        .unwrap();
    let (_, _, ndjson0) = export(&app, "format=ndjson").await;
    let (_, _, csv0) = export(&app, "format=csv").await;

    // Second sync: one person moves, one is removed, one is born, one moves for a while.
    let between = chrono::Utc::now();
    change_source(
        &app,
        &[
            ("UPDATE hukou SET hjdz = $1 WHERE sfzh = $2", &[MOVED_TO, &moved]),
            ("DELETE FROM hukou WHERE sfzh = $1", &[&removed]),
            ("UPDATE hukou SET hjdz = $1 WHERE sfzh = $2", &[TEMPORARY, &back]),
            (
                "INSERT INTO hukou VALUES (900001, $1, '钱新生', '1', '2025-05-01', '汉族', '330106', \
                 '浙江省杭州市西湖区文三路1号', NULL)",
                &[&born],
            ),
        ],
    )
    .await;
    let v1 = sync(&app).await;
    // Third: the temporary move ends, back to the address as the source held it.
    change_source(
        &app,
        &[(
            "UPDATE hukou SET hjdz = $1 WHERE sfzh = $2",
            &[back0["record"]["address"].as_str().unwrap(), &back],
        )],
    )
    .await;
    let v2 = sync(&app).await;
    assert!(v0 < v1 && v1 < v2, "{v0} {v1} {v2}");
    let moved1 = with(&moved0["record"], "address", MOVED_TO);
    let born1 = json!({"id_number": born, "name": "钱新生", "gender": "男", "birth_date": "2025-05-01",
                       "ethnicity": "汉族", "region_code": "330106", "address": "浙江省杭州市西湖区文三路1号",
                       "phone": null, "current_address": null, "marital_status": null, "education": null,
                       "status": null});

    // History, oldest first, as the provider sees it (plain).
    let h = json_of(history(&app, &moved, "provider_admin").await, 200).await;
    let versions = h["versions"].as_array().unwrap();
    let last = versions.last().unwrap();
    assert_eq!(
        (last["version"].as_i64(), last["op"].as_str()),
        (Some(v1), Some("update"))
    );
    assert_eq!(last["source"], "GAJ");
    assert_eq!(last["record"], moved1);
    let before = &versions[versions.len() - 2];
    assert_eq!(before["record"], moved0["record"]);
    assert_eq!(before["version"], moved0["library_version"]);
    assert_eq!(versions[0]["op"], "insert");
    assert!(
        versions
            .windows(2)
            .all(|w| w[0]["version"].as_i64() < w[1]["version"].as_i64())
    );
    assert!(
        versions
            .iter()
            .all(|v| { chrono::DateTime::parse_from_rfc3339(v["ingested_at"].as_str().unwrap()).is_ok() })
    );
    assert_eq!(h["masked"], json!([]));
    let h = json_of(history(&app, &born, "provider_admin").await, 200).await;
    assert_eq!(
        h["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["version"].clone(), v["op"].clone(), v["record"].clone()))
            .collect::<Vec<_>>(),
        [(json!(v1), json!("insert"), born1.clone())]
    );
    let h = json_of(history(&app, &removed, "provider_admin").await, 200).await;
    let versions = h["versions"].as_array().unwrap();
    let last = versions.last().unwrap();
    assert_eq!(
        (last["version"].as_i64(), last["op"].as_str(), &last["record"]),
        (Some(v1), Some("delete"), &Value::Null)
    );
    assert_eq!(versions[versions.len() - 2]["record"], removed0["record"]);
    let h = json_of(history(&app, &back, "provider_admin").await, 200).await;
    let tail: Vec<(Value, Value)> = h["versions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .take(2)
        .map(|v| (v["version"].clone(), v["record"]["address"].clone()))
        .collect();
    assert_eq!(
        tail,
        [
            (json!(v2), back0["record"]["address"].clone()),
            (json!(v1), json!(TEMPORARY))
        ]
    );

    // Masked as granted: the health commission's grant (name, address, phone masked, no ethnicity).
    let h = json_of(history(&app, &moved, "consumer_granted").await, 200).await;
    assert_eq!(h["masked"], json!(["name", "address", "phone"]));
    for v in h["versions"].as_array().unwrap() {
        let r = v["record"].as_object().unwrap();
        assert!(r.get("ethnicity").is_none(), "{r:?}");
        assert_eq!(r["id_number"], moved.as_str());
        assert!(r["name"].as_str().unwrap().contains('*'), "{r:?}");
        assert!(r["address"].as_str().unwrap().ends_with("****"), "{r:?}");
    }

    // A record as of a version, and as of a time.
    let as_of = |key: &str, query: String, role: &'static str| {
        let (app, key) = (&app, key.to_string());
        async move { record(app, &key, &query, role).await }
    };
    let at = |v: i64| format!("as_of_version={v}");
    let got = json_of(as_of(&moved, at(v0), "provider_admin").await, 200).await;
    assert_eq!(
        (&got["record"], &got["library_version"]),
        (&moved0["record"], &moved0["library_version"])
    );
    assert_eq!(got["as_of_version"], v0);
    let got = json_of(as_of(&moved, at(v1), "provider_admin").await, 200).await;
    assert_eq!((&got["record"], got["library_version"].as_i64()), (&moved1, Some(v1)));
    let got = json_of(as_of(&back, at(v1), "provider_admin").await, 200).await;
    assert_eq!(got["record"]["address"], TEMPORARY);
    let got = json_of(as_of(&removed, at(v0), "provider_admin").await, 200).await;
    assert_eq!(got["record"], removed0["record"]);
    assert_problem(as_of(&removed, at(v1), "provider_admin").await, 404, "record_not_found").await;
    assert_problem(as_of(&born, at(v0), "provider_admin").await, 404, "record_not_found").await;
    assert_eq!(
        json_of(as_of(&born, at(v2), "provider_admin").await, 200).await["record"],
        born1
    );
    assert_problem(as_of(&kept, at(0), "provider_admin").await, 404, "record_not_found").await;
    let got = json_of(as_of(&kept, at(v0), "provider_admin").await, 200).await;
    assert_eq!(got["record"], kept0["record"]);
    let instant = |t: chrono::DateTime<chrono::Utc>| {
        format!(
            "as_of={}",
            url::form_urlencoded::byte_serialize(t.to_rfc3339().as_bytes()).collect::<String>()
        )
    };
    let got = json_of(as_of(&moved, instant(between), "provider_admin").await, 200).await;
    assert_eq!(
        (&got["record"], got["as_of_version"].as_i64()),
        (&moved0["record"], Some(v0))
    );
    let got = json_of(
        as_of(&moved, instant(chrono::Utc::now()), "consumer_granted").await,
        200,
    )
    .await;
    assert_eq!(got["as_of_version"], v2);
    assert_eq!(got["masked"], json!(["name", "address", "phone"]));
    assert_eq!(
        got["record"],
        json_of(record(&app, &moved, "", "consumer_granted").await, 200).await["record"],
        "masked exactly as the current lookup"
    );

    // The diff: the net changes from v0 to v2 — the temporary move is not one.
    let all = whole_diff(&app, v0, v2, 1000, "provider_admin").await;
    let mut want = BTreeMap::new();
    want.insert(
        moved.clone(),
        json!({"op": "update", "key": moved, "version": v1, "before_version": moved0["library_version"],
               "before": moved0["record"], "after": moved1}),
    );
    want.insert(
        removed.clone(),
        json!({"op": "delete", "key": removed, "version": v1, "before_version": removed0["library_version"],
               "before": removed0["record"], "after": null}),
    );
    want.insert(
        born.clone(),
        json!({"op": "insert", "key": born, "version": v1, "before_version": null, "before": null, "after": born1}),
    );
    assert_eq!(all, want);
    assert_eq!(
        whole_diff(&app, v0, v2, 1, "provider_admin").await,
        want,
        "pages of one"
    );
    let first = whole_diff(&app, v0, v1, 1000, "provider_admin").await;
    assert_eq!(first.len(), 4);
    assert_eq!(first[&back]["before"]["address"], back0["record"]["address"]);
    assert_eq!(first[&back]["after"]["address"], TEMPORARY);
    assert!(whole_diff(&app, v2, v2, 10, "provider_admin").await.is_empty());
    // Masked as granted.
    let masked = whole_diff(&app, v0, v2, 2, "consumer_granted").await;
    assert_eq!(masked.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    let current = json_of(record(&app, &moved, "", "consumer_granted").await, 200).await;
    assert_eq!(masked[&moved]["after"], current["record"]);
    let before = masked[&moved]["before"].as_object().unwrap();
    assert!(before.get("ethnicity").is_none() && before["name"].as_str().unwrap().contains('*'));

    // The whole library as of a version: exactly the export made then.
    set_and_check_exports(&app, v0, v2, &ndjson0, &csv0).await;

    // Bad input: a 422 naming the parameter.
    let cases: &[(&str, &str, &str)] = &[
        ("record", "as_of_version=abc", "as_of_version"),
        ("record", "as_of_version=-1", "as_of_version"),
        ("record", &format!("as_of_version={}", v2 + 1), "as_of_version"),
        ("record", "as_of=yesterday", "as_of"),
        ("record", "as_of=2000-01-01T00:00:00Z", "as_of"),
        (
            "record",
            &format!("as_of_version={v0}&as_of=2030-01-01T00:00:00Z"),
            "as_of",
        ),
        ("diff", "to_version=1", "from_version"),
        ("diff", "from_version=0", "to_version"),
        ("diff", "from_version=x&to_version=1", "from_version"),
        ("diff", "from_version=0&to_version=1.5", "to_version"),
        ("diff", &format!("from_version=0&to_version={}", v2 + 1), "to_version"),
        ("diff", &format!("from_version={v2}&to_version={v0}"), "from_version"),
        ("diff", "from_version=0&to_version=1&limit=0", "limit"),
        ("diff", "from_version=0&to_version=1&cursor=zz", "cursor"),
        ("export", "format=csv&as_of_version=x", "as_of_version"),
        ("export", "format=csv&as_of=yesterday", "as_of"),
        (
            "export",
            "format=csv&as_of_version=1&as_of=2026-01-01T00:00:00Z",
            "as_of",
        ),
        (
            "export",
            &format!("format=csv&as_of_version={}", v2 + 1),
            "as_of_version",
        ),
    ];
    for (endpoint, query, field) in cases {
        let response = match *endpoint {
            "record" => record(&app, &moved, query, "consumer_granted").await,
            "diff" => diff(&app, query, "consumer_granted").await,
            _ => {
                app.get(
                    &format!("/api/v1/exchange/{POPULATION_CODE}/export?{query}"),
                    &app.key("consumer_granted"),
                )
                .await
            }
        };
        let body = assert_problem(response, 422, "invalid_query").await;
        assert_eq!(body["field"], *field, "{endpoint}?{query}: {body}");
    }
    assert_problem(
        history(&app, &person_id(16_000_002), "provider_admin").await,
        404,
        "record_not_found",
    )
    .await;
    assert_problem(
        history(&app, "110105194912310021", "provider_admin").await,
        422,
        "invalid_key",
    )
    .await;
    assert_problem(history(&app, &moved, "consumer_ungranted").await, 403, "no_grant").await;
    assert_problem(
        diff(
            &app,
            &format!("from_version={v0}&to_version={v2}"),
            "consumer_ungranted",
        )
        .await,
        403,
        "no_grant",
    )
    .await;
    assert_problem(
        record(&app, &moved, &at(v0), "consumer_ungranted").await,
        403,
        "no_grant",
    )
    .await;

    // Every call is in the audit trail, refused ones included.
    let audit = json_of(
        app.get(
            &format!("/api/v1/audit?resource={POPULATION_CODE}&limit=1000"),
            &app.key("platform_admin"),
        )
        .await,
        200,
    )
    .await;
    let outcomes = |endpoint: &str| -> Vec<String> {
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["endpoint"] == endpoint)
            .map(|r| r["outcome"].as_str().unwrap().to_string())
            .collect()
    };
    for endpoint in [
        "GET /api/v1/exchange/{resource_code}/records/{key}/history",
        "GET /api/v1/exchange/{resource_code}/diff",
    ] {
        let seen = outcomes(endpoint);
        assert!(seen.iter().any(|o| o == "allowed"), "{endpoint}: {seen:?}");
        assert!(seen.iter().any(|o| o == "no_grant"), "{endpoint}: {seen:?}");
    }
    assert!(
        outcomes("GET /api/v1/exchange/{resource_code}/diff")
            .iter()
            .any(|o| o == "invalid_query")
    );
}

/// The export as of `then` equals, byte for byte, the export made at `then`; as of `now`, the
/// current export.
async fn set_and_check_exports(app: &TestApp, then: i64, now: i64, ndjson: &str, csv: &str) {
    let (status, version, text) = export(app, &format!("format=ndjson&as_of_version={then}")).await;
    assert_eq!((status, version.as_deref()), (200, Some(then.to_string().as_str())));
    assert_eq!(text, ndjson);
    let (status, _, text) = export(app, &format!("format=csv&as_of_version={then}")).await;
    assert_eq!(status, 200);
    assert_eq!(text, csv);
    let (_, _, current) = export(app, "format=ndjson").await;
    assert_ne!(current, ndjson, "the library changed since");
    let (status, version, text) = export(app, &format!("format=ndjson&as_of_version={now}")).await;
    assert_eq!((status, version.as_deref()), (200, Some(now.to_string().as_str())));
    assert_eq!(text, current);
    // As of a time: the version current then (now, every commit is in the past).
    let instant = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (status, version, text) = export(app, &format!("format=ndjson&as_of={instant}")).await;
    assert_eq!((status, version.as_deref()), (200, Some(now.to_string().as_str())));
    assert_eq!(text, current);
    // Version 0 is the empty library.
    let (status, _, text) = export(app, "format=csv&as_of_version=0").await;
    assert_eq!(status, 200);
    assert_eq!(text.lines().count(), 1, "the header only: {text}");
}

/// Under a grant's row filter, history and diff show a record only while the filter admits it: a
/// record that leaves it is a delete in the diff, and one never inside it has no history.
#[tokio::test]
async fn a_grants_row_filter_bounds_history_and_diff() {
    let app = spawn_app_with(SpawnOptions::on(MetaDb::Sqlite)).await;
    let mut inside = None;
    for id in &app.sample_ids {
        let r = json_of(record(&app, id, "", "provider_admin").await, 200).await;
        if r["record"]["region_code"].as_str().unwrap().starts_with("3301") {
            inside = Some((id.clone(), r));
            break;
        }
    }
    let (leaving, leaving0) = inside.expect("a sample person registered in 杭州");
    let department = app.catalog.upsert_department("TJJ", "市统计局", None).await.unwrap();
    let resource = app.catalog.resource_by_code(POPULATION_CODE).await.unwrap();
    app.catalog
        .create_grant(&catalog::NewGrant {
            resource_id: resource.id,
            consumer_department_id: department.id,
            items: vec!["id_number".into(), "name".into(), "region_code".into()],
            plain_items: vec!["id_number".into(), "region_code".into()],
            expires_at: None,
            demand_id: None,
            row_filter: Some("region_code LIKE '3301%'".into()),
            quota_per_second: None,
            quota_per_day: None,
        })
        .await
        .unwrap();
    let tjj = app.issue_key(policy::Role::Consumer, Some("TJJ")).await;
    let (outsider, insider) = (person_id(16_000_003), person_id(16_000_004));
    let v0 = app.population_health().await.0;
    change_source(
        &app,
        &[
            ("UPDATE hukou SET hjqh = '110105' WHERE sfzh = $1", &[&leaving]),
            (
                "INSERT INTO hukou VALUES (900003, $1, '赵外地', '2', '1990-01-01', '汉族', '110105', \
                 '北京市朝阳区建国路1号', NULL)",
                &[&outsider],
            ),
            (
                "INSERT INTO hukou VALUES (900004, $1, '钱本地', '2', '1991-01-01', '汉族', '330106', \
                 '浙江省杭州市西湖区文三路2号', NULL)",
                &[&insider],
            ),
        ],
    )
    .await;
    let v1 = sync(&app).await;
    let get = |path: String| {
        let (app, tjj) = (&app, tjj.clone());
        async move {
            app.get(&format!("/api/v1/exchange/{POPULATION_CODE}/{path}"), &tjj)
                .await
        }
    };

    let page = json_of(get(format!("diff?from_version={v0}&to_version={v1}")).await, 200).await;
    let name0 = leaving0["record"]["name"].as_str().unwrap();
    let masked_name = |name: &str| {
        format!(
            "{}{}",
            name.chars().next().unwrap(),
            "*".repeat(name.chars().count() - 1)
        )
    };
    let mut want = vec![
        json!({"op": "delete", "key": leaving, "version": v1, "before_version": leaving0["library_version"],
               "before": {"id_number": leaving, "name": masked_name(name0),
                          "region_code": leaving0["record"]["region_code"]},
               "after": null}),
        json!({"op": "insert", "key": insider, "version": v1, "before_version": null, "before": null,
               "after": {"id_number": insider, "name": "钱**", "region_code": "330106"}}),
    ];
    want.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    assert_eq!(page["changes"], json!(want));
    assert_eq!(page["masked"], json!(["name"]));

    let all = json_of(history(&app, &leaving, "provider_admin").await, 200).await;
    let seen = json_of(get(format!("records/{leaving}/history")).await, 200).await;
    let all = all["versions"].as_array().unwrap();
    let seen = seen["versions"].as_array().unwrap();
    assert_eq!(all.last().unwrap()["record"]["region_code"], "110105");
    assert_eq!(seen.len(), all.len() - 1, "the version outside the filter is left out");
    for (s, a) in seen.iter().zip(all) {
        assert_eq!(s["version"], a["version"]);
        assert_eq!(s["record"]["region_code"], a["record"]["region_code"]);
    }
    assert_problem(
        get(format!("records/{outsider}/history")).await,
        404,
        "record_not_found",
    )
    .await;
    assert_eq!(
        json_of(get(format!("records/{leaving}?as_of_version={v0}")).await, 200).await["record"]["name"],
        masked_name(name0)
    );
    assert_problem(
        get(format!("records/{leaving}?as_of_version={v1}")).await,
        404,
        "record_not_found",
    )
    .await;
}
