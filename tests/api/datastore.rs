//! CKAN's `datastore_search` over open datasets: filters, q, fields, sort, paging and totals
//! agree with the open records endpoint; withheld items stay withheld; errors in CKAN's terms.

use huitong::demo::{CREDIT_CODE, LEGAL_ENTITY_CODE, POPULATION_CODE};
use huitong_tests::{MetaDb, TestApp, json_of, spawn_app};
use serde_json::{Value, json};

async fn search(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/api/3/action/datastore_search", app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Every record of the dataset through the open records endpoint.
async fn all_records(app: &TestApp, id: &str) -> Vec<Value> {
    let body = json_of(
        app.client
            .get(format!("{}/open/v1/datasets/{id}/records?limit=1000", app.address))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(body["next_cursor"].is_null(), "the demo's legal entities fit one page");
    body["records"].as_array().unwrap().clone()
}

fn texts(records: &Value, field: &str) -> Vec<String> {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn datastore_search_filters_sorts_and_pages_the_open_records() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let all = all_records(&app, LEGAL_ENTITY_CODE).await;
    let all_usccs: Vec<String> = all.iter().map(|r| r["uscc"].as_str().unwrap().to_string()).collect();

    // Paging in key order; the total counts every record; a resource id of a download works.
    let (status, first) = search(
        &app,
        json!({"resource_id": format!("{LEGAL_ENTITY_CODE}-csv"), "limit": 5}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["success"], true);
    let result = &first["result"];
    assert_eq!(result["total"], all.len());
    assert_eq!(texts(&result["records"], "uscc"), all_usccs[..5]);
    assert_eq!(result["records"][0]["_id"], 1);
    let field_ids: Vec<&str> = result["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(field_ids[0], "_id");
    assert!(!field_ids.contains(&"legal_rep_id"), "L3 is withheld: {field_ids:?}");
    let (_, second) = search(&app, json!({"resource_id": LEGAL_ENTITY_CODE, "limit": 5, "offset": 5})).await;
    assert_eq!(texts(&second["result"]["records"], "uscc"), all_usccs[5..10]);

    // Filters: equality and lists; q over the returned fields; fields projected.
    let one = &all_usccs[3];
    let (_, filtered) = search(
        &app,
        json!({"resource_id": LEGAL_ENTITY_CODE, "filters": {"uscc": one}, "fields": ["uscc", "name"]}),
    )
    .await;
    assert_eq!(filtered["result"]["total"], 1);
    let record = filtered["result"]["records"][0].as_object().unwrap();
    assert_eq!(record.keys().collect::<Vec<_>>(), vec!["_id", "name", "uscc"]);
    let (_, listed) = search(
        &app,
        json!({"resource_id": LEGAL_ENTITY_CODE, "filters": {"uscc": [&all_usccs[0], &all_usccs[1], "none"]}}),
    )
    .await;
    assert_eq!(listed["result"]["total"], 2);
    let name = all[7]["name"].as_str().unwrap();
    let fragment: String = name.chars().take(4).collect();
    let expected_q = all
        .iter()
        .filter(|r| {
            r.as_object()
                .unwrap()
                .values()
                .any(|v| v.as_str().is_some_and(|s| s.contains(&fragment)))
        })
        .count();
    let (_, by_q) = search(
        &app,
        json!({"resource_id": LEGAL_ENTITY_CODE, "q": fragment, "limit": 1000}),
    )
    .await;
    assert_eq!(by_q["result"]["total"], expected_q);
    assert!(expected_q >= 1);

    // Sort, descending, with an offset.
    let mut by_name: Vec<String> = all
        .iter()
        .map(|r| r["name"].as_str().unwrap_or("").to_string())
        .collect();
    by_name.sort();
    by_name.reverse();
    let (_, sorted) = search(
        &app,
        json!({"resource_id": LEGAL_ENTITY_CODE, "sort": "name desc", "limit": 4, "offset": 2}),
    )
    .await;
    assert_eq!(texts(&sorted["result"]["records"], "name"), by_name[2..6]);

    // L2 items are masked, as everywhere in open data.
    let masked = texts(&first["result"]["records"], "legal_rep_name");
    assert!(
        masked.iter().filter(|n| !n.is_empty()).all(|n| n.contains('*')),
        "{masked:?}"
    );
}

#[tokio::test]
async fn datastore_search_errors_are_ckans_and_the_calls_are_audited() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let cases: &[(Value, u16, &str, Option<&str>)] = &[
        (json!({}), 409, "Validation Error", Some("resource_id")),
        (json!({"resource_id": POPULATION_CODE}), 404, "Not Found Error", None),
        (json!({"resource_id": "nope-csv"}), 404, "Not Found Error", None),
        (json!({"resource_id": CREDIT_CODE}), 401, "Authorization Error", None),
        (
            json!({"resource_id": LEGAL_ENTITY_CODE, "filters": {"legal_rep_id": "1"}}),
            409,
            "Validation Error",
            Some("filters"),
        ),
        (
            json!({"resource_id": LEGAL_ENTITY_CODE, "filters": "[1]"}),
            409,
            "Validation Error",
            Some("filters"),
        ),
        (
            json!({"resource_id": LEGAL_ENTITY_CODE, "fields": ["shoe_size"]}),
            409,
            "Validation Error",
            Some("fields"),
        ),
        (
            json!({"resource_id": LEGAL_ENTITY_CODE, "sort": "name sideways"}),
            409,
            "Validation Error",
            Some("sort"),
        ),
        (
            json!({"resource_id": LEGAL_ENTITY_CODE, "limit": 32001}),
            409,
            "Validation Error",
            Some("limit"),
        ),
        (
            json!({"resource_id": LEGAL_ENTITY_CODE, "limit": -1}),
            409,
            "Validation Error",
            Some("limit"),
        ),
    ];
    for (body, status, kind, field) in cases {
        let (got, answer) = search(&app, body.clone()).await;
        assert_eq!(got, *status, "{body}: {answer}");
        assert_eq!(answer["success"], false, "{body}");
        assert_eq!(answer["error"]["__type"], *kind, "{body}: {answer}");
        if let Some(field) = field {
            assert!(answer["error"][*field].is_array(), "{body}: {answer}");
        }
    }
    // A developer with an approved application reads the conditional dataset's L2 plain.
    let developer = app.issue_key(policy::Role::OpenDataDeveloper, None).await;
    let fgw = app.issue_key(policy::Role::ProviderAdmin, Some("FGW")).await;
    let application = json_of(
        app.post(
            &format!("/open/v1/datasets/{CREDIT_CODE}/applications"),
            &developer,
            &json!({"purpose": "信用研究"}),
        )
        .await,
        201,
    )
    .await;
    json_of(
        app.post(
            &format!("/api/v1/open-applications/{}/decision", application["id"]),
            &fgw,
            &json!({"approve": true}),
        )
        .await,
        200,
    )
    .await;
    let response = app
        .client
        .post(format!("{}/api/3/action/datastore_search", app.address))
        .bearer_auth(&developer)
        .json(&json!({"resource_id": CREDIT_CODE, "limit": 3}))
        .send()
        .await
        .unwrap();
    let body = json_of(response, 200).await;
    let subject = body["result"]["records"][0]["subject_id"].as_str().unwrap();
    assert!(!subject.contains('*'), "{subject}");

    let audit = json_of(
        app.get(
            &format!("/api/v1/audit?resource={CREDIT_CODE}"),
            &app.key("platform_admin"),
        )
        .await,
        200,
    )
    .await;
    let outcomes: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["endpoint"] == "GET|POST /api/3/action/datastore_search")
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["developer_key_required", "allowed"]);
}
