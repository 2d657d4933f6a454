//! The open-data API: downloads in every format with only open items, the conditional-open
//! application round trip, sign-up, quotas per client address, and the audit of open calls.

use std::collections::BTreeMap;

use huitong::demo::{CREDIT_CODE, LEGAL_ENTITY_CODE, POPULATION_CODE};
use huitong::settings::OpenSettings;
use huitong_tests::{MetaDb, SpawnOptions, TestApp, assert_problem, json_of, spawn_app, spawn_app_with};
use serde_json::{Map, Value, json};

type Row = BTreeMap<String, Option<String>>;

/// `GET {path}` without credentials.
async fn anonymous(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("request sent")
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Every record of the dataset through the paged records endpoint, as `key` (or anonymous).
async fn paged(app: &TestApp, id: &str, key: Option<&str>) -> Vec<Row> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/open/v1/datasets/{id}/records?limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let response = match key {
            Some(key) => app.get(&path, key).await,
            None => anonymous(app, &path).await,
        };
        let body = json_of(response, 200).await;
        for record in body["records"].as_array().unwrap() {
            out.push(row_of(record.as_object().unwrap()));
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}

fn row_of(record: &Map<String, Value>) -> Row {
    record
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
        .collect()
}

/// Downloads the dataset anonymously in `format`; returns the response's bytes and headers.
async fn download(app: &TestApp, id: &str, params: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let response = anonymous(app, &format!("/open/v1/datasets/{id}/download?{params}")).await;
    assert_eq!(response.status(), 200, "{params}");
    let headers = response.headers().clone();
    (headers, response.bytes().await.unwrap().to_vec())
}

fn parse_csv(bytes: &[u8]) -> Vec<Row> {
    let mut reader = csv::Reader::from_reader(bytes);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.clone(), (!v.is_empty()).then(|| v.to_string())))
                .collect()
        })
        .collect()
}

fn parse_parquet(bytes: Vec<u8>) -> Vec<Row> {
    use arrow::array::{Array, StringArray};
    use std::io::Write;
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&bytes).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).expect("a parquet file");
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let schema = batch.schema();
        for r in 0..batch.num_rows() {
            let mut row = Row::new();
            for (c, field) in schema.fields().iter().enumerate() {
                let column = batch.column(c).as_any().downcast_ref::<StringArray>().unwrap();
                row.insert(
                    field.name().clone(),
                    column.is_valid(r).then(|| column.value(r).to_string()),
                );
            }
            out.push(row);
        }
    }
    out
}

/// The sheet's rows under its header row, keyed by the header (Chinese labels).
fn parse_xlsx(bytes: Vec<u8>) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    use calamine::{Reader, Xlsx};
    let mut workbook = Xlsx::new(std::io::Cursor::new(bytes)).expect("an xlsx file");
    let range = workbook.worksheet_range("data").expect("the data sheet");
    let mut rows = range.rows();
    let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
    let body = rows
        .map(|r| {
            r.iter()
                .map(|c| {
                    let s = c.to_string();
                    (!s.is_empty()).then_some(s)
                })
                .collect()
        })
        .collect();
    (header, body)
}

