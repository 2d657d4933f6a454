//! Filtered, projected, paged records; the streamed bulk export; grants' row filters.

use std::collections::{BTreeMap, BTreeSet};

use huitong::demo::POPULATION_CODE;
use huitong_tests::{MetaDb, TestApp, assert_problem, json_of, spawn_app};
use serde_json::{Map, Value, json};

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `GET records` with these query parameters (values URL-encoded here).
async fn records(app: &TestApp, key: &str, params: &[(&str, &str)]) -> reqwest::Response {
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    app.get(
        &format!("/api/v1/exchange/{POPULATION_CODE}/records?{}", query.join("&")),
        key,
    )
    .await
}

/// Every record `key` may see under `params`, following `next_cursor` to the end.
async fn all_records(app: &TestApp, key: &str, params: &[(&str, &str)]) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut p: Vec<(&str, &str)> = params.to_vec();
        if let Some(c) = &cursor {
            p.push(("cursor", c));
        }
        let body = json_of(records(app, key, &p).await, 200).await;
        out.extend(
            body["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_object().unwrap().clone()),
        );
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
    panic!("paging did not end");
}

fn ids(records: &[Map<String, Value>]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id_number"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn paging_a_filter_visits_every_matching_record_exactly_once() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let granted = app.key("consumer_granted");
    // The direct count: every record, unfiltered, in one page per 1000, counted here.
    let everything = all_records(&app, &app.key("provider_admin"), &[("limit", "1000")]).await;
    let want: BTreeSet<String> = everything
        .iter()
        .filter(|r| r["gender"] == "女")
        .map(|r| r["id_number"].as_str().unwrap().to_string())
        .collect();
    assert!(want.len() > 10, "the demo holds women");
    let pages = all_records(&app, &granted, &[("filter", "gender = '女'"), ("limit", "37")]).await;
    let got = ids(&pages);
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "a record came twice");
    assert_eq!(unique, want);
    // In key order.
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted);
}

#[tokio::test]
async fn fields_project_and_masked_items_are_filtered_as_masked() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let granted = app.key("consumer_granted");
    let body = json_of(
        records(&app, &granted, &[("fields", "id_number,name"), ("limit", "5")]).await,
        200,
    )
    .await;
    assert_eq!(body["masked"], json!(["name"]));
    for record in body["records"].as_array().unwrap() {
        let keys: Vec<&String> = record.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 2, "{record}");
        assert!(record["name"].as_str().unwrap().contains('*'), "{record}");
    }
    // A filter on a masked item compares the masked value: the plain name matches nothing,
    // the masked one matches the record.
    let id = &app.sample_ids[0];
    let plain = json_of(app.lookup_population(id, "provider_admin").await, 200).await;
    let masked = json_of(app.lookup_population(id, "consumer_granted").await, 200).await;
    let plain_name = plain["record"]["name"].as_str().unwrap().to_string();
    let masked_name = masked["record"]["name"].as_str().unwrap().to_string();
    let by_plain = all_records(&app, &granted, &[("filter", &format!("name = '{plain_name}'"))]).await;
    assert!(by_plain.is_empty(), "{by_plain:?}");
    let by_masked = all_records(
        &app,
        &granted,
        &[("filter", &format!("name = '{masked_name}' AND id_number = '{id}'"))],
    )
    .await;
    assert_eq!(ids(&by_masked), std::slice::from_ref(id));
}

/// Query parameters, status, code, field.
type Refusal<'a> = (&'a [(&'a str, &'a str)], u16, &'a str, &'a str);

#[tokio::test]
async fn bad_filters_fields_and_pages_are_refused() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let granted = app.key("consumer_granted");
    let cases: &[Refusal<'_>] = &[
        (&[("filter", "gender = ")], 422, "invalid_filter", "filter"),
        (&[("filter", "gender")], 422, "invalid_filter", "filter"),
        (&[("filter", "salary = '1'")], 422, "invalid_filter", "filter"),
        (&[("filter", "count(*) > 1")], 422, "invalid_filter", "filter"),
        (&[("filter", "ethnicity = '汉族'")], 403, "item_not_granted", "filter"),
        (&[("fields", "id_number,ethnicity")], 403, "item_not_granted", "fields"),
        (&[("fields", "salary")], 422, "unknown_item", "fields"),
        (&[("limit", "0")], 422, "invalid_query", "limit"),
        (&[("limit", "1001")], 422, "invalid_query", "limit"),
        (&[("cursor", "not-a-cursor")], 422, "invalid_query", "cursor"),
    ];
    for (params, status, code, field) in cases {
        let body = assert_problem(records(&app, &granted, params).await, *status, code).await;
        assert_eq!(body["field"], *field, "{params:?}: {body}");
    }
    assert_problem(
        records(&app, &app.key("consumer_ungranted"), &[("filter", "gender = '女'")]).await,
        403,
        "no_grant",
    )
    .await;
}

