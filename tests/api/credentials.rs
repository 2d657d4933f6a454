//! Credentials of the exchange API (issue 6): rotation, expiry, revocation, OAuth2 client
//! credentials tokens, console sessions, and X-Request-Id on every response.

use std::time::Duration;

use huitong::demo::POPULATION_CODE;
use huitong_tests::{MetaDb, TestApp, assert_problem, json_of, spawn_app};
use serde_json::{Value, json};

/// Issues a key through the API as the platform admin; returns (credential id, key, prefix).
async fn issue(
    app: &TestApp,
    role: &str,
    department: Option<&str>,
    expires_at: Option<String>,
) -> (i64, String, String) {
    let mut body = json!({"name": format!("test {role}"), "role": role});
    if let Some(code) = department {
        body["department_code"] = code.into();
    }
    if let Some(at) = expires_at {
        body["expires_at"] = at.into();
    }
    let issued = json_of(
        app.post("/api/v1/credentials", &app.key("platform_admin"), &body).await,
        201,
    )
    .await;
    (
        issued["credential"]["id"].as_i64().unwrap(),
        issued["key"].as_str().unwrap().to_string(),
        issued["credential"]["key_prefix"].as_str().unwrap().to_string(),
    )
}

/// The status of an authenticated catalog read with `bearer`.
async fn status_with(app: &TestApp, bearer: &str) -> u16 {
    app.get("/api/v1/departments", bearer).await.status().as_u16()
}

