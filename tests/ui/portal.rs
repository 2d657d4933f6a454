//! The open-data portal in Chromium: search and browse, a real download, developer sign-up,
//! an application and what its approval opens; screenshots for docs/screenshots.

use std::time::Duration;

use fantoccini::Locator;
use huitong::demo::{CREDIT_CODE, LEGAL_ENTITY_CODE};
use huitong_tests::browser::Browser;
use huitong_tests::{MetaDb, TestApp, json_of, spawn_app};

async fn ids(browser: &Browser) -> Vec<String> {
    let mut out = Vec::new();
    for li in browser.find_all(Locator::Css("#results li.dataset")).await.unwrap() {
        out.push(li.attr("data-id").await.unwrap().unwrap_or_default());
    }
    out
}

async fn fill(browser: &Browser, id: &str, value: &str) {
    let field = browser.wait().for_element(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn submit(browser: &Browser, form: &str) {
    browser
        .click(Locator::Css(&format!("form#{form} button[type=submit]")))
        .await;
}

/// Waits until the browser has finished writing a file to its downloads directory.
async fn downloaded(browser: &Browser) -> (String, Vec<u8>) {
    let dir = browser.downloads();
    // Chromium writes a hidden temp file, then `*.crdownload`, and renames it when done: wait
    // for the rename (the outcome is decided by the file, the loop only bounds the wait).
    for _ in 0..300 {
        let done: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_none_or(|x| x != "crdownload"))
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        if let [file] = done.as_slice() {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            return (name, std::fs::read(file).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing was downloaded into {}", dir.display());
}

#[tokio::test]
async fn the_public_searches_browses_and_downloads_in_the_portal() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", app.address)).await.unwrap();
    assert_eq!(browser.text("h1").await, "汇通开放数据");
    browser.screenshot("portal-home").await;
    assert_eq!(ids(&browser).await.len(), 5, "the five open datasets");

    // Search from the box.
    fill(&browser, "q", "处罚").await;
    browser.click(Locator::Id("search")).await;
    // The home page has no result count: waiting for one waits for the results page.
    browser.wait().for_element(Locator::Id("count")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/datasets");
    assert_eq!(ids(&browser).await, vec![CREDIT_CODE]);

    // Browse by department, then open the dataset.
    browser.goto(&format!("{}/", app.address)).await.unwrap();
    browser.click(Locator::LinkText("市市场监督管理局")).await;
    browser.wait().for_element(Locator::Id("count")).await.unwrap();
    assert_eq!(ids(&browser).await, vec![LEGAL_ENTITY_CODE]);
    browser
        .click(Locator::Css(&format!("li[data-id='{LEGAL_ENTITY_CODE}'] a")))
        .await;
    assert_eq!(browser.text("#dataset-name").await, "法人单位基础信息");
    assert_eq!(browser.text("#update-cycle").await, "每日");
    let rows = browser.find_all(Locator::Css("#preview tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 10, "ten records previewed");
    browser.screenshot("portal-dataset").await;

    // Download the CSV for Excel with a click: the file is the dataset, with its BOM.
    browser.click(Locator::LinkText("CSV（Excel）")).await;
    let (name, bytes) = downloaded(&browser).await;
    let version = json_of(
        app.client
            .get(format!("{}/open/v1/datasets/{LEGAL_ENTITY_CODE}", app.address))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await["library_version"]
        .clone();
    assert_eq!(name, format!("{LEGAL_ENTITY_CODE}-v{version}.csv"));
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
    let csv = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let records = json_of(
        app.client
            .get(format!(
                "{}/open/v1/datasets/{LEGAL_ENTITY_CODE}/records?limit=1000",
                app.address
            ))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(csv.lines().count() - 1, records["records"].as_array().unwrap().len());
    assert!(csv.starts_with("uscc,name,"));

    // English.
    browser.click(Locator::Id("lang-switch")).await;
    browser
        .wait()
        .for_element(Locator::Css("html[lang='en']"))
        .await
        .unwrap();
    assert_eq!(browser.text("#open-type").await, "Open");
    browser.close().await;
}

/// 发改委's officer logs in to the console in a second browser and approves the application.
async fn approve_in_the_console(app: &TestApp) {
    let fgw = app.issue_key(policy::Role::ProviderAdmin, Some("FGW")).await;
    let officer = Browser::start().await;
    officer.goto(&format!("{}/console", app.address)).await.unwrap();
    fill(&officer, "key", &fgw).await;
    submit(&officer, "login").await;
    officer.wait().for_element(Locator::Id("logout")).await.unwrap();
    let row = officer
        .wait()
        .for_element(Locator::Css("#open-applications tr[data-id]"))
        .await
        .unwrap();
    assert!(row.text().await.unwrap().contains("赵开发 (开源数据实验室)"));
    officer.screenshot("console-open-applications").await;
    row.find(Locator::Css("form.approve button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Back on the console, nothing waits any more.
    officer
        .wait()
        .for_element(Locator::Css("#open-applications td.empty"))
        .await
        .unwrap();
    officer.close().await;
}

#[tokio::test]
async fn a_developer_signs_up_applies_and_is_approved_in_the_portal() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/developer", app.address)).await.unwrap();
    // A bad email is refused with the reason, and nothing is stored.
    fill(&browser, "signup-name", "赵开发").await;
    fill(&browser, "signup-email", "zhao@example").await;
    submit(&browser, "signup").await;
    assert!(browser.text("#form-error").await.contains("email"));
    fill(&browser, "signup-name", "赵开发").await;
    fill(&browser, "signup-email", "zhao@example.cn").await;
    fill(&browser, "signup-organization", "开源数据实验室").await;
    submit(&browser, "signup").await;
    let key = browser.text("#new-key").await;
    assert!(key.starts_with("ht_") && key.len() == 43, "{key}");
    assert!(browser.text("#account").await.contains("开源数据实验室"));

    // The conditional dataset asks for an application; apply from its page.
    browser
        .goto(&format!("{}/datasets/{CREDIT_CODE}", app.address))
        .await
        .unwrap();
    let refused = browser.find(Locator::Id("preview-refused")).await.unwrap();
    assert_eq!(
        refused.attr("data-code").await.unwrap().as_deref(),
        Some("application_required")
    );
    fill(&browser, "purpose", "研究企业信用修复的时效").await;
    submit(&browser, "apply").await;
    // A click does not wait for the page it leads to: wait for the developer center's table.
    browser.wait().for_element(Locator::Id("applications")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/developer");
    assert_eq!(browser.text("#applications tbody .status").await, "待审核");
    browser.screenshot("portal-developer").await;

    // 发改委 approves it in the console; the dataset page now previews and offers downloads.
    approve_in_the_console(&app).await;
    browser.refresh().await.unwrap();
    assert_eq!(browser.text("#applications tbody .status").await, "已通过");
    browser
        .goto(&format!("{}/datasets/{CREDIT_CODE}", app.address))
        .await
        .unwrap();
    browser.wait().for_element(Locator::Id("preview")).await.unwrap();
    browser.find(Locator::Id("downloads")).await.unwrap();
    let status = browser.find(Locator::Id("application-status")).await.unwrap();
    assert_eq!(status.attr("data-status").await.unwrap().as_deref(), Some("approved"));
    // The key shown at sign-up is the one the session runs on.
    let me = json_of(app.get("/open/v1/developers/me", &key).await, 200).await;
    assert_eq!(me["applications"][0]["status"], "approved");
    browser.close().await;
}