#[tokio::test]
async fn every_download_format_carries_the_same_open_records_and_nothing_else() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let expected = paged(&app, LEGAL_ENTITY_CODE, None).await;
    assert!(expected.len() > 10, "the demo opens its legal entities");
    let first = &expected[0];
    // L1 plain, L2 masked, L3 withheld.
    assert!(!first.contains_key("legal_rep_id"), "L3 is never opened: {first:?}");
    let masked_name = expected
        .iter()
        .find_map(|r| r["legal_rep_name"].clone())
        .expect("names present");
    assert!(masked_name.contains('*'), "L2 is masked: {masked_name}");
    let uscc = first["uscc"].clone().unwrap();
    assert_eq!(uscc.len(), 18, "L1 is plain: {uscc}");

    let (headers, csv_bytes) = download(&app, LEGAL_ENTITY_CODE, "format=csv").await;
    let version = headers["x-library-version"].to_str().unwrap().to_string();
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        headers["content-disposition"].to_str().unwrap(),
        format!("attachment; filename=\"{LEGAL_ENTITY_CODE}-v{version}.csv\"")
    );
    assert!(!csv_bytes.starts_with(b"\xEF\xBB\xBF"), "no BOM unless asked");
    assert_eq!(parse_csv(&csv_bytes), expected, "csv");

    let (_, with_bom) = download(&app, LEGAL_ENTITY_CODE, "format=csv&bom=true").await;
    assert_eq!(&with_bom[..3], b"\xEF\xBB\xBF", "bom=true starts with the UTF-8 BOM");
    assert_eq!(&with_bom[3..], &csv_bytes[..], "and is otherwise the same file");

    let (headers, json_bytes) = download(&app, LEGAL_ENTITY_CODE, "format=json").await;
    assert_eq!(headers["content-type"], "application/json");
    let array: Vec<Map<String, Value>> = serde_json::from_slice(&json_bytes).expect("a JSON array");
    assert_eq!(array.iter().map(row_of).collect::<Vec<_>>(), expected, "json");

    let (_, ndjson) = download(&app, LEGAL_ENTITY_CODE, "format=ndjson").await;
    let lines: Vec<Row> = String::from_utf8(ndjson)
        .unwrap()
        .lines()
        .map(|l| row_of(serde_json::from_str::<Value>(l).unwrap().as_object().unwrap()))
        .collect();
    assert_eq!(lines, expected, "ndjson");

    let (_, parquet) = download(&app, LEGAL_ENTITY_CODE, "format=parquet").await;
    assert_eq!(parse_parquet(parquet), expected, "parquet");

    let (headers, xlsx) = download(&app, LEGAL_ENTITY_CODE, "format=xlsx").await;
    assert_eq!(
        headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let (header, rows) = parse_xlsx(xlsx);
    assert_eq!(header[0], "统一社会信用代码", "XLSX headers are the Chinese labels");
    assert!(!header.iter().any(|h| h == "法定代表人身份证号"));
    let names: Vec<&String> = expected[0].keys().collect();
    assert_eq!(header.len(), names.len());
    let uscc_column: Vec<Option<String>> = rows.iter().map(|r| r[0].clone()).collect();
    let mut want: Vec<Option<String>> = expected.iter().map(|r| r["uscc"].clone()).collect();
    want.sort();
    let mut got = uscc_column;
    got.sort();
    assert_eq!(got, want, "xlsx holds every record");

    // Fields and filters narrow a download; the filter sees the values as served.
    let filter = encode(&format!("uscc = '{uscc}'"));
    let (_, narrowed) = download(
        &app,
        LEGAL_ENTITY_CODE,
        &format!("format=csv&fields=uscc,name&filter={filter}"),
    )
    .await;
    let rows = parse_csv(&narrowed);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].keys().collect::<Vec<_>>(), vec!["name", "uscc"]);
    assert_eq!(rows[0]["uscc"].as_deref(), Some(uscc.as_str()));

    // A download of an earlier version says which.
    let (headers, _) = download(&app, LEGAL_ENTITY_CODE, &format!("format=csv&as_of_version={version}")).await;
    assert_eq!(headers["x-library-version"].to_str().unwrap(), version);
}