/// The status of the same read with the session cookie `cookie` (and no Authorization).
async fn status_with_cookie(app: &TestApp, cookie: &str) -> u16 {
    app.client
        .get(format!("{}/api/v1/departments", app.address))
        .header("cookie", format!("huitong_session={cookie}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls until `bearer` is refused (the condition is awaited, not timed; the cap only stops a
/// broken server from hanging the suite).
async fn until_refused(app: &TestApp, bearer: &str) -> reqwest::Response {
    for _ in 0..300 {
        let response = app.get("/api/v1/departments", bearer).await;
        if response.status().as_u16() == 401 {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the key was never refused");
}

/// An `application/x-www-form-urlencoded` body.
fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn rotate(app: &TestApp, id: i64, caller: &str, body: &Value) -> reqwest::Response {
    app.post(&format!("/api/v1/credentials/{id}/rotate"), caller, body)
        .await
}

huitong_tests::on_both_databases! {
    rotation_revokes_at_once_or_after_its_grace => check_rotation;
    revocation_refuses_key_token_and_session_at_once => check_revocation;
}

async fn check_rotation(app: &TestApp) {
    let admin = app.key("platform_admin");
    let (a, key_a, _) = issue(app, "consumer", Some("WJW"), None).await;
    assert_eq!(status_with(app, &key_a).await, 200);

    // Without grace: the old key is refused at once (even though it was just cached).
    let rotated = json_of(rotate(app, a, &admin, &json!({"grace_seconds": 0})).await, 201).await;
    assert_eq!(rotated["replaces"], a);
    assert_eq!(rotated["old_key_revoked"], true);
    assert_eq!(rotated["credential"]["name"], "test consumer");
    assert_eq!(rotated["credential"]["role"], "consumer");
    assert_eq!(rotated["credential"]["department_code"], "WJW");
    let (b, key_b) = (
        rotated["credential"]["id"].as_i64().unwrap(),
        rotated["key"].as_str().unwrap().to_string(),
    );
    assert_ne!(key_a, key_b);
    assert_problem(app.get("/api/v1/departments", &key_a).await, 401, "unauthenticated").await;
    assert_eq!(status_with(app, &key_b).await, 200);

    // A long grace: both keys work; the list records which replaced which.
    let rotated = json_of(rotate(app, b, &admin, &json!({"grace_seconds": 3600})).await, 201).await;
    assert_eq!(rotated["old_key_revoked"], false);
    assert!(rotated["old_key_expires_at"].is_string(), "{rotated}");
    let (c, key_c) = (
        rotated["credential"]["id"].as_i64().unwrap(),
        rotated["key"].as_str().unwrap().to_string(),
    );
    assert_eq!(status_with(app, &key_b).await, 200);
    assert_eq!(status_with(app, &key_c).await, 200);
    let list = json_of(app.get("/api/v1/credentials", &admin).await, 200).await;
    let listed = |id: i64| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(listed(a)["replaced_by"], b);
    assert_eq!(listed(b)["replaced_by"], c);
    assert!(listed(b)["revoked_at"].is_null());
    assert!(listed(c)["replaced_by"].is_null());

    // A key already rotated is not rotated again; its replacement is.
    assert_problem(rotate(app, b, &admin, &json!({})).await, 409, "invalid_state").await;
    assert_problem(rotate(app, a, &admin, &json!({})).await, 409, "invalid_state").await;

    // A short grace ends: the old key is refused afterwards.
    let rotated = json_of(rotate(app, c, &admin, &json!({"grace_seconds": 1})).await, 201).await;
    let key_d = rotated["key"].as_str().unwrap().to_string();
    let refused = until_refused(app, &key_c).await;
    let body = assert_problem(refused, 401, "unauthenticated").await;
    assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");
    assert_eq!(status_with(app, &key_d).await, 200);
}

#[tokio::test]
async fn rotation_input_is_checked() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let admin = app.key("platform_admin");
    let (id, _, _) = issue(&app, "consumer", Some("WJW"), None).await;
    let cases = [
        (
            json!({"grace_seconds": 604_801}),
            422,
            "validation_failed",
            "grace_seconds",
        ),
        (json!({"grace_seconds": -1}), 422, "validation_failed", "grace_seconds"),
        (
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
            422,
            "validation_failed",
            "expires_at",
        ),
        (json!({"grace": 5}), 422, "invalid_body", "grace"),
    ];
    for (body, status, code, field) in cases {
        let problem = assert_problem(rotate(&app, id, &admin, &body).await, status, code).await;
        assert_eq!(problem["field"], field, "{body}");
    }
    assert_problem(rotate(&app, 999_999, &admin, &json!({})).await, 404, "not_found").await;
}

/// Who may rotate whose key: caller role → (target in the caller-provider's department GAJ,
/// target in WJW).
const ROTATION_RIGHTS: &[(&str, u16, u16)] = &[
    ("platform_admin", 201, 201),
    ("provider_admin", 201, 403),
    ("consumer_granted", 403, 403),
    ("reviewer", 403, 403),
    ("open_data_developer", 403, 403),
];

#[tokio::test]
async fn who_may_rotate_whose_key() {
    let app = spawn_app(MetaDb::Sqlite).await;
    for (caller, in_gaj, in_wjw) in ROTATION_RIGHTS {
        for (department, expected) in [("GAJ", in_gaj), ("WJW", in_wjw)] {
            let (id, _, _) = issue(&app, "consumer", Some(department), None).await;
            let response = rotate(&app, id, &app.key(caller), &json!({"grace_seconds": 60})).await;
            if *expected == 201 {
                assert_eq!(
                    response.status().as_u16(),
                    201,
                    "{caller} rotating a key of {department}"
                );
            } else {
                assert_problem(response, *expected, "forbidden").await;
            }
        }
    }
}

#[tokio::test]
async fn a_key_is_refused_once_it_expires_though_it_was_cached() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (_, key, _) = issue(&app, "consumer", Some("WJW"), Some(soon)).await;
    assert_eq!(status_with(&app, &key).await, 200);
    let body = assert_problem(until_refused(&app, &key).await, 401, "unauthenticated").await;
    assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");
}

async fn token_for(app: &TestApp, prefix: &str, key: &str) -> String {
    let response = app
        .client
        .post(format!("{}/oauth/token", app.address))
        .basic_auth(prefix, Some(key))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("grant_type", "client_credentials")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_of(response, 200).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    body["access_token"].as_str().unwrap().to_string()
}

async fn login(app: &TestApp, key: &str) -> String {
    let response = app
        .client
        .post(format!("{}/api/v1/session", app.address))
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    let (pair, _) = set_cookie.split_once(';').unwrap();
    pair.strip_prefix("huitong_session=").unwrap().to_string()
}

async fn check_revocation(app: &TestApp) {
    let (id, key, prefix) = issue(app, "consumer", Some("WJW"), None).await;
    let token = token_for(app, &prefix, &key).await;
    let cookie = login(app, &key).await;
    // All three work (and the key and the token's credential are now cached).
    assert_eq!(status_with(app, &key).await, 200);
    assert_eq!(status_with(app, &token).await, 200);
    assert_eq!(status_with_cookie(app, &cookie).await, 200);
    let sample = &app.sample_ids[0];
    assert_eq!(
        app.lookup(POPULATION_CODE, sample, Some(&token))
            .await
            .status()
            .as_u16(),
        200
    );

    let revoked = app
        .client
        .delete(format!("{}/api/v1/credentials/{id}", app.address))
        .bearer_auth(app.key("platform_admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 204);
    assert_problem(app.get("/api/v1/departments", &key).await, 401, "unauthenticated").await;
    assert_problem(app.get("/api/v1/departments", &token).await, 401, "unauthenticated").await;
    assert_problem(
        app.lookup(POPULATION_CODE, sample, Some(&token)).await,
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(status_with_cookie(app, &cookie).await, 401);
}

#[tokio::test]
async fn a_revocation_by_another_process_takes_effect_within_the_cache_time() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let (id, key, _) = issue(&app, "consumer", Some("WJW"), None).await;
    assert_eq!(status_with(&app, &key).await, 200);
    // As `huitong` on the same metadata DB would: straight to the DB, not through this server.
    assert!(policy::credentials::revoke(&app.catalog, id).await.unwrap());
    let body = assert_problem(until_refused(&app, &key).await, 401, "unauthenticated").await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");
}

#[tokio::test]
async fn the_token_endpoint_answers_per_rfc_6749() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let (_, key, prefix) = issue(&app, "consumer", Some("WJW"), None).await;
    let url = format!("{}/oauth/token", app.address);

    // Happy paths: HTTP Basic, and form fields.
    let token = token_for(&app, &prefix, &key).await;
    assert_eq!(token.split('.').count(), 3);
    let by_form = app
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("grant_type", "client_credentials"),
            ("client_id", &prefix),
            ("client_secret", &key),
        ]))
        .send()
        .await
        .unwrap();
    let body = json_of(by_form, 200).await;
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(status_with(&app, token).await, 200);

    let wrong_key = format!("ht_{}", "0".repeat(40));
    // case, form fields, HTTP Basic (id, secret), status, RFC 6749 error.
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<(&'a str, &'a str)>,
        u16,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "wrong secret",
            vec![("grant_type", "client_credentials")],
            Some((&prefix, &wrong_key)),
            401,
            "invalid_client",
        ),
        (
            "wrong secret in the form",
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &prefix),
                ("client_secret", "nope"),
            ],
            None,
            401,
            "invalid_client",
        ),
        (
            "client_id of another key",
            vec![("grant_type", "client_credentials")],
            Some(("ht_00000000", &key)),
            401,
            "invalid_client",
        ),
        (
            "no client",
            vec![("grant_type", "client_credentials")],
            None,
            401,
            "invalid_client",
        ),
        (
            "unsupported grant type",
            vec![("grant_type", "password")],
            Some((&prefix, &key)),
            400,
            "unsupported_grant_type",
        ),
        ("no grant type", vec![], Some((&prefix, &key)), 400, "invalid_request"),
        (
            "two ways of client authentication",
            vec![("grant_type", "client_credentials"), ("client_secret", &key)],
            Some((&prefix, &key)),
            400,
            "invalid_request",
        ),
        (
            "a scope",
            vec![("grant_type", "client_credentials"), ("scope", "all")],
            Some((&prefix, &key)),
            400,
            "invalid_scope",
        ),
    ];
    for (case, form, basic, status, error) in cases {
        let mut request = app
            .client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&form));
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{case}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{case}: {body}");
    }
    // Not a form.
    let response = app
        .client
        .post(&url)
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn tampered_expired_and_unsigned_tokens_are_refused() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let (_, key, prefix) = issue(&app, "consumer", Some("WJW"), None).await;
    let token = token_for(&app, &prefix, &key).await;
    let parts: Vec<&str> = token.split('.').collect();

    // One signature character changed (a character in the middle, so whole bytes change).
    let mut signature = parts[2].to_string();
    let middle = signature.len() / 2;
    let flipped = if &signature[middle..=middle] == "A" { "B" } else { "A" };
    signature.replace_range(middle..=middle, flipped);
    let tampered = format!("{}.{}.{signature}", parts[0], parts[1]);
    // {"alg":"none","typ":"JWT"} with the genuine claims and no signature.
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    // Correctly formed, signed with another secret.
    let foreign = policy::TokenSigner::new(&[7; 32], chrono::Duration::minutes(5)).issue(&policy::Credential {
        id: 1,
        name: "x".into(),
        role: policy::Role::PlatformAdmin,
        department_id: None,
        department_code: None,
        key_prefix: "ht_00000000".into(),
    });
    for (case, bad) in [("tampered", &tampered), ("alg none", &unsigned), ("foreign", &foreign)] {
        let body = assert_problem(app.get("/api/v1/departments", bad).await, 401, "invalid_token").await;
        assert!(body["detail"].as_str().unwrap().contains("signature"), "{case}: {body}");
    }

    // Signed with this server's secret, but expired.
    let secret = std::fs::read(app.data_path().join("secrets/jwt.key")).unwrap();
    assert_eq!(secret.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(app.data_path().join("secrets/jwt.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let credential = policy::credentials::authenticate(&app.catalog, &key).await.unwrap();
    let expired = policy::TokenSigner::new(&secret, chrono::Duration::seconds(-5)).issue(&credential);
    let body = assert_problem(app.get("/api/v1/departments", &expired).await, 401, "token_expired").await;
    assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");
    // The same, unexpired, works: the refusal was the expiry.
    let fresh = policy::TokenSigner::new(&secret, chrono::Duration::seconds(60)).issue(&credential);
    assert_eq!(status_with(&app, &fresh).await, 200);
}

#[tokio::test]
async fn a_console_session_logs_in_and_out() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let url = format!("{}/api/v1/session", app.address);
    let key = app.key("provider_admin");

    let response = app.client.post(&url).json(&json!({"key": key})).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["credential"]["name"], "demo:provider_admin");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let token = cookie.strip_prefix("huitong_session=").unwrap();
    assert_eq!(token.len(), 64);

    // Behind a TLS-terminating proxy the cookie is Secure.
    let behind_proxy = app
        .client
        .post(&url)
        .header("x-forwarded-proto", "https")
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert!(
        behind_proxy.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    // Who am I; the cookie authenticates other calls.
    let me = app.client.get(&url).header("cookie", &cookie).send().await.unwrap();
    let me = json_of(me, 200).await;
    assert_eq!(me["credential"]["role"], "provider_admin");
    assert_eq!(me["credential"]["department_code"], "GAJ");
    assert_eq!(status_with_cookie(&app, token).await, 200);
    assert_problem(app.client.get(&url).send().await.unwrap(), 401, "unauthenticated").await;

    // Logout deletes the session.
    let out = app.client.delete(&url).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(out.status().as_u16(), 204);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_problem(
        app.client.get(&url).header("cookie", &cookie).send().await.unwrap(),
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(status_with_cookie(&app, token).await, 401);

    // A bad key does not log in.
    let refused = app
        .client
        .post(&url)
        .json(&json!({"key": format!("ht_{}", "0".repeat(40))}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_problem(refused, 401, "unauthenticated").await["field"], "key");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let key = app.key("consumer_granted");
    let record = format!("/api/v1/exchange/{POPULATION_CODE}/records/{}", app.sample_ids[0]);
    let paths = [
        "/health",
        "/api/v1/departments",
        record.as_str(),
        "/api/v1/nothing-here",
        "/api/v1/credentials",
    ];
    let long = "x".repeat(129);
    for path in paths {
        for (sent, echoed) in [
            (Some("caller-chosen-id.42"), true),
            (None, false),
            (Some("has space"), false),
            (Some(long.as_str()), false),
        ] {
            let mut request = app.client.get(format!("{}{path}", app.address)).bearer_auth(&key);
            if let Some(id) = sent {
                request = request.header("x-request-id", id);
            }
            let response = request.send().await.unwrap();
            let got = response.headers()["x-request-id"].to_str().unwrap().to_string();
            if echoed {
                assert_eq!(Some(got.as_str()), sent, "{path}");
            } else {
                assert!(
                    Some(got.as_str()) != sent && !got.is_empty() && got.len() <= 128,
                    "{path}: {got}"
                );
                assert!(got.bytes().all(|b| b.is_ascii_graphic()), "{path}: {got}");
            }
        }
    }

    // The exchange call's audit record has the id the response carries, generated or sent.
    for sent in [None, Some("audit-me-7")] {
        let mut request = app.client.get(format!("{}{record}", app.address)).bearer_auth(&key);
        if let Some(id) = sent {
            request = request.header("x-request-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let id = response.headers()["x-request-id"].to_str().unwrap().to_string();
        let recorded = app
            .audit_records()
            .await
            .into_iter()
            .filter(|r| r.request_id == id)
            .count();
        assert_eq!(recorded, 1, "{id}");
    }
}
