use huitong_tests::{MetaDb, TestApp, assert_problem, json_of, spawn_app};
use policy::Role;
use serde_json::{Value, json};

/// A department resource as a data officer of 市交通运输局 (JTJ) would register it.
fn bus_resource() -> Value {
    json!({
        "name": "出租车运营许可信息",
        "provider_code": "JTJ",
        "classification": "department",
        "class_code": "3-09-002",
        "summary": "巡游出租车经营许可与车辆信息",
        "share_type": "conditional",
        "share_conditions": "仅用于交通执法与信用监管",
        "legal_basis": "《巡游出租汽车经营服务管理规定》",
        "share_method": "api",
        "open_type": "not_open",
        "update_cycle": "daily",
        "items": [
            {"name": "permit_no", "label_zh": "许可证号", "data_type": "string", "length": 32, "sensitivity": "L1", "is_key": true},
            {"name": "plate_no", "label_zh": "车牌号码", "data_type": "string", "sensitivity": "L2"},
            {"name": "driver_id_number", "label_zh": "驾驶员身份证件号码", "data_type": "string", "sensitivity": "L3"}
        ]
    })
}

async fn lifecycle(app: &TestApp) {
    let officer = app.issue_key(Role::ProviderAdmin, Some("JTJ")).await;
    let reviewer = app.key("reviewer");
    let consumer = app.key("consumer_granted");

    // Registered as a draft, its code generated from the class code.
    let created = json_of(app.post("/api/v1/resources", &officer, &bus_resource()).await, 201).await;
    let code = created["code"].as_str().unwrap().to_string();
    assert_eq!(code, "3-09-002-000001");
    assert_eq!(created["status"], "draft");
    assert_eq!(created["version"], 1);
    let path = format!("/api/v1/resources/{code}");

    // A draft is invisible to other departments.
    assert_problem(app.get(&path, &consumer).await, 404, "not_found").await;
    json_of(app.post(&format!("{path}/submit"), &officer, &json!({})).await, 200).await;
    // A consumer cannot publish; the provider cannot review its own registration.
    assert_problem(
        app.post(&format!("{path}/publish"), &consumer, &json!({})).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.post(&format!("{path}/publish"), &officer, &json!({})).await,
        403,
        "forbidden",
    )
    .await;
    // The reviewer returns it with a comment; returning needs one.
    let body = assert_problem(
        app.post(&format!("{path}/return"), &reviewer, &json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "comment");
    let returned = json_of(
        app.post(
            &format!("{path}/return"),
            &reviewer,
            &json!({"comment": "请补充共享条件的法规条款"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(returned["status"], "draft");
    assert_eq!(returned["review_comment"], "请补充共享条件的法规条款");

    let mut revised = bus_resource();
    revised["legal_basis"] = json!("《巡游出租汽车经营服务管理规定》第三十条");
    revised["update_cycle"] = json!("每周");
    let updated = json_of(app.put(&path, &officer, &revised).await, 200).await;
    assert_eq!(updated["update_cycle"], "weekly");
    json_of(app.post(&format!("{path}/submit"), &officer, &json!({})).await, 200).await;
    let published = json_of(
        app.post(&format!("{path}/publish"), &reviewer, &json!({"comment": "同意发布"}))
            .await,
        200,
    )
    .await;
    assert_eq!(published["status"], "published");
    assert!(published["publish_date"].is_string());
    // Now every department sees it.
    json_of(app.get(&path, &consumer).await, 200).await;

    let history = json_of(app.get(&format!("{path}/history"), &officer).await, 200).await;
    let actions: Vec<(&str, i64)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["action"].as_str().unwrap(), h["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("create", 1),
            ("submit", 2),
            ("return", 3),
            ("update", 4),
            ("submit", 5),
            ("publish", 6)
        ]
    );
    let update = &history["items"][3];
    assert_eq!(update["changes"]["update_cycle"]["before"], "daily");
    assert_eq!(update["changes"]["update_cycle"]["after"], "weekly");
    assert!(update["actor"].as_str().unwrap().contains("credential"));

    let retired = json_of(
        app.post(&format!("{path}/retire"), &officer, &json!({"comment": "业务停办"}))
            .await,
        200,
    )
    .await;
    assert_eq!(retired["status"], "retired");
    // A retired resource cannot be demanded.
    let body = assert_problem(
        app.post(
            "/api/v1/demands",
            &consumer,
            &json!({"resource_code": code, "purpose": "执法", "legal_basis": "法规"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "resource_code");
}

async fn check_bad_registrations_name_every_field_and_change_nothing(app: &TestApp) {
    let officer = app.issue_key(Role::ProviderAdmin, Some("JTJ")).await;
    let before = json_of(
        app.get("/api/v1/resources?limit=200", &app.key("platform_admin")).await,
        200,
    )
    .await["total"]
        .clone();

    // Several mistakes at once: each is named.
    let mut bad = bus_resource();
    bad["legal_basis"] = Value::Null;
    bad["class_code"] = json!("1-09-002");
    bad["items"][1]["data_type"] = json!("varchar");
    bad["items"][2]["is_key"] = json!(true);
    let body = assert_problem(
        app.post("/api/v1/resources", &officer, &bad).await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in ["class_code", "legal_basis", "items", "items[1].data_type"] {
        assert!(fields.contains(&field), "{field} not in {fields:?}");
    }

    // An unknown field is refused and named.
    let mut unknown = bus_resource();
    unknown["owner"] = json!("x");
    let body = assert_problem(
        app.post("/api/v1/resources", &officer, &unknown).await,
        422,
        "invalid_body",
    )
    .await;
    assert_eq!(body["field"], "owner");

    // A missing required field is named.
    let mut missing = bus_resource();
    missing.as_object_mut().unwrap().remove("share_type");
    let body = assert_problem(
        app.post("/api/v1/resources", &officer, &missing).await,
        422,
        "invalid_body",
    )
    .await;
    assert_eq!(body["field"], "share_type");

    // A taken code.
    let mut taken = bus_resource();
    taken["class_code"] = json!("1-01-001");
    taken["classification"] = json!("base");
    taken["code"] = json!("1-01-001-000001");
    taken["provider_code"] = json!("JTJ");
    let body = assert_problem(
        app.post("/api/v1/resources", &officer, &taken).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "code");

    // Another department's resource.
    let mut foreign = bus_resource();
    foreign["provider_code"] = json!("GAJ");
    let body = assert_problem(
        app.post("/api/v1/resources", &officer, &foreign).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(body["field"], "provider_code");

    let after = json_of(
        app.get("/api/v1/resources?limit=200", &app.key("platform_admin")).await,
        200,
    )
    .await["total"]
        .clone();
    assert_eq!(before, after, "nothing was stored");
}

#[tokio::test]
async fn a_published_resource_keeps_the_items_grants_use() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let officer = app.key("provider_admin");
    let path = format!("/api/v1/resources/{}", huitong::demo::POPULATION_CODE);
    let current = json_of(app.get(&path, &officer).await, 200).await;
    let mut input = current.clone();
    for key in [
        "id",
        "code",
        "provider_id",
        "provider_name",
        "status",
        "version",
        "review_comment",
        "created_at",
        "updated_at",
    ] {
        input.as_object_mut().unwrap().remove(key);
    }
    // The health commission's grant uses phone: dropping it is refused, and nothing changes.
    input["items"] = json!(
        input["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["name"] != "phone")
            .cloned()
            .collect::<Vec<_>>()
    );
    let body = assert_problem(app.put(&path, &officer, &input).await, 422, "validation_failed").await;
    assert_eq!(body["field"], "items");
    assert!(body["detail"].as_str().unwrap().contains("phone"));
    let unchanged = json_of(app.get(&path, &officer).await, 200).await;
    assert_eq!(unchanged["version"], current["version"]);
    // Dropping an item no grant uses is fine.
    input["items"] = json!(
        current["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["name"] != "ethnicity")
            .cloned()
            .collect::<Vec<_>>()
    );
    let changed = json_of(app.put(&path, &officer, &input).await, 200).await;
    assert_eq!(changed["version"].as_i64(), current["version"].as_i64().map(|v| v + 1));
}

async fn check_search_finds_chinese_words_and_partial_codes_ranked(app: &TestApp) {
    let key = app.key("consumer_ungranted");
    let search = |q: &str| {
        let q = q.to_string();
        let app = &app;
        let key = key.clone();
        async move {
            let url = format!("/api/v1/resources?q={}", urlencode(&q));
            json_of(app.get(&url, &key).await, 200).await
        }
    };
    // (query, the code that must rank first)
    let cases = [
        ("人口", "1-01-001-000001"),
        ("全员人口基础信息", "1-01-001-000001"),
        ("1-01", "1-01-001-000001"),
        ("001-000002", "3-09-001-000002"),
        ("统一社会信用代码", "1-02-001-000001"),
        ("新生儿 出生", "2-01-001-000001"),
        ("公交", "3-09-001-000002"),
    ];
    for (q, first) in cases {
        let page = search(q).await;
        assert_eq!(page["items"][0]["code"], first, "q={q}: {page}");
        let scores: Vec<i64> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["score"].as_i64().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "ranked by score: {scores:?}");
    }
    // Published resources only, for another department: the draft and submitted ones stay hidden.
    let all = search("信息").await;
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "published" || r["provider_code"] == "RSJ")
    );
    assert_eq!(search("没有这样的资源").await["total"], 0);
    // Filters and paging.
    let page = json_of(
        app.get("/api/v1/resources?classification=base&limit=2&offset=1", &key)
            .await,
        200,
    )
    .await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["code"], "1-02-001-000001");
    let body = assert_problem(
        app.get("/api/v1/resources?colour=red", &key).await,
        422,
        "invalid_query",
    )
    .await;
    assert_eq!(body["field"], "colour");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn departments_form_a_hierarchy() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let admin = app.key("platform_admin");
    let district = json_of(
        app.post(
            "/api/v1/departments",
            &admin,
            &json!({"code": "XH-MZ", "name": "西湖区民政局", "parent_code": "MZJ", "level": "district"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(district["level"], "district");
    let body = assert_problem(
        app.post(
            "/api/v1/departments",
            &admin,
            &json!({"code": "ZJ-MZT", "name": "浙江省民政厅", "parent_code": "XH-MZ", "level": "province"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "parent_code");
    assert_problem(
        app.post(
            "/api/v1/departments",
            &app.key("provider_admin"),
            &json!({"code": "X", "name": "X"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let list = json_of(app.get("/api/v1/departments", &admin).await, 200).await;
    assert!(list["items"].as_array().unwrap().iter().any(|d| d["code"] == "XH-MZ"));
}

#[tokio::test]
async fn responsibility_lists_derive_their_status() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let key = app.key("platform_admin");
    let list = json_of(app.get("/api/v1/responsibilities?kind=share", &key).await, 200).await;
    let status_of = |subject: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["subject"] == subject)
            .map(|r| r["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status_of("全员人口基础信息").as_deref(), Some("fulfilled"));
    assert_eq!(
        status_of("婚姻登记信息").as_deref(),
        Some("pending"),
        "submitted, not yet published, due later"
    );
    assert_eq!(
        status_of("就业登记信息").as_deref(),
        Some("overdue"),
        "still a draft, past due"
    );
    assert!(list["items"].as_array().unwrap().iter().all(|r| r["kind"] == "share"));
    let open = json_of(app.get("/api/v1/responsibilities?kind=open", &key).await, 200).await;
    assert!(
        open["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] == "open" && r["status"] == "fulfilled")
    );

    // Publishing the submitted resource fulfils its duty.
    json_of(
        app.post(
            "/api/v1/resources/3-06-002-000001/publish",
            &app.key("reviewer"),
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    let list = json_of(app.get("/api/v1/responsibilities?kind=share", &key).await, 200).await;
    let marriage = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"] == "婚姻登记信息")
        .unwrap();
    assert_eq!(marriage["status"], "fulfilled");
}

#[tokio::test]
async fn dcat_lists_the_published_catalog() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let response = app
        .client
        .get(format!("{}/api/v1/catalog.jsonld", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/ld+json");
    let catalog: Value = response.json().await.unwrap();
    assert_eq!(catalog["@type"], "dcat:Catalog");
    let ids: Vec<&str> = catalog["dcat:dataset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dct:identifier"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"1-01-001-000001"));
    assert!(!ids.contains(&"3-07-002-000001"), "drafts are not harvested");
    assert!(!ids.contains(&"3-09-001-000001"), "retired resources are not harvested");
    let population = catalog["dcat:dataset"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dct:identifier"] == "1-01-001-000001")
        .unwrap();
    assert_eq!(population["dct:title"]["@value"], "全员人口基础信息");
    assert_eq!(population["dct:publisher"]["foaf:name"], "市公安局");
    assert_eq!(population["dct:accrualPeriodicity"], "daily");
}

#[tokio::test]
async fn the_platform_admin_issues_lists_and_revokes_keys() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let admin = app.key("platform_admin");
    let issued = json_of(
        app.post(
            "/api/v1/credentials",
            &admin,
            &json!({"name": "民政局数据专员", "role": "provider_admin", "department_code": "MZJ"}),
        )
        .await,
        201,
    )
    .await;
    let key = issued["key"].as_str().unwrap().to_string();
    let id = issued["credential"]["id"].as_i64().unwrap();
    assert_eq!(issued["credential"]["department_code"], "MZJ");
    // The new officer works, and sees their department's keys without any secret.
    let mine = json_of(app.get("/api/v1/credentials", &key).await, 200).await;
    assert!(
        mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["department_code"] == "MZJ")
    );
    assert!(!mine.to_string().contains(&key[11..]), "no key material is listed");
    // Only the platform admin issues; a consumer role needs a department.
    assert_problem(
        app.post(
            "/api/v1/credentials",
            &key,
            &json!({"name": "x", "role": "consumer", "department_code": "MZJ"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let body = assert_problem(
        app.post("/api/v1/credentials", &admin, &json!({"name": "x", "role": "consumer"}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "department_code");
    let body = assert_problem(
        app.post("/api/v1/credentials", &admin, &json!({"name": "x", "role": "root"}))
            .await,
        422,
        "invalid_body",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("root"));
    // Revoked: refused at once.
    let response = app
        .client
        .delete(format!("{}/api/v1/credentials/{id}", app.address))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert_problem(app.get("/api/v1/departments", &key).await, 401, "unauthenticated").await;
}

huitong_tests::on_both_databases! {
    resource_lifecycle => lifecycle;
    bad_registrations_name_every_field_and_change_nothing => check_bad_registrations_name_every_field_and_change_nothing;
    search_finds_chinese_words_and_partial_codes_ranked => check_search_finds_chinese_words_and_partial_codes_ranked;
}
