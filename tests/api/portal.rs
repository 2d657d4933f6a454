//! The open-data portal over HTTP: search and browse, a dataset's page, and the developer
//! center's forms (sign-up, apply) with the session cookie. The same flows in a real browser
//! are in `browser.rs`.

use huitong::demo::{CREDIT_CODE, LEGAL_ENTITY_CODE, POPULATION_CODE, SPATIAL_CODE};
use huitong_tests::{MetaDb, TestApp, json_of, spawn_app};
use serde_json::json;

const HOSPITALS: &str = "3-08-001-000001";
const BUS_LINES: &str = "3-09-001-000002";

async fn page(app: &TestApp, path: &str, cookie: Option<&str>) -> (u16, String) {
    let mut request = app.client.get(format!("{}{path}", app.address));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{path}"
    );
    (status, response.text().await.unwrap())
}

/// The ids of the datasets a listing shows, in order.
fn listed(html: &str) -> Vec<String> {
    html.split("data-id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_portal_lists_searches_and_browses_only_open_datasets() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let (status, home) = page(&app, "/", None).await;
    assert_eq!(status, 200);
    assert!(home.contains("汇通开放数据"));
    // The three open base libraries, and two departments' open resources catalogued without
    // data yet (医疗机构执业登记, 公交线路与站点).
    assert_eq!(
        listed(&home),
        vec![LEGAL_ENTITY_CODE, CREDIT_CODE, SPATIAL_CODE, HOSPITALS, BUS_LINES]
    );
    assert!(!home.contains(POPULATION_CODE), "population is not open");
    assert!(home.contains("有条件开放") && home.contains("无条件开放"));

    let cases: &[(&str, &str, &[&str])] = &[
        ("q", "处罚", &[CREDIT_CODE]),
        // Best first: in the name (社会信用信息) before in an item (统一社会信用代码).
        ("q", "信用", &[CREDIT_CODE, LEGAL_ENTITY_CODE]),
        ("q", "统一社会信用代码", &[LEGAL_ENTITY_CODE]),
        ("q", "市场监督管理局", &[LEGAL_ENTITY_CODE]),
        ("q", "nothing like this", &[]),
        ("theme", "base", &[LEGAL_ENTITY_CODE, CREDIT_CODE, SPATIAL_CODE]),
        ("theme", "theme", &[]),
        ("theme", "department", &[HOSPITALS, BUS_LINES]),
        ("organization", "zrzyj", &[SPATIAL_CODE]),
    ];
    for (param, value, want) in cases {
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let (status, html) = page(&app, &format!("/datasets?{param}={encoded}"), None).await;
        assert_eq!(status, 200, "{param}={value}");
        assert_eq!(listed(&html), *want, "{param}={value}");
    }
    let (_, english) = page(&app, "/?lang=en", None).await;
    assert!(english.contains("Open on application") && english.contains("By department"));
    assert!(english.contains("<html lang=\"en\">"));
}

#[tokio::test]
async fn a_dataset_page_previews_open_items_and_offers_downloads() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let (status, html) = page(&app, &format!("/datasets/{LEGAL_ENTITY_CODE}"), None).await;
    assert_eq!(status, 200);
    assert!(html.contains("法人单位基础信息"));
    assert!(html.contains("id=\"preview\""), "an unconditional dataset is previewed");
    assert!(
        !html.contains("legal_rep_id"),
        "L3 items are neither listed nor previewed"
    );
    assert!(html.contains("<code>legal_rep_name</code>") && html.contains("脱敏"));
    for format in ["csv&amp;bom=true", "xlsx", "json", "ndjson", "parquet"] {
        assert!(
            html.contains(&format!(
                "/open/v1/datasets/{LEGAL_ENTITY_CODE}/download?format={format}"
            )),
            "{format}"
        );
    }
    assert!(html.contains("ckanapi action package_show"));
    // The preview's rows are the first page of the open records endpoint.
    let records = json_of(
        app.client
            .get(format!(
                "{}/open/v1/datasets/{LEGAL_ENTITY_CODE}/records?limit=10",
                app.address
            ))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    for record in records["records"].as_array().unwrap() {
        assert!(html.contains(record["uscc"].as_str().unwrap()));
    }
    // The page view is an audited open call.
    let audit = json_of(
        app.get(
            &format!("/api/v1/audit?resource={LEGAL_ENTITY_CODE}"),
            &app.key("platform_admin"),
        )
        .await,
        200,
    )
    .await;
    let view = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["endpoint"] == "GET /datasets/{id}")
        .expect("the preview is audited");
    assert_eq!(view["row_count"], 10);
    assert_eq!(view["outcome"], "allowed");

    // A conditional dataset asks for an application; a closed one is a 404 page.
    let (status, html) = page(&app, &format!("/datasets/{CREDIT_CODE}"), None).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"preview-refused\" data-code=\"developer_key_required\""));
    assert!(html.contains("id=\"apply-signup\""));
    assert!(!html.contains("id=\"downloads\""));
    // An open resource without data yet is described, with nothing to preview or download.
    let (status, html) = page(&app, &format!("/datasets/{BUS_LINES}"), None).await;
    assert_eq!(status, 200);
    assert!(html.contains("data-code=\"dataset_has_no_data\"") && !html.contains("id=\"downloads\""));
    let (status, html) = page(&app, &format!("/datasets/{POPULATION_CODE}"), None).await;
    assert_eq!(status, 404);
    assert!(html.contains("id=\"not-found\""));
}