#[tokio::test]
async fn closed_and_missing_datasets_look_alike_and_bad_input_is_named() {
    let app = spawn_app(MetaDb::Sqlite).await;
    for id in [POPULATION_CODE, "9-99-999-999999", "nonsense"] {
        let body = assert_problem(
            anonymous(&app, &format!("/open/v1/datasets/{id}/download?format=csv")).await,
            404,
            "dataset_not_found",
        )
        .await;
        assert_eq!(body["field"], "id");
        assert_problem(
            anonymous(&app, &format!("/open/v1/datasets/{id}/records")).await,
            404,
            "dataset_not_found",
        )
        .await;
    }
    let cases: &[(&str, u16, &str, &str)] = &[
        ("format=xml", 422, "invalid_query", "format"),
        ("format=csv&bom=yes", 422, "invalid_query", "bom"),
        ("format=csv&fields=legal_rep_id", 403, "item_not_granted", "fields"),
        ("format=csv&fields=shoe_size", 422, "unknown_item", "fields"),
        (
            "format=csv&filter=legal_rep_id%20%3D%20'1'",
            403,
            "item_not_granted",
            "filter",
        ),
        ("format=csv&filter=uscc%20%3D", 422, "invalid_filter", "filter"),
        ("format=csv&as_of_version=999999", 422, "invalid_query", "as_of_version"),
        ("format=csv&colour=red", 422, "invalid_query", "colour"),
    ];
    for (params, status, code, field) in cases {
        let body = assert_problem(
            anonymous(
                &app,
                &format!("/open/v1/datasets/{LEGAL_ENTITY_CODE}/download?{params}"),
            )
            .await,
            *status,
            code,
        )
        .await;
        assert_eq!(body["field"], *field, "{params}");
    }
    assert_problem(
        anonymous(&app, &format!("/open/v1/datasets/{LEGAL_ENTITY_CODE}/records?limit=0")).await,
        422,
        "invalid_query",
    )
    .await;
}

async fn sign_up(app: &TestApp, email: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/open/v1/developers", app.address))
        .json(&json!({"name": "李开发", "email": email, "organization": "某某科技有限公司"}))
        .send()
        .await
        .unwrap()
}