async fn export(app: &TestApp, key: &str, params: &str) -> reqwest::Response {
    app.get(&format!("/api/v1/exchange/{POPULATION_CODE}/export?{params}"), key)
        .await
}

async fn set_share_method(app: &TestApp, method: exchange_core::ShareMethod) {
    let mut resource = app.catalog.resource_by_code(POPULATION_CODE).await.unwrap();
    resource.meta.share_method = method;
    app.catalog
        .update_resource("test", POPULATION_CODE, &resource.meta)
        .await
        .unwrap();
}

/// A JSON record with every value as text or null, for comparing formats.
fn as_text(record: &Map<String, Value>) -> BTreeMap<String, Option<String>> {
    record
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
        .collect()
}

#[tokio::test]
async fn exports_parse_back_to_the_paged_records() {
    // The test changes the resource's share method in the metadata DB directly, as another
    // process would: the server must read the catalog afresh on each call.
    let app = huitong_tests::spawn_app_with(huitong_tests::SpawnOptions {
        catalog_cache_seconds: 0.0,
        ..huitong_tests::SpawnOptions::on(MetaDb::Sqlite)
    })
    .await;
    let granted = app.key("consumer_granted");
    let filter = "gender = '男' AND region_code LIKE '3301%'";
    let params = format!("fields=id_number,name,birth_date,phone&filter={}", encode(filter));
    // The population resource is shared by API calls (接口): no bulk export.
    assert_problem(
        export(&app, &granted, &format!("format=csv&{params}")).await,
        403,
        "bulk_not_allowed",
    )
    .await;
    set_share_method(&app, exchange_core::ShareMethod::Bulk).await;
    let want: Vec<BTreeMap<String, Option<String>>> = all_records(
        &app,
        &granted,
        &[
            ("fields", "id_number,name,birth_date,phone"),
            ("filter", filter),
            ("limit", "50"),
        ],
    )
    .await
    .iter()
    .map(as_text)
    .collect();
    assert!(want.len() > 10);
    let columns = ["id_number", "name", "birth_date", "phone"];

    let response = export(&app, &granted, &format!("format=ndjson&{params}")).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert!(response.headers().contains_key("x-library-version"));
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(
        disposition.contains(&format!("filename=\"{POPULATION_CODE}-v")),
        "{disposition}"
    );
    let text = response.text().await.unwrap();
    let got: Vec<_> = text
        .lines()
        .map(|l| as_text(serde_json::from_str::<Value>(l).unwrap().as_object().unwrap()))
        .collect();
    assert_eq!(got, want, "ndjson");

    let response = export(&app, &granted, &format!("format=csv&{params}")).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = response.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), columns.join(","));
    let got: Vec<_> = lines
        .map(|line| {
            columns
                .iter()
                .zip(line.split(','))
                .map(|(c, v)| (c.to_string(), (!v.is_empty()).then(|| v.to_string())))
                .collect::<BTreeMap<_, _>>()
        })
        .collect();
    assert_eq!(got, want, "csv");

    let response = export(&app, &granted, &format!("format=parquet&{params}")).await;
    assert_eq!(response.status().as_u16(), 200);
    let bytes = response.bytes().await.unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let mut got = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, columns);
        for row in 0..batch.num_rows() {
            let mut record = BTreeMap::new();
            for (i, name) in names.iter().enumerate() {
                let column = arrow::array::cast::as_string_array(batch.column(i));
                let value = arrow::array::Array::is_valid(column, row).then(|| column.value(row).to_string());
                record.insert(name.clone(), value);
            }
            got.push(record);
        }
    }
    assert_eq!(got, want, "parquet");

    // The same refusals as the records endpoint, and a format it does not write.
    assert_problem(export(&app, &granted, "format=xml").await, 422, "invalid_query").await;
    assert_problem(
        export(&app, &granted, "format=csv&fields=ethnicity").await,
        403,
        "item_not_granted",
    )
    .await;
    assert_problem(
        export(&app, &app.key("consumer_ungranted"), "format=csv").await,
        403,
        "no_grant",
    )
    .await;
}