fn session_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("huitong_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_developer_signs_up_applies_and_reads_after_approval_through_the_portal_forms() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = |path: &str, fields: &[(&str, &str)], cookie: Option<&str>| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut request = no_redirects
            .post(format!("{}{path}", app.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie.to_string());
        }
        request.send()
    };
    // A bad email comes back as the form with why.
    let response = form("/developer/signup", &[("name", "王五"), ("email", "nope")], None)
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("id=\"form-error\""));

    let response = form(
        "/developer/signup",
        &[
            ("name", "王五"),
            ("email", "wang5@example.cn"),
            ("organization", "五号研究所"),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response);
    let html = response.text().await.unwrap();
    let key = html
        .split("id=\"new-key\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the key is shown once")
        .to_string();
    assert!(key.starts_with("ht_"));
    let (_, center) = page(&app, "/developer", Some(&cookie)).await;
    assert!(
        center.contains("五号研究所") && !center.contains(&key),
        "the key is not shown again"
    );

    // Apply from the dataset page's form.
    let (_, credit) = page(&app, &format!("/datasets/{CREDIT_CODE}"), Some(&cookie)).await;
    assert!(credit.contains("id=\"apply\""));
    let response = form(
        &format!("/datasets/{CREDIT_CODE}/apply"),
        &[("purpose", "信用修复研究")],
        Some(&cookie),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 303);
    let (_, center) = page(&app, "/developer", Some(&cookie)).await;
    assert!(center.contains("信用修复研究") && center.contains("待审核"));
    let (_, credit) = page(&app, &format!("/datasets/{CREDIT_CODE}"), Some(&cookie)).await;
    assert!(credit.contains("data-status=\"pending\""));
    // Applying without logging in shows the developer center with why.
    let response = form(&format!("/datasets/{CREDIT_CODE}/apply"), &[("purpose", "x")], None)
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // 发改委 approves; the page now previews the dataset with L2 plain for this developer.
    let fgw = app.issue_key(policy::Role::ProviderAdmin, Some("FGW")).await;
    let applications = json_of(app.get("/api/v1/open-applications", &fgw).await, 200).await;
    let id = applications["items"][0]["id"].as_i64().unwrap();
    json_of(
        app.post(
            &format!("/api/v1/open-applications/{id}/decision"),
            &fgw,
            &json!({"approve": true}),
        )
        .await,
        200,
    )
    .await;
    let (_, credit) = page(&app, &format!("/datasets/{CREDIT_CODE}"), Some(&cookie)).await;
    assert!(credit.contains("id=\"preview\"") && credit.contains("id=\"downloads\""));
    let (_, center) = page(&app, "/developer", Some(&cookie)).await;
    assert!(center.contains("已通过"));

    // Replacing the key: the new one is shown once, the old one stops, the account and the
    // approved application follow the new key, and the browser stays logged in.
    let response = form("/developer/rotate", &[], Some(&cookie)).await.unwrap();
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response);
    let html = response.text().await.unwrap();
    let old_key = key;
    let key = html
        .split("id=\"new-key\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the new key is shown once")
        .to_string();
    assert_ne!(key, old_key);
    assert_eq!(app.get("/open/v1/developers/me", &old_key).await.status(), 401);
    let me = json_of(app.get("/open/v1/developers/me", &key).await, 200).await;
    assert_eq!(me["developer"]["email"], "wang5@example.cn");
    assert_eq!(me["applications"][0]["status"], "approved");
    let response = app
        .get(&format!("/open/v1/datasets/{CREDIT_CODE}/records?limit=1"), &key)
        .await;
    assert_eq!(response.status(), 200, "the approval follows the new key");

    // Logging out ends the session: the center shows the forms again.
    let response = form("/developer/logout", &[], Some(&cookie)).await.unwrap();
    assert_eq!(response.status(), 303);
    let (_, center) = page(&app, "/developer", Some(&cookie)).await;
    assert!(center.contains("id=\"signup\""));
    // And the key logs in again.
    let response = form("/developer/login", &[("key", &key)], None).await.unwrap();
    assert_eq!(response.status(), 303);
    let response = form("/developer/login", &[("key", &app.key("provider_admin"))], None)
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "only developer keys log in here");
}