async fn conditional_dataset_round_trip(app: &TestApp) {
    let path = format!("/open/v1/datasets/{CREDIT_CODE}/download?format=ndjson");
    // Anonymous callers need a key; a developer without an application needs one.
    assert_problem(anonymous(app, &path).await, 401, "developer_key_required").await;
    let signed = json_of(sign_up(app, "li@example.cn").await, 201).await;
    let key = signed["key"].as_str().unwrap().to_string();
    assert_eq!(signed["credential"]["role"], "open_data_developer");
    assert_eq!(signed["developer"]["organization"], "某某科技有限公司");
    assert_problem(app.get(&path, &key).await, 403, "application_required").await;

    // Applying: for a conditional dataset only, once at a time, with a purpose.
    let apply = format!("/open/v1/datasets/{CREDIT_CODE}/applications");
    let body = assert_problem(
        app.post(&apply, &key, &json!({"purpose": "  "})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "purpose");
    assert_problem(
        app.post(
            &format!("/open/v1/datasets/{LEGAL_ENTITY_CODE}/applications"),
            &key,
            &json!({"purpose": "企业信用研究"}),
        )
        .await,
        409,
        "not_conditional",
    )
    .await;
    assert_problem(
        app.post(&apply, &app.key("consumer_granted"), &json!({"purpose": "x"}))
            .await,
        403,
        "forbidden",
    )
    .await;
    let application = json_of(app.post(&apply, &key, &json!({"purpose": "企业信用研究"})).await, 201).await;
    assert_eq!(application["status"], "pending");
    assert_eq!(application["applicant"], "李开发 (某某科技有限公司)");
    assert_problem(
        app.post(&apply, &key, &json!({"purpose": "again"})).await,
        409,
        "invalid_state",
    )
    .await;
    assert_problem(app.get(&path, &key).await, 403, "application_required").await;

    // The provider (发改委) answers; another department may not; a rejection needs a reason.
    let id = application["id"].as_i64().unwrap();
    let decide = format!("/api/v1/open-applications/{id}/decision");
    let fgw = app.issue_key(policy::Role::ProviderAdmin, Some("FGW")).await;
    assert_problem(
        app.post(&decide, &app.key("provider_admin"), &json!({"approve": true}))
            .await,
        403,
        "forbidden",
    )
    .await;
    let body = assert_problem(
        app.post(&decide, &fgw, &json!({"approve": false})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "reason");
    let incoming = json_of(app.get("/api/v1/open-applications", &fgw).await, 200).await;
    assert_eq!(incoming["items"][0]["id"], id, "the provider sees it incoming");
    let answered = json_of(app.post(&decide, &fgw, &json!({"approve": true})).await, 200).await;
    assert_eq!(answered["status"], "approved");
    assert_problem(
        app.post(&decide, &fgw, &json!({"approve": false, "reason": "late"}))
            .await,
        409,
        "invalid_state",
    )
    .await;

    // Approved: L2 items come plain to this developer, and still masked to the public rule.
    let response = app.get(&path, &key).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let first: Value = serde_json::from_str(text.lines().next().expect("credit records")).unwrap();
    let subject = first["subject_id"].as_str().unwrap();
    assert!(!subject.contains('*'), "plain under the application: {subject}");
    assert_eq!(subject.len(), 18);
    let me = json_of(app.get("/open/v1/developers/me", &key).await, 200).await;
    assert_eq!(me["applications"][0]["status"], "approved");
    assert_eq!(me["developer"]["email"], "li@example.cn");

    // The download is audited with the application that allowed it.
    let audit = json_of(
        app.get(
            &format!("/api/v1/audit?resource={CREDIT_CODE}"),
            &app.key("platform_admin"),
        )
        .await,
        200,
    )
    .await;
    let records = audit["items"].as_array().unwrap();
    let allowed = records
        .iter()
        .find(|r| r["outcome"] == "allowed" && r["endpoint"] == "GET /open/v1/datasets/{id}/download")
        .expect("the allowed download is audited");
    assert_eq!(allowed["application_id"], id);
    assert!(
        allowed["items_plain"]
            .as_array()
            .unwrap()
            .contains(&json!("subject_id"))
    );
    let refused = records
        .iter()
        .find(|r| r["outcome"] == "developer_key_required")
        .expect("the anonymous refusal is audited");
    assert!(refused["credential_id"].is_null());
    assert_eq!(refused["client_hash"].as_str().unwrap().len(), 64);
    let chain = json_of(app.get("/api/v1/audit/verify", &app.key("platform_admin")).await, 200).await;
    assert!(chain["first_broken"].is_null(), "{chain}");
}

#[tokio::test]
async fn a_conditional_dataset_is_read_after_an_approved_application() {
    conditional_dataset_round_trip(&spawn_app(MetaDb::Sqlite).await).await;
}

#[tokio::test]
async fn a_conditional_dataset_is_read_after_an_approved_application_on_postgres() {
    conditional_dataset_round_trip(&spawn_app(MetaDb::Postgres).await).await;
}

#[tokio::test]
async fn sign_up_refuses_bad_and_duplicate_accounts_and_stores_nothing_then() {
    let app = spawn_app(MetaDb::Sqlite).await;
    for (body, code, field) in [
        (json!({"name": "", "email": "a@b.cn"}), "validation_failed", "name"),
        (
            json!({"name": "张三", "email": "not-an-email"}),
            "validation_failed",
            "email",
        ),
        (json!({"name": "张三", "email": "a@b"}), "validation_failed", "email"),
        (json!({"name": "张三"}), "invalid_body", "email"),
        (
            json!({"name": "张三", "email": "a@b.cn", "phone": "1"}),
            "invalid_body",
            "phone",
        ),
    ] {
        let response = app
            .client
            .post(format!("{}/open/v1/developers", app.address))
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422, code).await;
        assert_eq!(problem["field"], field, "{body}");
    }
    json_of(sign_up(&app, "wang@example.cn").await, 201).await;
    let body = assert_problem(sign_up(&app, "WANG@example.cn").await, 409, "conflict").await;
    assert_eq!(body["field"], "email");
    let developers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM developers")
        .fetch_one(app.catalog.pool())
        .await
        .unwrap();
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credentials WHERE name LIKE 'developer:%'")
        .fetch_one(app.catalog.pool())
        .await
        .unwrap();
    assert_eq!((developers, keys), (1, 1), "the refused sign-up left no key behind");
}

#[tokio::test]
async fn anonymous_callers_are_held_to_a_quota_per_address_and_developers_to_theirs() {
    let app = spawn_app_with(SpawnOptions {
        open: OpenSettings {
            anonymous_per_second: 0.001,
            anonymous_burst: 3,
            ..OpenSettings::default()
        },
        ..SpawnOptions::on(MetaDb::Sqlite)
    })
    .await;
    let path = format!("/open/v1/datasets/{LEGAL_ENTITY_CODE}/records?limit=1");
    for _ in 0..3 {
        assert_eq!(anonymous(&app, &path).await.status(), 200);
    }
    let response = anonymous(&app, &path).await;
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 60, "{retry_after}");
    assert_problem(response, 429, "quota_exceeded").await;
    let key = json_of(sign_up(&app, "zhao@example.cn").await, 201).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.get(&path, &key).await.status(),
        200,
        "a developer key has its own quota"
    );
}