/// 发改委 (FGW) asks for population; the police answer with a grant limited to 杭州 (3301).
/// Returns FGW's key.
async fn grant_with_row_filter(app: &TestApp, row_filter: &str) -> String {
    let fgw = app.issue_key(policy::Role::Consumer, Some("FGW")).await;
    let provider = app.key("provider_admin");
    let demand = json_of(
        app.post(
            "/api/v1/demands",
            &fgw,
            &json!({"resource_code": POPULATION_CODE, "purpose": "项目审批核验法人代表身份", "legal_basis": "《行政许可法》"}),
        )
        .await,
        201,
    )
    .await;
    let decide = |filter: &str| {
        json!({"decision": "approve", "items": ["id_number", "name", "gender", "region_code"],
               "plain_items": ["id_number"], "row_filter": filter})
    };
    let path = format!("/api/v1/demands/{}/decision", demand["id"]);
    // A filter that does not compile is refused before any grant exists.
    for bad in ["region_code LIKE", "region_code", "salary > 1", "count(*) > 0"] {
        let body = assert_problem(app.post(&path, &provider, &decide(bad)).await, 422, "validation_failed").await;
        assert_eq!(body["field"], "row_filter", "{bad}: {body}");
    }
    json_of(app.post(&path, &provider, &decide(row_filter)).await, 200).await;
    fgw
}

