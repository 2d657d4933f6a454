//! The assessment KPIs (`GET /api/v1/kpis`) on the demo's data, and the console's pages over
//! plain HTTP (the browser tests, tests/ui, drive them in Chromium).

use huitong::demo::{LICENSE_CODE, POPULATION_CODE};
use huitong_tests::{MetaDb, TestApp, assert_problem, json_of, spawn_app};
use policy::Role;
use serde_json::{Value, json};

fn kpi<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["kpis"]
        .as_array()
        .expect("kpis")
        .iter()
        .find(|k| k["code"] == code)
        .unwrap_or_else(|| panic!("no KPI {code} in {report}"))
}

fn department<'a>(report: &'a Value, code: &str) -> Option<&'a Value> {
    report["departments"]
        .as_array()
        .expect("departments")
        .iter()
        .find(|d| d["code"] == code)
}

fn figures(v: &Value) -> (i64, i64) {
    (v["numerator"].as_i64().unwrap(), v["denominator"].as_i64().unwrap())
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

async fn kpis(app: &TestApp, query: &str, key: &str) -> Value {
    json_of(app.get(&format!("/api/v1/kpis{query}"), key).await, 200).await
}

/// 按需共享率 is the demo's demands as the demands API lists them: raised today, satisfied when approved.
async fn sharing_rate_counts_demands(app: &TestApp) {
    let admin = app.key("platform_admin");
    let report = kpis(app, "", &admin).await;
    let demands = json_of(app.get("/api/v1/demands?view=all", &admin).await, 200).await;
    let demands = demands["items"].as_array().unwrap();
    let approved = demands.iter().filter(|d| d["status"] == "approved").count() as i64;
    let sharing = kpi(&report, "on_demand_sharing");
    assert_eq!(figures(sharing), (approved, demands.len() as i64), "{sharing}");
    assert!(approved > 0 && approved < demands.len() as i64, "the demo has both");
    assert_eq!(
        sharing["rate"].as_f64().unwrap(),
        approved as f64 / demands.len() as f64
    );
    // Twelve months by default, the last one holding every demo demand.
    let series = sharing["series"].as_array().unwrap();
    assert_eq!(series.len(), 12);
    assert_eq!(series[11]["month"], today()[..7]);
    assert_eq!(figures(&series[11]), figures(sharing));
    assert!(
        series[..11]
            .iter()
            .all(|p| p["denominator"] == 0 && p["rate"].is_null())
    );
    // Per answering department: 人社局 rejected one demand and had one approved after arbitration.
    let by_department: i64 = report["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["on_demand_sharing"]["denominator"].as_i64().unwrap())
        .sum();
    assert_eq!(by_department, demands.len() as i64);
    // A period that ended before the demo was seeded has no demands.
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    let before = kpis(app, &format!("?from=2025-01-01&to={yesterday}"), &admin).await;
    assert_eq!(figures(kpi(&before, "on_demand_sharing")), (0, 0));
    assert!(kpi(&before, "on_demand_sharing")["rate"].is_null());
}

/// 开放率: the demo's legal-entity resource (unconditional open, library filled) is open; the
/// population resource (not open) does not count.
async fn opening_rate_counts_filled_open_resources(app: &TestApp) {
    let admin = app.key("platform_admin");
    let report = kpis(app, "", &admin).await;
    let scjgj = department(&report, "SCJGJ").expect("市场监管局 has an open resource");
    assert_eq!(figures(&scjgj["opening"]), (1, 1), "{scjgj}");
    let gaj = department(&report, "GAJ").expect("公安局");
    let (opened, due) = figures(&gaj["opening"]);
    assert!(opened <= due);
    let opening = kpi(&report, "opening");
    let (n, d) = figures(opening);
    assert!(n > 0 && n <= d, "{opening}");
    let sum: (i64, i64) = report["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| figures(&d["opening"]))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(sum, (n, d), "departments add up to the whole");
}

/// 使用率 and calls per resource follow the exchange calls in the audit trail: an allowed call
/// makes the population resource used, a refused one counts as denied only.
async fn usage_follows_exchange_calls(app: &TestApp) {
    let admin = app.key("platform_admin");
    let before = kpis(app, "", &admin).await;
    let gaj_before = figures(&department(&before, "GAJ").unwrap()["usage"]);
    assert_eq!(gaj_before.0, 0, "no call yet: {before}");
    assert!(before["calls"].as_array().unwrap().is_empty(), "{before}");

    let id = &app.sample_ids[0];
    assert_eq!(app.lookup_population(id, "consumer_ungranted").await.status(), 403);
    let after_denied = kpis(app, "", &admin).await;
    assert_eq!(figures(&department(&after_denied, "GAJ").unwrap()["usage"]).0, 0);
    let calls = after_denied["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["resource_code"], POPULATION_CODE);
    assert_eq!(
        (calls[0]["allowed"].as_i64(), calls[0]["denied"].as_i64()),
        (Some(0), Some(1))
    );

    for _ in 0..2 {
        assert_eq!(app.lookup_population(id, "consumer_granted").await.status(), 200);
    }
    let after = kpis(app, "", &admin).await;
    let gaj = figures(&department(&after, "GAJ").unwrap()["usage"]);
    assert_eq!(gaj, (1, gaj_before.1), "{after}");
    let usage = kpi(&after, "usage");
    assert_eq!(figures(usage).0, 1);
    assert_eq!(figures(&usage["series"][11]), figures(usage));
    let calls = after["calls"].as_array().unwrap();
    assert_eq!(
        (calls[0]["allowed"].as_i64(), calls[0]["denied"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(calls[0]["department"], "GAJ");

    // A period that ended yesterday saw none of it.
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    let earlier = kpis(app, &format!("?to={yesterday}"), &admin).await;
    assert_eq!(figures(kpi(&earlier, "usage")).0, 0);
    assert!(earlier["calls"].as_array().unwrap().is_empty());
}

/// 电子证照利用率: distinct licenses looked up successfully / licenses the library holds.
async fn license_utilisation_counts_distinct_licenses(app: &TestApp) {
    let admin = app.key("platform_admin");
    let held = {
        let health: Value = app
            .client
            .get(format!("{}/health", app.address))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        health["libraries"]["license"]["records"].as_i64().unwrap()
    };
    let before = kpis(app, "", &admin).await;
    assert_eq!(figures(kpi(&before, "license_utilisation")), (0, held));

    // 人社局 asks for the e-licenses; 数据局 (their provider) approves.
    let rsj = app.key("consumer_ungranted");
    let dsj = app.issue_key(Role::ProviderAdmin, Some("DSJ")).await;
    let demand = json_of(
        app.post(
            "/api/v1/demands",
            &rsj,
            &json!({"resource_code": LICENSE_CODE, "purpose": "就业补贴申领时核验职业资格证书",
                    "legal_basis": "《就业促进法》"}),
        )
        .await,
        201,
    )
    .await;
    json_of(
        app.post(
            &format!("/api/v1/demands/{}/decision", demand["id"]),
            &dsj,
            &json!({"decision": "approve"}),
        )
        .await,
        200,
    )
    .await;
    let licenses = &app.sample_keys["license"];
    for key in [&licenses[0], &licenses[0], &licenses[1]] {
        let response = app.lookup(LICENSE_CODE, key, Some(&rsj)).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let after = kpis(app, "", &admin).await;
    let utilisation = kpi(&after, "license_utilisation");
    assert_eq!(figures(utilisation), (2, held), "{utilisation}");
    assert_eq!(
        figures(&department(&after, "DSJ").unwrap()["license_utilisation"]),
        (2, held)
    );
    // A department without a license resource has nothing to count.
    assert!(department(&after, "GAJ").unwrap()["license_utilisation"]["rate"].is_null());
}

/// Who sees what: platform staff any department; a provider admin its own only; consumers none.
async fn kpis_by_role(app: &TestApp) {
    let gaj = app.key("provider_admin");
    let own = kpis(app, "", &gaj).await;
    assert_eq!(own["department"], "GAJ");
    let departments: Vec<&Value> = own["departments"].as_array().unwrap().iter().collect();
    assert_eq!(departments.len(), 1);
    assert_eq!(departments[0]["code"], "GAJ");
    assert_eq!(kpis(app, "?department=GAJ", &gaj).await["department"], "GAJ");
    let refused = assert_problem(app.get("/api/v1/kpis?department=SCJGJ", &gaj).await, 403, "forbidden").await;
    assert_eq!(refused["field"], "department");
    assert_problem(
        app.get("/api/v1/kpis", &app.key("consumer_granted")).await,
        403,
        "forbidden",
    )
    .await;
    let reviewer = kpis(app, "?department=SCJGJ", &app.key("reviewer")).await;
    assert_eq!(reviewer["department"], "SCJGJ");
    assert_eq!(
        app.client
            .get(format!("{}/api/v1/kpis", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

async fn bad_parameters_are_named(app: &TestApp) {
    let admin = app.key("platform_admin");
    let cases = [
        ("?from=2026-13-01", "from"),
        ("?to=yesterday", "to"),
        ("?from=2026-06-01&to=2026-05-31", "from"),
        ("?from=1990-01-01&to=2026-01-01", "from"),
        ("?department=NOPE", "department"),
        ("?since=2026-01-01", "since"),
    ];
    for (query, field) in cases {
        let problem = assert_problem(
            app.get(&format!("/api/v1/kpis{query}"), &admin).await,
            422,
            "invalid_query",
        )
        .await;
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }
    // A ten-year period is the most, and its series has a point per month.
    let long = kpis(app, "?from=2017-01-01&to=2026-12-31", &admin).await;
    assert_eq!(kpi(&long, "usage")["series"].as_array().unwrap().len(), 120);
    let short = kpis(app, "?from=2026-02-10&to=2026-03-05", &admin).await;
    let months: Vec<&str> = kpi(&short, "opening")["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["month"].as_str().unwrap())
        .collect();
    assert_eq!(months, ["2026-02", "2026-03"]);
    assert_eq!(
        (short["from"].as_str(), short["to"].as_str()),
        (Some("2026-02-10"), Some("2026-03-05"))
    );
}

huitong_tests::on_both_databases! {
    kpi_sharing_rate => sharing_rate_counts_demands;
    kpi_usage => usage_follows_exchange_calls;
}

#[tokio::test]
async fn kpi_opening_rate() {
    opening_rate_counts_filled_open_resources(&spawn_app(MetaDb::Sqlite).await).await;
}

#[tokio::test]
async fn kpi_license_utilisation() {
    license_utilisation_counts_distinct_licenses(&spawn_app(MetaDb::Sqlite).await).await;
}

#[tokio::test]
async fn kpi_access_and_parameters() {
    let app = spawn_app(MetaDb::Sqlite).await;
    kpis_by_role(&app).await;
    bad_parameters_are_named(&app).await;
}

/// A client that does not follow redirects, so the login's 303 and cookie are visible.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `key=<key>`, form-encoded.
fn form_body(key: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("key", key)
        .finish()
}

/// Logs in through the console's form; returns the `Cookie` header value.
async fn console_login(app: &TestApp, key: &str) -> String {
    let response = no_redirects()
        .post(format!("{}/console/login", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/console");
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_string()
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> (u16, String) {
    let response = no_redirects()
        .get(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn console_login_pages_and_logout() {
    let app = spawn_app(MetaDb::Sqlite).await;
    // Without a session the browser is sent to the login form.
    let response = no_redirects()
        .get(format!("{}/console?lang=en", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/console/login?lang=en");
    let (status, form) = page(&app, "/console/login", "").await;
    assert_eq!(status, 200);
    assert!(
        form.contains("name=\"key\"") && form.contains("汇通控制台登录"),
        "{form}"
    );

    // A wrong key: the form again, with why.
    let wrong = no_redirects()
        .post(format!("{}/console/login?lang=en", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body("ht_not_a_key"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(wrong.text().await.unwrap().contains("id=\"login-error\""));

    // Platform staff: overdue demands (the demo's 人社局 demand with no time to answer) highlighted.
    let cookie = console_login(&app, &app.key("platform_admin")).await;
    let (status, home) = page(&app, "/console", &cookie).await;
    assert_eq!(status, 200, "{home}");
    assert!(home.contains("平台控制台"));
    let overdue = home
        .split("id=\"overdue-demands\"")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert!(
        overdue.contains("<tr class=\"overdue\">") && overdue.contains("已逾期"),
        "{overdue}"
    );
    for section in [
        "registrations",
        "to-arbitrate",
        "overdue-objections",
        "sync-health",
        "quality-top",
        "kpi-cards",
    ] {
        assert!(home.contains(&format!("id=\"{section}\"")), "{section} missing");
    }
    let (_, english) = page(&app, "/console?lang=en", &cookie).await;
    assert!(
        english.contains("Platform console") && english.contains("overdue"),
        "{english}"
    );
    assert!(english.contains("<html lang=\"en\">"));

    // The KPI page shows the API's numbers.
    let report = kpis(&app, "", &app.key("platform_admin")).await;
    let (status, charts) = page(&app, "/console/kpis", &cookie).await;
    assert_eq!(status, 200);
    for k in report["kpis"].as_array().unwrap() {
        let rate = k["rate"]
            .as_f64()
            .map_or("—".to_string(), |r| format!("{:.1}%", r * 100.0));
        let card = format!("id=\"kpi-{}\"", k["code"].as_str().unwrap());
        let after = charts.split(&card).nth(1).expect("a card per KPI");
        assert!(
            after.contains(&format!("<div class=\"rate\">{rate}</div>")),
            "{card}: {rate}"
        );
        assert!(charts.contains(&format!("id=\"trend-{}\"", k["code"].as_str().unwrap())));
    }
    // One department over a period; the language switch keeps both.
    let (status, gaj) = page(
        &app,
        "/console/kpis?from=2026-01-01&to=2026-12-31&department=GAJ",
        &cookie,
    )
    .await;
    assert_eq!(status, 200);
    assert!(gaj.contains("2026-01-01 – 2026-12-31 · GAJ 市公安局"), "{gaj}");
    assert!(
        gaj.contains("href=\"/console/kpis?from=2026-01-01&amp;to=2026-12-31&amp;department=GAJ&amp;lang=en\""),
        "{gaj}"
    );
    assert!(gaj.contains("<option value=\"GAJ\" selected>"));
    let (status, bad) = page(&app, "/console/kpis?from=2026-06-02&to=2026-06-01", &cookie).await;
    assert_eq!(status, 422);
    assert!(bad.contains("id=\"kpi-error\""), "{bad}");

    // Logging out ends the session.
    let out = no_redirects()
        .post(format!("{}/console/logout", app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(page(&app, "/console", &cookie).await.0, 303);
}

#[tokio::test]
async fn console_for_a_department_officer() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let cookie = console_login(&app, &app.key("provider_admin")).await;
    let (status, home) = page(&app, "/console", &cookie).await;
    assert_eq!(status, 200, "{home}");
    let resources = home
        .split("id=\"my-resources\"")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert!(resources.contains(POPULATION_CODE), "{resources}");
    for section in ["incoming-demands", "objections", "connector-runs", "kpi-cards"] {
        assert!(home.contains(&format!("id=\"{section}\"")), "{section} missing");
    }
    assert!(home.contains("gaj-hukou"), "公安局's connector and its runs");
    // Only its own department's KPIs.
    let (status, charts) = page(&app, "/console/kpis?department=SCJGJ", &cookie).await;
    assert_eq!(status, 403, "{charts}");
    // A consumer system has a department: it sees its own page, without KPIs.
    let consumer = console_login(&app, &app.key("consumer_granted")).await;
    let (status, home) = page(&app, "/console", &consumer).await;
    assert_eq!(status, 200);
    assert!(!home.contains("id=\"kpi-cards\""));
    // An open-data developer has no console.
    let developer = console_login(&app, &app.key("open_data_developer")).await;
    assert_eq!(page(&app, "/console", &developer).await.0, 403);
}
