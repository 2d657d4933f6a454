use huitong::demo::POPULATION_CODE;
use huitong_tests::{MetaDb, TestApp, assert_problem, json_of, spawn_app};
use policy::Role;
use serde_json::{Value, json};

fn demand_for(resource: &str, items: &[&str]) -> Value {
    json!({
        "resource_code": resource,
        "purpose": "社保参保登记时核验参保人身份",
        "legal_basis": "《社会保险法》第五十八条",
        "requested_items": items,
        "expected_daily_calls": 2000
    })
}

/// Approve → the consumer's calls are served as granted; object → arbitrate; expire.
async fn approve_object_arbitrate_expire(app: &TestApp) {
    let rsj = app.key("consumer_ungranted"); // a consumer system of 人社局
    let gaj = app.key("provider_admin"); // 公安局's data officer
    let reviewer = app.key("reviewer");
    let id = app.sample_ids[0].clone();

    assert_problem(app.lookup_population(&id, "consumer_ungranted").await, 403, "no_grant").await;
    let demand = json_of(
        app.post(
            "/api/v1/demands",
            &rsj,
            &demand_for(POPULATION_CODE, &["id_number", "name", "phone"]),
        )
        .await,
        201,
    )
    .await;
    let demand_id = demand["id"].as_i64().unwrap();
    assert_eq!(demand["status"], "pending");
    assert_eq!(demand["responsible_department"], "GAJ");
    assert_eq!(demand["overdue"], false);
    let incoming = json_of(app.get("/api/v1/demands?view=incoming", &gaj).await, 200).await;
    assert!(
        incoming["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == demand_id)
    );

    // Approved with fewer items than asked, name plain.
    let decision = json!({"decision": "approve", "items": ["id_number", "name"], "plain_items": ["name"],
                          "quota_per_day": 5000, "expires_at": "2099-12-31T00:00:00Z"});
    let approved = json_of(
        app.post(&format!("/api/v1/demands/{demand_id}/decision"), &gaj, &decision)
            .await,
        200,
    )
    .await;
    assert_eq!(approved["status"], "approved");
    let grant_id = approved["grant_id"].as_i64().unwrap();
    let record: Value = app
        .lookup_population(&id, "consumer_ungranted")
        .await
        .json()
        .await
        .unwrap();
    let fields: Vec<&String> = record["record"].as_object().unwrap().keys().collect();
    assert_eq!(fields, ["id_number", "name"]);
    assert!(
        !record["record"]["name"].as_str().unwrap().contains('*'),
        "granted plain"
    );
    assert_eq!(
        record["record"]["id_number"].as_str().unwrap()[6..14],
        *"********",
        "not granted plain"
    );

    // The consumer wanted phone too: it objects; the platform arbitrates and grants it.
    let objected = json_of(
        app.post(
            &format!("/api/v1/demands/{demand_id}/objection"),
            &rsj,
            &json!({"reason": "参保登记需回访联系电话"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(objected["status"], "objected");
    assert_problem(
        app.post(
            &format!("/api/v1/demands/{demand_id}/objection"),
            &rsj,
            &json!({"reason": "再次"}),
        )
        .await,
        409,
        "invalid_state",
    )
    .await;
    let ruling = json!({"decision": "approve", "items": ["id_number", "name", "phone"], "plain_items": ["name"],
                        "comment": "联系电话为履职所必需"});
    assert_problem(
        app.post(&format!("/api/v1/demands/{demand_id}/arbitration"), &rsj, &ruling)
            .await,
        403,
        "forbidden",
    )
    .await;
    let arbitrated = json_of(
        app.post(&format!("/api/v1/demands/{demand_id}/arbitration"), &reviewer, &ruling)
            .await,
        200,
    )
    .await;
    assert_eq!(arbitrated["status"], "approved");
    assert!(arbitrated["arbitrated_at"].is_string());
    let new_grant = arbitrated["grant_id"].as_i64().unwrap();
    assert_ne!(new_grant, grant_id);
    let record: Value = app
        .lookup_population(&id, "consumer_ungranted")
        .await
        .json()
        .await
        .unwrap();
    assert!(record["record"].get("phone").is_some());
    // Arbitration is final.
    assert_problem(
        app.post(&format!("/api/v1/demands/{demand_id}/arbitration"), &reviewer, &ruling)
            .await,
        409,
        "invalid_state",
    )
    .await;
    assert_problem(
        app.post(
            &format!("/api/v1/demands/{demand_id}/objection"),
            &rsj,
            &json!({"reason": "x"}),
        )
        .await,
        409,
        "invalid_state",
    )
    .await;
    let grants = json_of(app.get("/api/v1/grants", &rsj).await, 200).await;
    let state_of = |id: i64| {
        grants["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state_of(grant_id), "revoked");
    assert_eq!(state_of(new_grant), "active");

    // Time passes beyond the grant's expiry: access ends, and the grant says why.
    sqlx::query("UPDATE grants SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = $1")
        .bind(new_grant)
        .execute(app.catalog.pool())
        .await
        .unwrap();
    assert_problem(
        app.lookup_population(&id, "consumer_ungranted").await,
        403,
        "grant_expired",
    )
    .await;
    let grants = json_of(app.get("/api/v1/grants", &rsj).await, 200).await;
    let expired = grants["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == new_grant)
        .unwrap();
    assert_eq!(expired["state"], "expired");
}

async fn check_reject_then_object_then_arbitration_upholds_the_rejection(app: &TestApp) {
    let wjw = app.key("consumer_granted");
    let mzj = app.issue_key(Role::ProviderAdmin, Some("MZJ")).await;
    let demand = json_of(
        app.post("/api/v1/demands", &wjw, &demand_for("3-06-001-000001", &[]))
            .await,
        201,
    )
    .await;
    let id = demand["id"].as_i64().unwrap();
    assert_eq!(
        demand["requested_items"].as_array().unwrap().len(),
        5,
        "all items by default"
    );

    let body = assert_problem(
        app.post(
            &format!("/api/v1/demands/{id}/decision"),
            &mzj,
            &json!({"decision": "reject", "reason": " "}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "reason");
    let rejected = json_of(
        app.post(
            &format!("/api/v1/demands/{id}/decision"),
            &mzj,
            &json!({"decision": "reject", "reason": "低保信息仅限救助业务使用"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["reject_reason"], "低保信息仅限救助业务使用");
    // Answered once only.
    assert_problem(
        app.post(
            &format!("/api/v1/demands/{id}/decision"),
            &mzj,
            &json!({"decision": "reject", "reason": "x"}),
        )
        .await,
        409,
        "invalid_state",
    )
    .await;
    // Only the consumer objects.
    assert_problem(
        app.post(
            &format!("/api/v1/demands/{id}/objection"),
            &mzj,
            &json!({"reason": "x"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    json_of(
        app.post(
            &format!("/api/v1/demands/{id}/objection"),
            &wjw,
            &json!({"reason": "医疗救助需核对低保身份"}),
        )
        .await,
        200,
    )
    .await;
    let upheld = json_of(
        app.post(
            &format!("/api/v1/demands/{id}/arbitration"),
            &app.key("platform_admin"),
            &json!({"decision": "reject", "reason": "应通过医保救助专题获取"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(upheld["status"], "rejected");
    assert!(upheld["arbitrated_at"].is_string());
    assert!(upheld["grant_id"].is_null());
}

async fn check_only_the_responsible_department_answers(app: &TestApp) {
    let rsj = app.key("consumer_ungranted");
    let demand = json_of(
        app.post("/api/v1/demands", &rsj, &demand_for(POPULATION_CODE, &["id_number"]))
            .await,
        201,
    )
    .await;
    let path = format!("/api/v1/demands/{}/decision", demand["id"]);
    let approve = json!({"decision": "approve"});
    // Another department's data officer, a consumer system, the platform: none may answer.
    let wjw_officer = app.issue_key(Role::ProviderAdmin, Some("WJW")).await;
    assert_problem(app.post(&path, &wjw_officer, &approve).await, 403, "forbidden").await;
    assert_problem(
        app.post(&path, &app.key("consumer_granted"), &approve).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        app.post(&path, &app.key("platform_admin"), &approve).await,
        403,
        "forbidden",
    )
    .await;
    // Nor may other departments read it.
    assert_problem(
        app.get(
            &format!("/api/v1/demands/{}", demand["id"]),
            &app.key("consumer_granted"),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    // Bad decisions name the field and change nothing.
    let gaj = app.key("provider_admin");
    let cases = [
        (json!({"decision": "approve", "items": ["shoe_size"]}), "items[0]"),
        (
            json!({"decision": "approve", "plain_items": ["phone"]}),
            "plain_items[0]",
        ),
        (
            json!({"decision": "approve", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"decision": "approve", "quota": 5}), "quota"),
    ];
    for (body, field) in cases {
        let response = app.post(&path, &gaj, &body).await;
        let status = response.status().as_u16();
        let problem: Value = response.json().await.unwrap();
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let unchanged = json_of(app.get(&format!("/api/v1/demands/{}", demand["id"]), &rsj).await, 200).await;
    assert_eq!(unchanged["status"], "pending");
    // A department does not demand its own data.
    let body = assert_problem(
        app.post("/api/v1/demands", &gaj, &demand_for(POPULATION_CODE, &[]))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "resource_code");
}

#[tokio::test]
async fn overdue_demands_are_listed() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let overdue = json_of(
        app.get("/api/v1/demands?view=overdue", &app.key("platform_admin"))
            .await,
        200,
    )
    .await;
    let items = overdue["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{overdue}");
    assert_eq!(items[0]["resource_code"], "3-06-001-000001");
    assert_eq!(items[0]["overdue"], true);
    let mzj = app.issue_key(Role::ProviderAdmin, Some("MZJ")).await;
    let mine = json_of(app.get("/api/v1/demands?view=overdue", &mzj).await, 200).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let theirs = json_of(
        app.get("/api/v1/demands?view=overdue", &app.key("provider_admin"))
            .await,
        200,
    )
    .await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    assert_problem(app.get("/api/v1/demands?view=all", &mzj).await, 403, "forbidden").await;
    let body = assert_problem(app.get("/api/v1/demands?view=soon", &mzj).await, 422, "invalid_query").await;
    assert_eq!(body["field"], "view");
}

#[tokio::test]
async fn demands_for_data_not_in_the_catalog_are_routed_and_answered_with_a_resource() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let wjw = app.key("consumer_granted");
    let rsj_officer = app.issue_key(Role::ProviderAdmin, Some("RSJ")).await;
    let body = json!({"responsible_department_code": "RSJ", "title": "职业资格证书信息", "description": "医师多点执业备案核对",
                      "purpose": "医师执业注册", "legal_basis": "《医师法》"});
    let demand = json_of(app.post("/api/v1/demands", &wjw, &body).await, 201).await;
    assert!(demand["resource_code"].is_null());
    assert_eq!(demand["responsible_department"], "RSJ");
    let path = format!("/api/v1/demands/{}/decision", demand["id"]);
    let body = assert_problem(
        app.post(&path, &rsj_officer, &json!({"decision": "approve"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "resource_code");
    // RSJ answers with a resource it publishes (here the social-insurance one).
    let approved = json_of(
        app.post(
            &path,
            &rsj_officer,
            &json!({"decision": "approve", "resource_code": "3-07-001-000001", "items": ["id_number", "status"]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(approved["resource_code"], "3-07-001-000001");
    assert!(approved["grant_id"].is_i64());
}

/// The workflow ends by moving a grant's expiry into the past in the metadata DB, as time
/// passing would; the server is told not to keep catalog reads, so it sees that at once.
mod demand_workflow {
    use huitong_tests::{MetaDb, SpawnOptions, TestApp, spawn_app_with};

    async fn app(meta: MetaDb) -> TestApp {
        spawn_app_with(SpawnOptions {
            catalog_cache_seconds: 0.0,
            ..SpawnOptions::on(meta)
        })
        .await
    }

    #[tokio::test]
    async fn on_sqlite() {
        super::approve_object_arbitrate_expire(&app(MetaDb::Sqlite).await).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        super::approve_object_arbitrate_expire(&app(MetaDb::Postgres).await).await;
    }
}

huitong_tests::on_both_databases! {
    reject_then_object_then_arbitration_upholds_the_rejection => check_reject_then_object_then_arbitration_upholds_the_rejection;
    only_the_responsible_department_answers => check_only_the_responsible_department_answers;
}
