//! The OpenAPI document at `/api/openapi.json` is valid OpenAPI, describes every endpoint the
//! server registers (the route table `huitong::startup::endpoints`), and the UI at `/api/docs`
//! loads nothing from outside the server.

use std::collections::BTreeSet;
use std::path::PathBuf;

use huitong_tests::{MetaDb, spawn_app};
use serde_json::Value;

/// The validator `scripts/test` installs: the Python `openapi-spec-validator` in a venv.
fn validator() -> PathBuf {
    let path = std::env::var_os("TEST_OPENAPI_VALIDATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/huitong-openapi-venv/bin/openapi-spec-validator"));
    assert!(
        path.is_file(),
        "the OpenAPI validator {} is missing: run ./scripts/test, which installs it, or \
         `python3 -m venv /var/tmp/huitong-openapi-venv && \
         /var/tmp/huitong-openapi-venv/bin/pip install openapi-spec-validator==0.9.0` \
         (or point TEST_OPENAPI_VALIDATOR at an openapi-spec-validator)",
        path.display()
    );
    path
}

async fn document(app: &huitong_tests::TestApp) -> Value {
    let response = app
        .client
        .get(format!("{}/api/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        response.headers()
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_document_validates_against_the_openapi_specification() {
    let validator = validator();
    let app = spawn_app(MetaDb::Sqlite).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "汇通 Huitong API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    // Vocabularies list the codes the API speaks, not the Rust variant names.
    assert_eq!(
        doc["components"]["schemas"]["ShareType"]["enum"],
        serde_json::json!(["unconditional", "conditional", "not_shared"])
    );

    let file = app.data_dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let output = std::process::Command::new(&validator)
        .arg("--schema")
        .arg("3.1")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", validator.display()));
    assert!(
        output.status.success(),
        "openapi-spec-validator rejects the document:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn every_registered_endpoint_is_in_the_document_and_nothing_else() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let doc = document(&app).await;
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "put", "post", "delete", "patch", "head", "options"].contains(&k.as_str()))
                .map(|method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let registered: BTreeSet<(String, String)> = huitong::startup::endpoints()
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
    assert!(registered.len() > 30, "{registered:?}");
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "registered but not in the OpenAPI document: {missing:?}"
    );
    let phantom: Vec<_> = documented.difference(&registered).collect();
    assert!(
        phantom.is_empty(),
        "in the OpenAPI document but not registered: {phantom:?}"
    );
}

#[tokio::test]
async fn every_operation_documents_its_problems_and_its_credential() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let doc = document(&app).await;
    let problem_responses = doc["components"]["responses"].as_object().unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(
                operation["tags"].as_array().is_some_and(|t| t.len() == 1),
                "{at}: one tag"
            );
            let responses = operation["responses"].as_object().unwrap();
            // A form post succeeds with a redirect (post/redirect/get).
            assert!(
                responses.keys().any(|s| s.starts_with('2') || s.starts_with('3')),
                "{at}: a success response"
            );
            let open = operation["security"] == serde_json::json!([{}]);
            if !open && path != "/health" {
                assert!(responses.contains_key("401"), "{at}: documents 401");
            }
            for (status, response) in responses {
                // Redirects are not errors (the console sends a browser without a session to its login).
                if status.starts_with('2') || status.starts_with('3') {
                    continue;
                }
                // A console or portal page answers a person, not a program: a page saying why.
                let page = path.starts_with("/console/") || operation["tags"][0] == "portal";
                if page && response["content"]["text/html"].is_object() {
                    continue;
                }
                // The OAuth2 token endpoint answers RFC 6749 §5.2 errors, as its clients expect.
                if path == "/oauth/token" {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/OAuthErrorAnswer",
                        "{at}: {status} is an RFC 6749 error"
                    );
                    continue;
                }
                // The CKAN Action API answers CKAN's error envelope (and a bare JSON string for
                // a bad request), as CKAN clients expect.
                if path.starts_with("/api/3/action/") || path.starts_with("/api/action/") {
                    let schema = &response["content"]["application/json"]["schema"];
                    if status == "400" {
                        assert_eq!(schema["type"], "string", "{at}: 400 is CKAN's bare string");
                    } else {
                        assert_eq!(
                            schema["$ref"], "#/components/schemas/CkanErrorAnswer",
                            "{at}: {status} is CKAN's error envelope"
                        );
                    }
                    continue;
                }
                // An error is a problem+json: a shared problem response, or one inline.
                let problem = match response["$ref"].as_str() {
                    Some(reference) => {
                        let name = reference.trim_start_matches("#/components/responses/");
                        &problem_responses[name]
                    }
                    None => response,
                };
                assert_eq!(
                    problem["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                    "{at}: {status} is a problem+json"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_docs_ui_is_served_with_local_assets_only() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let response = app
        .client
        .get(format!("{}/api/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.url().path(), "/api/docs/");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("<div id=\"swagger-ui\">"), "{html}");
    let mut assets = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for part in html.split(attribute).skip(1) {
            let target = part.split('"').next().unwrap();
            assert!(
                !target.starts_with("http:") && !target.starts_with("https:") && !target.starts_with("//"),
                "the docs page loads {target} from outside the server"
            );
            assets.push(target.to_string());
        }
    }
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    for asset in &assets {
        let url = format!("{}/api/docs/{}", app.address, asset.trim_start_matches("./"));
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{url}");
    }
    let initializer = app
        .client
        .get(format!("{}/api/docs/swagger-initializer.js", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/api/openapi.json"), "{initializer}");
    assert!(!initializer.contains("https://"), "{initializer}");
}