#[tokio::test]
async fn a_grants_row_filter_hides_other_records_everywhere() {
    let app = spawn_app(MetaDb::Sqlite).await;
    set_share_method(&app, exchange_core::ShareMethod::Bulk).await;
    let everything = all_records(&app, &app.key("provider_admin"), &[("limit", "1000")]).await;
    let (inside, outside): (Vec<_>, Vec<_>) = everything
        .iter()
        .partition(|r| r["region_code"].as_str().is_some_and(|c| c.starts_with("3301")));
    assert!(
        !inside.is_empty() && !outside.is_empty(),
        "the demo has people from elsewhere"
    );
    let inside: BTreeSet<String> = inside.iter().map(|r| r["id_number"].as_str().unwrap().into()).collect();
    let fgw = grant_with_row_filter(&app, "region_code LIKE '3301%'").await;

    // records/{key}: outside is exactly like missing.
    let out_id = outside[0]["id_number"].as_str().unwrap();
    let body = assert_problem(
        app.lookup(POPULATION_CODE, out_id, Some(&fgw)).await,
        404,
        "record_not_found",
    )
    .await;
    let missing = assert_problem(
        app.lookup(POPULATION_CODE, &huitong_tests::person_id(15_000_000), Some(&fgw))
            .await,
        404,
        "record_not_found",
    )
    .await;
    assert_eq!(body["detail"], missing["detail"]);
    let in_id = inside.iter().next().unwrap();
    json_of(app.lookup(POPULATION_CODE, in_id, Some(&fgw)).await, 200).await;

    // records?filter: the grant's filter is ANDed.
    let seen: BTreeSet<String> = ids(&all_records(&app, &fgw, &[("limit", "100")]).await)
        .into_iter()
        .collect();
    assert_eq!(seen, inside);
    let women = all_records(&app, &fgw, &[("filter", "gender = '女'")]).await;
    assert!(ids(&women).iter().all(|id| inside.contains(id)));

    // export.
    let text = export(&app, &fgw, "format=ndjson&fields=id_number")
        .await
        .text()
        .await
        .unwrap();
    let exported: BTreeSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id_number"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(exported, inside);

    // lab.
    let view = huitong::query::lab::view_name(POPULATION_CODE);
    let body = json_of(
        app.post(
            "/api/v1/lab/query",
            &fgw,
            &json!({"sql": format!("SELECT count(*), count(DISTINCT id_number) FROM {view}")}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["rows"], json!([[inside.len(), inside.len()]]));
    let body = json_of(
        app.post(
            "/api/v1/lab/query",
            &fgw,
            &json!({"sql": format!("SELECT id_number FROM {view} WHERE id_number = '{out_id}'")}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["row_count"], 0);
}

/// The population library's current version and its export snapshot's, as the API reports them.
async fn snapshot_state(app: &TestApp) -> (i64, Option<i64>) {
    let library = json_of(
        app.get("/api/v1/libraries/population", &app.key("platform_admin"))
            .await,
        200,
    )
    .await;
    (
        library["version"].as_i64().unwrap(),
        library["snapshot_version"].as_i64(),
    )
}

/// Waits until the export snapshot of the population library is at its current version (at most
/// a minute: the server writes it in the background within a second or two); returns that version.
async fn snapshot_caught_up(app: &TestApp) -> i64 {
    for _ in 0..600 {
        let (version, snapshot) = snapshot_state(app).await;
        if snapshot == Some(version) {
            return version;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the export snapshot did not catch up: {:?}", snapshot_state(app).await);
}

/// Every export of `cases`, as (library version header, body).
async fn exports(app: &TestApp, cases: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (role, params) in cases {
        let response = export(app, &app.key(role), params).await;
        assert_eq!(response.status().as_u16(), 200, "{role} {params}");
        let version = response.headers()["x-library-version"].to_str().unwrap().to_string();
        out.push((version, response.bytes().await.unwrap().to_vec()));
    }
    out
}

/// A server whose population resource is shared in bulk; a library's export snapshot is
/// written again at most once per `snapshot_interval` seconds.
async fn bulk_app(snapshot_interval: u64) -> TestApp {
    let app = huitong_tests::spawn_app_with(huitong_tests::SpawnOptions {
        catalog_cache_seconds: 0.0,
        snapshot_min_interval_seconds: snapshot_interval,
        ..huitong_tests::SpawnOptions::on(MetaDb::Sqlite)
    })
    .await;
    set_share_method(&app, exchange_core::ShareMethod::Bulk).await;
    app
}

/// Every format, whole and filtered, plain and masked: (demo role, query).
fn export_cases() -> Vec<(&'static str, String)> {
    let filter = encode("gender = '女' OR phone IS NULL");
    let filtered = format!("fields=name,id_number,phone,birth_date&filter={filter}");
    ["csv", "ndjson", "json", "parquet"]
        .iter()
        .flat_map(|format| {
            [
                ("consumer_granted", format!("format={format}")),
                ("consumer_granted", format!("format={format}&{filtered}")),
                ("provider_admin", format!("format={format}")),
            ]
        })
        .collect()
}

/// The export snapshot file of `version`.
fn snapshot_file(app: &TestApp, version: i64) -> std::path::PathBuf {
    app.data_path()
        .join("libraries/population/export")
        .join(format!("current-v{version}.arrow"))
}

#[tokio::test]
async fn exports_read_the_snapshot_of_their_version_or_else_the_index_with_the_same_bytes() {
    // Written once, then not again for an hour: with the file removed, exports must scan the
    // index.
    let app = bulk_app(3600).await;
    let cases = export_cases();
    let cases: Vec<(&str, &str)> = cases.iter().map(|(r, p)| (*r, p.as_str())).collect();

    let version = snapshot_caught_up(&app).await;
    let from_snapshot = exports(&app, &cases).await;
    assert!(from_snapshot.iter().all(|(v, _)| *v == version.to_string()));
    let records = app.libraries.get("population").unwrap().len().unwrap() as usize;
    let csv = String::from_utf8(from_snapshot[0].1.clone()).unwrap();
    assert_eq!(csv.lines().count(), records + 1, "a header and every record");
    let file = snapshot_file(&app, version);
    std::fs::remove_file(&file).unwrap();
    let from_index = exports(&app, &cases).await;
    assert!(
        !file.exists(),
        "no snapshot was written meanwhile: these came from the index"
    );
    for ((case, a), b) in cases.iter().zip(&from_snapshot).zip(&from_index) {
        assert!(a == b, "{case:?}: the snapshot's export differs from the index's");
    }
}

#[tokio::test]
async fn a_missing_or_stale_export_snapshot_is_written_again() {
    let app = bulk_app(0).await;
    let cases = export_cases();
    let cases: Vec<(&str, &str)> = cases.iter().map(|(r, p)| (*r, p.as_str())).collect();

    // Found missing by an export, it is written again.
    let version = snapshot_caught_up(&app).await;
    let file = snapshot_file(&app, version);
    std::fs::remove_file(&file).unwrap();
    let before = exports(&app, &cases).await;
    assert_eq!(snapshot_caught_up(&app).await, version);
    assert!(file.exists());
    assert_eq!(exports(&app, &cases).await, before);

    // A change makes the snapshot stale: exports at once serve the new version, then the
    // snapshot of that version gives the same files again.
    let library = app.libraries.get("population").unwrap();
    let schema = library.schema();
    let key = app.sample_ids[0].clone();
    let mut row = vec![None; schema.fields.len()];
    row[0] = Some(key.clone());
    row[schema.position("name").unwrap()] = Some("快照后改名".to_string());
    let mut writer = library
        .writer("GAJ", 0, exchange_core::Authority::by_field(schema, |f| f == "name"))
        .await
        .unwrap();
    writer.upsert(row).unwrap();
    let changed = writer.commit("test-snapshot", 1).await.unwrap().version;
    assert!(changed > version);
    let after_change = exports(&app, &cases).await;
    assert!(after_change.iter().all(|(v, _)| *v == changed.to_string()));
    let plain = String::from_utf8(exports(&app, &[("provider_admin", "format=csv")]).await[0].1.clone()).unwrap();
    assert!(
        plain.lines().any(|l| l.starts_with(&key) && l.contains("快照后改名")),
        "the change is exported"
    );
    assert_eq!(snapshot_caught_up(&app).await, changed);
    assert_eq!(exports(&app, &cases).await, after_change);
}