#[tokio::test]
async fn a_developer_rotates_its_own_key_and_its_account_follows() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let signed = json_of(sign_up(&app, "zhou@example.cn").await, 201).await;
    let key = signed["key"].as_str().unwrap().to_string();
    let id = signed["credential"]["id"].as_i64().unwrap();
    json_of(
        app.post(
            &format!("/open/v1/datasets/{CREDIT_CODE}/applications"),
            &key,
            &json!({"purpose": "研究"}),
        )
        .await,
        201,
    )
    .await;
    // Another key is not its to rotate.
    assert_problem(
        app.post("/api/v1/credentials/1/rotate", &key, &json!({})).await,
        403,
        "forbidden",
    )
    .await;
    let rotated = json_of(
        app.post(&format!("/api/v1/credentials/{id}/rotate"), &key, &json!({}))
            .await,
        201,
    )
    .await;
    let new_key = rotated["key"].as_str().unwrap();
    assert_eq!(rotated["old_key_revoked"], true);
    assert_eq!(app.get("/open/v1/developers/me", &key).await.status(), 401);
    let me = json_of(app.get("/open/v1/developers/me", new_key).await, 200).await;
    assert_eq!(me["developer"]["email"], "zhou@example.cn");
    assert_eq!(me["applications"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn providers_answer_applications_from_the_console_forms() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let key = json_of(sign_up(&app, "sun@example.cn").await, 201).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let application = json_of(
        app.post(
            &format!("/open/v1/datasets/{CREDIT_CODE}/applications"),
            &key,
            &json!({"purpose": "征信研究"}),
        )
        .await,
        201,
    )
    .await;
    let id = application["id"].as_i64().unwrap();
    let fgw = app.issue_key(policy::Role::ProviderAdmin, Some("FGW")).await;
    let console = app
        .client
        .get(format!("{}/console", app.address))
        .bearer_auth(&fgw)
        .send()
        .await
        .unwrap();
    let html = console.text().await.unwrap();
    assert!(
        html.contains(&format!("<tr data-id=\"{id}\">")),
        "pending in 发改委's console"
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = |key: String, body: &'static str| {
        no_redirects
            .post(format!("{}/console/open-applications/{id}", app.address))
            .bearer_auth(key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    // Another department may not; a rejection needs a reason; then it is answered once.
    let response = answer(app.key("provider_admin"), "decision=approve").await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("id=\"answer-error\""));
    assert_eq!(
        answer(fgw.clone(), "decision=reject&reason=").await.unwrap().status(),
        422
    );
    assert_eq!(answer(fgw.clone(), "decision=maybe").await.unwrap().status(), 422);
    let response = answer(
        fgw.clone(),
        "decision=reject&reason=%E7%94%A8%E9%80%94%E4%B8%8D%E6%98%8E",
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(answer(fgw.clone(), "decision=approve").await.unwrap().status(), 409);
    let me = json_of(app.get("/open/v1/developers/me", &key).await, 200).await;
    assert_eq!(me["applications"][0]["status"], "rejected");
    assert_eq!(me["applications"][0]["reason"], "用途不明");
}
