//! The console in Chromium: log in with an API key, read the KPIs the charts show against
//! `GET /api/v1/kpis`, switch language, see overdue items; screenshots for docs/screenshots.

use fantoccini::Locator;
use huitong_tests::browser::Browser;
use huitong_tests::{MetaDb, TestApp, json_of, spawn_app};
use serde_json::Value;

/// The rate as the console prints it.
fn percent(rate: &Value) -> String {
    rate.as_f64()
        .map_or_else(|| "—".to_string(), |r| format!("{:.1}%", r * 100.0))
}

/// Logs in through the console's form with `key`; ends on the page the login leads to.
async fn log_in(browser: &Browser, app: &TestApp, key: &str, lang: &str) {
    browser
        .goto(&format!("{}/console{lang}", app.address))
        .await
        .expect("console opens");
    // Without a session the console sends the browser to its login form.
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/console/login");
    browser
        .wait()
        .for_element(Locator::Id("key"))
        .await
        .unwrap()
        .send_keys(key)
        .await
        .unwrap();
    browser
        .screenshot(&format!("console-login{}", lang.replace("?lang=", "-")))
        .await;
    browser.click(Locator::Css("form#login button[type=submit]")).await;
    browser
        .wait()
        .for_element(Locator::Id("logout"))
        .await
        .expect("logged in");
    assert_eq!(browser.current_url().await.unwrap().path(), "/console");
}

/// Asserts every KPI card shows the rate and figures the API returns.
async fn cards_match(browser: &Browser, report: &Value) {
    for kpi in report["kpis"].as_array().unwrap() {
        let code = kpi["code"].as_str().unwrap();
        let card = format!("#kpi-{code}");
        assert_eq!(
            browser.text(&format!("{card} .rate")).await,
            percent(&kpi["rate"]),
            "{code}"
        );
        assert_eq!(
            browser.text(&format!("{card} .numerator")).await,
            kpi["numerator"].to_string(),
            "{code}"
        );
        assert_eq!(
            browser.text(&format!("{card} .denominator")).await,
            kpi["denominator"].to_string(),
            "{code}"
        );
    }
}

#[tokio::test]
async fn platform_staff_see_kpis_overdue_items_and_switch_language() {
    let app = spawn_app(MetaDb::Sqlite).await;
    // Calls for the usage figures: two allowed, one refused.
    let id = &app.sample_ids[0];
    for role in ["consumer_granted", "consumer_granted", "consumer_ungranted"] {
        app.lookup_population(id, role).await;
    }
    let admin = app.key("platform_admin");
    let report = json_of(app.get("/api/v1/kpis", &admin).await, 200).await;
    let usage = report["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["code"] == "usage")
        .unwrap();
    assert_eq!(usage["numerator"], 1, "the population resource is used: {usage}");

    let browser = Browser::start().await;
    log_in(&browser, &app, &admin, "").await;
    assert_eq!(browser.text("h1").await, "平台控制台");
    // The demo's overdue demand, highlighted, on the home page.
    assert!(browser.count("#overdue-demands tr.overdue").await >= 1);
    assert!(browser.text("#overdue-demands tr.overdue").await.contains("已逾期"));
    assert!(
        browser.count("#sync-health tbody tr").await >= 5,
        "the demo's connectors"
    );
    cards_match(&browser, &report).await;
    browser.screenshot("console-platform").await;

    // To the KPI charts through the navigation.
    browser.click(Locator::Css("header nav a[href='/console/kpis']")).await;
    browser.wait().for_element(Locator::Id("kpi-cards")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/console/kpis");
    cards_match(&browser, &report).await;
    for kpi in report["kpis"].as_array().unwrap() {
        let code = kpi["code"].as_str().unwrap();
        assert_eq!(
            browser.count(&format!("svg#trend-{code}")).await,
            1,
            "{code} trend chart"
        );
        assert_eq!(
            browser.count(&format!("svg#departments-{code}")).await,
            1,
            "{code} bars"
        );
        // The month's point of the series is in the chart's description.
        let last = kpi["series"].as_array().unwrap().last().unwrap();
        let expected = format!(
            "{} {} ({}/{})",
            last["month"].as_str().unwrap(),
            percent(&last["rate"]),
            last["numerator"],
            last["denominator"]
        );
        // SVG <desc> is not rendered: read its text content.
        let desc = browser
            .find(Locator::Css(&format!("svg#trend-{code} desc")))
            .await
            .unwrap()
            .prop("textContent")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(
            desc.ends_with(&expected),
            "{code}: {desc:?} should end with {expected:?}"
        );
    }
    let calls = browser.text("#calls tbody tr").await;
    assert!(
        calls.contains(huitong::demo::POPULATION_CODE) && calls.contains('2') && calls.contains('1'),
        "{calls}"
    );
    browser.screenshot("console-kpis").await;

    // English, same numbers.
    browser.click(Locator::Id("lang-switch")).await;
    browser.wait().for_element(Locator::Css("html[lang=en]")).await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert_eq!((url.path(), url.query()), ("/console/kpis", Some("lang=en")));
    assert!(browser.text("h1").await.starts_with("KPIs"));
    assert!(browser.text("#section-usage").await.contains("Usage rate"));
    cards_match(&browser, &report).await;
    browser.screenshot("console-kpis-en").await;

    // Back in Chinese, then out.
    browser.click(Locator::Id("lang-switch")).await;
    browser
        .wait()
        .for_element(Locator::Css("html[lang=zh-CN]"))
        .await
        .unwrap();
    browser.click(Locator::Id("logout")).await;
    browser
        .wait()
        .for_element(Locator::Id("key"))
        .await
        .expect("back at the login form");
    browser.goto(&format!("{}/console", app.address)).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/console/login");
    browser.close().await;
}

#[tokio::test]
async fn a_department_officer_sees_its_resources_demands_and_runs() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let key = app.key("provider_admin");
    let report = json_of(app.get("/api/v1/kpis", &key).await, 200).await;
    assert_eq!(report["department"], "GAJ");

    let browser = Browser::start().await;
    // A wrong key first: the form says why and no session starts.
    browser
        .goto(&format!("{}/console/login?lang=en", app.address))
        .await
        .unwrap();
    browser
        .find(Locator::Id("key"))
        .await
        .unwrap()
        .send_keys("ht_wrong")
        .await
        .unwrap();
    browser.click(Locator::Css("form#login button[type=submit]")).await;
    assert!(browser.text("#login-error").await.contains("not valid"));

    log_in(&browser, &app, &key, "").await;
    assert!(browser.text("h1").await.contains("市公安局"));
    assert!(
        browser
            .text("#my-resources")
            .await
            .contains(huitong::demo::POPULATION_CODE)
    );
    assert!(browser.count("#incoming-demands tbody tr").await >= 1);
    assert!(browser.text("#connector-runs").await.contains("gaj-hukou"));
    cards_match(&browser, &report).await;
    browser.screenshot("console-department").await;
    browser.close().await;
}
