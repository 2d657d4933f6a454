use huitong_tests::{MetaDb, spawn_app};

#[tokio::test]
async fn health_reports_each_library() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let response = app.client.get(format!("{}/health", app.address)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let population = &body["libraries"]["population"];
    assert!(population["records"].as_u64().unwrap() > 900, "{body}");
    assert!(population["version"].as_i64().unwrap() >= 2, "{body}");
}

#[tokio::test]
async fn unknown_routes_are_problems_too() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let response = app
        .client
        .get(format!("{}/api/v1/nothing-here", app.address))
        .send()
        .await
        .unwrap();
    huitong_tests::assert_problem(response, 404, "no_such_endpoint").await;
}
