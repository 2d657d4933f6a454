//! The open-data catalog over HTTP, anonymously: `/open/v1/datasets` (list, search, filters,
//! paging, detail, 404, 422), the CKAN-compatible Action API (`/api/3/action/…`: CKAN's envelope,
//! parameters by GET and POST, search facets and paging, CKAN's errors), the DCAT-AP export, and
//! a real CKAN client (the Python `ckanapi` package) reading the catalog.

use std::collections::BTreeSet;

use catalog::{Resource, ResourceStatus};
use exchange_core::{OpenType, Sensitivity};
use huitong::demo::{CREDIT_CODE, LEGAL_ENTITY_CODE, POPULATION_CODE, SPATIAL_CODE};
use huitong_tests::{MetaDb, TestApp, assert_problem, json_of, spawn_app};
use serde_json::{Value, json};

/// `GET {path}` with no credential.
async fn anonymous(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("request sent")
}

/// The datasets the catalog says are open, read behind the API: published, open
/// unconditionally or conditionally.
async fn expected_datasets(app: &TestApp) -> Vec<Resource> {
    app.catalog
        .resources()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.status == ResourceStatus::Published
                && matches!(r.meta.open_type, OpenType::Unconditional | OpenType::Conditional)
        })
        .collect()
}

fn ids_of(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|d| d[field].as_str().unwrap().to_string())
        .collect()
}

async fn dataset_ids(app: &TestApp, query: &str) -> Vec<String> {
    let page = json_of(anonymous(app, &format!("/open/v1/datasets?{query}")).await, 200).await;
    ids_of(&page, "datasets", "id")
}

async fn listing_shows_exactly_the_open_datasets(app: &TestApp) {
    let expected: Vec<String> = expected_datasets(app).await.into_iter().map(|r| r.code).collect();
    for code in [LEGAL_ENTITY_CODE, CREDIT_CODE, SPATIAL_CODE] {
        assert!(expected.contains(&code.to_string()), "{code} is open in the demo");
    }
    // The demo also holds resources the listing must leave out: published but not open, and
    // open but not yet published.
    let all = app.catalog.resources().await.unwrap();
    assert!(
        all.iter()
            .any(|r| r.code == POPULATION_CODE && r.meta.open_type == OpenType::NotOpen)
    );

    let page = json_of(anonymous(app, "/open/v1/datasets?per_page=100").await, 200).await;
    assert_eq!(ids_of(&page, "datasets", "id"), expected, "by code");
    assert_eq!(page["total"], expected.len());
    assert_eq!(page["page"], 1);
    assert_eq!(page["per_page"], 100);
    let legal = &page["datasets"][0];
    assert_eq!(legal["id"], LEGAL_ENTITY_CODE);
    assert_eq!(legal["name"], "法人单位基础信息");
    assert_eq!(
        legal["organization"],
        json!({"code": "SCJGJ", "name": "市市场监督管理局"})
    );
    assert_eq!(legal["theme"], json!({"code": "base", "label_zh": "基础信息资源"}));
    assert_eq!(
        legal["open_type"],
        json!({"code": "unconditional", "label_zh": "无条件开放"})
    );
    assert_eq!(legal["update_cycle"], json!({"code": "daily", "label_zh": "每日"}));
    assert!(legal.get("score").is_none(), "no score without q");

    // Paging: pages of 2 cover the list once, in order; past the end is empty.
    let mut paged = Vec::new();
    for n in 1..=expected.len().div_ceil(2) {
        let page = json_of(
            anonymous(app, &format!("/open/v1/datasets?per_page=2&page={n}")).await,
            200,
        )
        .await;
        assert_eq!(page["total"], expected.len());
        assert_eq!(page["page"], n);
        paged.extend(ids_of(&page, "datasets", "id"));
    }
    assert_eq!(paged, expected);
    assert!(dataset_ids(app, "per_page=2&page=99").await.is_empty());
}

huitong_tests::on_both_databases! {
    open_dataset_listing => listing_shows_exactly_the_open_datasets;
}

#[tokio::test]
async fn datasets_are_filtered_and_searched() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let expected = expected_datasets(&app).await;
    let codes = |keep: &dyn Fn(&Resource) -> bool| -> Vec<String> {
        expected.iter().filter(|r| keep(r)).map(|r| r.code.clone()).collect()
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("organization=scjgj", vec![LEGAL_ENTITY_CODE.to_string()]),
        ("organization=SCJGJ", vec![LEGAL_ENTITY_CODE.to_string()]),
        ("organization=GAJ", vec![]),
        ("open_type=conditional", vec![CREDIT_CODE.to_string()]),
        (
            "open_type=unconditional",
            codes(&|r| r.meta.open_type == OpenType::Unconditional),
        ),
        ("theme=base", codes(&|r| r.code.starts_with('1'))),
        ("theme=department", codes(&|r| r.code.starts_with('3'))),
        ("theme=base&open_type=conditional", vec![CREDIT_CODE.to_string()]),
        // A word of the name, of an open item's label, of an item's column name.
        ("q=法人", vec![LEGAL_ENTITY_CODE.to_string()]),
        ("q=法定代表人", vec![LEGAL_ENTITY_CODE.to_string()]),
        ("q=legal_rep_name", vec![LEGAL_ENTITY_CODE.to_string()]),
        // Every word must match.
        ("q=法人 空间", vec![]),
        // A withheld (L3) item is not searched: the listing must not reveal it exists.
        ("q=legal_rep_id", vec![]),
        ("q=身份证号", vec![]),
    ];
    for (query, want) in cases {
        assert_eq!(dataset_ids(&app, query).await, want, "{query}");
    }
    let page = json_of(anonymous(&app, "/open/v1/datasets?q=%E6%B3%95%E4%BA%BA").await, 200).await;
    assert!(page["datasets"][0]["score"].as_i64().unwrap() > 0, "{page}");
    // The name ranks above a mere item label: "信用" names the credit dataset and labels an
    // item (统一社会信用代码) of the legal-entity one.
    let ranked = dataset_ids(&app, "q=信用").await;
    assert_eq!(ranked.first().map(String::as_str), Some(CREDIT_CODE), "{ranked:?}");
    assert!(ranked.contains(&LEGAL_ENTITY_CODE.to_string()), "{ranked:?}");
}

#[tokio::test]
async fn a_dataset_shows_its_open_items_library_quality_and_downloads() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let detail = json_of(
        anonymous(&app, &format!("/open/v1/datasets/{LEGAL_ENTITY_CODE}")).await,
        200,
    )
    .await;
    let resource = app.catalog.resource_by_code(LEGAL_ENTITY_CODE).await.unwrap();
    assert_eq!(detail["id"], LEGAL_ENTITY_CODE);
    assert_eq!(detail["code"], LEGAL_ENTITY_CODE);
    assert_eq!(detail["summary"], resource.meta.summary);
    assert_eq!(detail["organization"]["code"], "SCJGJ");
    assert_eq!(detail["publish_date"], resource.meta.publish_date.unwrap().to_string());
    assert_eq!(detail["library"], "legal_entity");

    // Items: L1 plain, L2 masked, L3/L4 absent, in catalog order.
    let want: Vec<Value> = resource
        .meta
        .items
        .iter()
        .filter_map(|i| {
            let served = match i.sensitivity {
                Sensitivity::L1 => "plain",
                Sensitivity::L2 => "masked",
                _ => return None,
            };
            Some(json!({"name": i.name, "label_zh": i.label_zh, "data_type": i.data_type,
                        "sensitivity": i.sensitivity.code(), "served": served}))
        })
        .collect();
    assert_eq!(detail["items"], Value::Array(want));
    assert!(resource.meta.items.iter().any(|i| i.sensitivity == Sensitivity::L3));
    assert!(resource.meta.items.iter().any(|i| i.sensitivity == Sensitivity::L2));

    // The library as served now.
    let library = app.libraries.get("legal_entity").unwrap();
    assert_eq!(detail["library_version"], library.version().unwrap());
    assert_eq!(detail["record_count"], library.len().unwrap());
    assert!(library.len().unwrap() > 0);

    // The demo scores each library after its sync.
    let reports = app
        .catalog
        .quality_reports(catalog::QualityScope::Resource, LEGAL_ENTITY_CODE, 1)
        .await
        .unwrap();
    assert_eq!(detail["quality"]["overall"], reports[0].overall);
    assert_eq!(detail["quality"]["scope"], "resource");

    let formats: Vec<&str> = detail["distributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["csv", "json", "ndjson", "parquet", "xlsx"]);
    assert_eq!(
        detail["distributions"][0],
        json!({"format": "csv", "media_type": "text/csv",
               "url": format!("{}/open/v1/datasets/{LEGAL_ENTITY_CODE}/download?format=csv", app.address)})
    );

    // The conditional dataset is listed as such, with the same anonymous item rule.
    let credit = json_of(anonymous(&app, &format!("/open/v1/datasets/{CREDIT_CODE}")).await, 200).await;
    assert_eq!(credit["open_type"]["code"], "conditional");
    assert!(
        credit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["sensitivity"] == "L1" || i["sensitivity"] == "L2")
    );
}

#[tokio::test]
async fn a_resource_that_is_not_open_is_not_found_like_a_missing_one() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let not_open = app.catalog.resource_by_code(POPULATION_CODE).await.unwrap();
    assert_eq!(not_open.status, ResourceStatus::Published);
    let unpublished = app
        .catalog
        .resources()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.status != ResourceStatus::Published && r.meta.open_type != OpenType::NotOpen);
    let mut codes = vec![POPULATION_CODE.to_string(), "9-99-999-999999".to_string()];
    codes.extend(unpublished.map(|r| r.code));
    let mut details = BTreeSet::new();
    for code in &codes {
        let body = assert_problem(
            anonymous(&app, &format!("/open/v1/datasets/{code}")).await,
            404,
            "dataset_not_found",
        )
        .await;
        assert_eq!(body["field"], "id");
        details.insert(body["detail"].as_str().unwrap().replace(code.as_str(), "…"));
    }
    assert_eq!(details.len(), 1, "the answers differ only by the id: {details:?}");
}

#[tokio::test]
async fn bad_listing_parameters_are_422_naming_the_parameter() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let cases = [
        ("page=0", "page"),
        ("page=x", "page"),
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("per_page=-1", "per_page"),
        ("theme=sports", "theme"),
        ("open_type=not_open", "open_type"),
        ("open_type=sometimes", "open_type"),
        ("sort=name", "sort"),
    ];
    for (query, field) in cases {
        let body = assert_problem(
            anonymous(&app, &format!("/open/v1/datasets?{query}")).await,
            422,
            "invalid_query",
        )
        .await;
        assert_eq!(body["field"], field, "{query}: {body}");
    }
}

/// Calls a CKAN action by GET (query parameters) or POST (a JSON body) on `/api/3/action/`;
/// returns the status and the parsed body.
async fn ckan(app: &TestApp, action: &str, params: &Value, post: bool) -> (u16, Value) {
    let url = format!("{}/api/3/action/{action}", app.address);
    let request = if post {
        app.client.post(url).json(params)
    } else {
        let query: Vec<(String, String)> = params
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect();
        app.client.get(url).query(&query)
    };
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/json"), "{action}: {content_type}");
    (status, response.json().await.expect("JSON body"))
}

/// A successful action's result, after checking CKAN's envelope.
async fn ckan_result(app: &TestApp, action: &str, params: Value, post: bool) -> Value {
    let (status, body) = ckan(app, action, &params, post).await;
    assert_eq!(status, 200, "{action} {params}: {body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(
        body["help"],
        format!("{}/api/3/action/help_show?name={action}", app.address)
    );
    assert_eq!(body.as_object().unwrap().len(), 3, "help, success, result: {body}");
    body["result"].clone()
}

#[tokio::test]
async fn every_ckan_action_answers_in_ckans_envelope_by_get_and_by_post() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let expected: Vec<String> = expected_datasets(&app).await.into_iter().map(|r| r.code).collect();
    for post in [false, true] {
        let list = ckan_result(&app, "package_list", json!({}), post).await;
        assert_eq!(list, json!(expected), "package_list (post: {post})");
        let list = ckan_result(&app, "package_list", json!({"limit": 2, "offset": 1}), post).await;
        assert_eq!(list, json!(expected[1..3]), "package_list paged");

        let package = ckan_result(&app, "package_show", json!({"id": LEGAL_ENTITY_CODE}), post).await;
        assert_eq!(package["name"], LEGAL_ENTITY_CODE);

        let search = ckan_result(&app, "package_search", json!({"q": "法人"}), post).await;
        assert_eq!(search["count"], 1);
        assert_eq!(search["results"][0]["name"], LEGAL_ENTITY_CODE);

        let organizations = ckan_result(&app, "organization_list", json!({}), post).await;
        let mut want: Vec<String> = expected_datasets(&app)
            .await
            .iter()
            .map(|r| r.meta.provider_code.to_lowercase())
            .collect();
        want.sort();
        want.dedup();
        assert_eq!(organizations, json!(want));

        let full = ckan_result(&app, "organization_list", json!({"all_fields": true}), post).await;
        let scjgj = full.as_array().unwrap().iter().find(|o| o["name"] == "scjgj").unwrap();
        assert_eq!(scjgj["title"], "市市场监督管理局");
        assert_eq!(scjgj["package_count"], 1);
        assert_eq!(scjgj["is_organization"], true);

        let org = ckan_result(
            &app,
            "organization_show",
            json!({"id": "scjgj", "include_datasets": true}),
            post,
        )
        .await;
        assert_eq!(org["name"], "scjgj");
        assert_eq!(org["packages"][0]["name"], LEGAL_ENTITY_CODE);
        assert_eq!(org["packages"].as_array().unwrap().len(), 1);
        let org = ckan_result(&app, "organization_show", json!({"id": "SCJGJ"}), post).await;
        assert!(org.get("packages").is_none(), "datasets only when asked: {org}");

        let groups = ckan_result(&app, "group_list", json!({"all_fields": true}), post).await;
        let names: Vec<&str> = groups
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["base", "department", "theme"]);
        let base = &groups[0];
        assert_eq!(base["title"], "基础信息资源");
        assert_eq!(
            base["package_count"],
            expected.iter().filter(|c| c.starts_with('1')).count()
        );
        let group = ckan_result(
            &app,
            "group_show",
            json!({"id": "base", "include_datasets": "true"}),
            post,
        )
        .await;
        assert_eq!(
            group["packages"].as_array().unwrap().len(),
            base["package_count"].as_u64().unwrap() as usize
        );

        let resource = ckan_result(
            &app,
            "resource_show",
            json!({"id": format!("{SPATIAL_CODE}-parquet")}),
            post,
        )
        .await;
        assert_eq!(resource["format"], "Parquet");
        assert_eq!(resource["package_id"], SPATIAL_CODE);
        assert_eq!(resource["mimetype"], "application/vnd.apache.parquet");
        assert_eq!(
            resource["url"],
            format!(
                "{}/open/v1/datasets/{SPATIAL_CODE}/download?format=parquet",
                app.address
            )
        );

        let status = ckan_result(&app, "status_show", json!({}), post).await;
        assert_eq!(status["ckan_version"], huitong::routes::ckan::CKAN_VERSION);
        assert_eq!(status["site_url"], app.address);
        assert_eq!(ckan_result(&app, "site_read", json!({}), post).await, true);
        let help = ckan_result(&app, "help_show", json!({"name": "package_search"}), post).await;
        assert!(help.as_str().unwrap().contains("facet.field"), "{help}");
    }
}

#[tokio::test]
async fn a_package_has_the_fields_ckan_clients_read() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let package = ckan_result(&app, "package_show", json!({"id": LEGAL_ENTITY_CODE}), false).await;
    let resource = app.catalog.resource_by_code(LEGAL_ENTITY_CODE).await.unwrap();
    assert_eq!(package["id"], LEGAL_ENTITY_CODE);
    assert_eq!(package["title"], "法人单位基础信息");
    assert_eq!(package["notes"], resource.meta.summary);
    assert_eq!(package["state"], "active");
    assert_eq!(package["private"], false);
    assert_eq!(package["type"], "dataset");
    assert_eq!(package["license_id"], "cc-by");
    assert_eq!(
        package["url"],
        format!("{}/open/v1/datasets/{LEGAL_ENTITY_CODE}", app.address)
    );
    assert_eq!(package["metadata_created"], resource.created_at.trim_end_matches('Z'));
    assert_eq!(package["metadata_modified"], resource.updated_at.trim_end_matches('Z'));
    assert_eq!(package["owner_org"], "scjgj");
    assert_eq!(package["organization"]["name"], "scjgj");
    assert_eq!(package["organization"]["title"], "市市场监督管理局");
    assert_eq!(package["groups"][0]["name"], "base");
    let extras: Vec<(String, String)> = package["extras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap().into(), e["value"].as_str().unwrap().into()))
        .collect();
    for pair in [
        ("resource_code", LEGAL_ENTITY_CODE),
        ("open_type", "unconditional"),
        ("update_cycle", "daily"),
    ] {
        assert!(
            extras.contains(&(pair.0.into(), pair.1.into())),
            "{pair:?} in {extras:?}"
        );
    }
    // Tags are the open items' labels: never a withheld item's.
    let tags: Vec<&str> = package["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(tags.contains(&"法定代表人"), "{tags:?}");
    assert!(!tags.contains(&"法定代表人身份证号"), "{tags:?}");
    assert_eq!(package["num_tags"], tags.len());

    assert_eq!(package["num_resources"], 5);
    let resources = package["resources"].as_array().unwrap();
    let formats: Vec<&str> = resources.iter().map(|r| r["format"].as_str().unwrap()).collect();
    assert_eq!(formats, ["CSV", "JSON", "NDJSON", "Parquet", "XLSX"]);
    for (n, r) in resources.iter().enumerate() {
        let code = r["format"].as_str().unwrap().to_lowercase();
        assert_eq!(r["id"], format!("{LEGAL_ENTITY_CODE}-{code}"));
        assert_eq!(r["package_id"], LEGAL_ENTITY_CODE);
        assert_eq!(r["position"], n);
        assert_eq!(
            r["url"],
            format!(
                "{}/open/v1/datasets/{LEGAL_ENTITY_CODE}/download?format={code}",
                app.address
            )
        );
        assert_eq!(r["datastore_active"], true);
        assert!(r["mimetype"].as_str().unwrap().contains('/'));
    }
}

#[tokio::test]
async fn package_search_filters_sorts_pages_and_counts_facets() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let expected = expected_datasets(&app).await;
    let all: Vec<String> = expected.iter().map(|r| r.code.clone()).collect();
    let names = |result: &Value| ids_of(result, "results", "name");

    // Default rows are 10; no facets unless asked.
    let everything = ckan_result(&app, "package_search", json!({}), true).await;
    assert_eq!(everything["count"], all.len());
    assert_eq!(everything["facets"], json!({}));
    assert_eq!(everything["search_facets"], json!({}));
    assert_eq!(everything["sort"], "score desc, metadata_modified desc");

    // Paging by rows and start (as the CKAN harvester pages: `id asc`) covers every dataset once.
    let by_name = |start: usize| json!({"rows": 2, "start": start, "sort": "id asc"});
    let mut paged = Vec::new();
    for start in (0..all.len()).step_by(2) {
        let page = ckan_result(&app, "package_search", by_name(start), false).await;
        assert_eq!(page["count"], all.len(), "count is the total, not the page");
        assert!(page["results"].as_array().unwrap().len() <= 2);
        paged.extend(names(&page));
    }
    assert_eq!(paged, all);
    let descending = ckan_result(&app, "package_search", json!({"sort": "name desc", "rows": 100}), true).await;
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(names(&descending), reversed);

    // Filters.
    let department: Vec<String> = all.iter().filter(|c| c.starts_with('3')).cloned().collect();
    let not_base: Vec<String> = all.iter().filter(|c| !c.starts_with('1')).cloned().collect();
    let with_library: Vec<String> = expected
        .iter()
        .filter(|r| r.meta.library.is_some())
        .map(|r| r.code.clone())
        .collect();
    assert!(
        with_library.len() < all.len(),
        "the demo has open datasets without a library"
    );
    let cases: Vec<(String, Vec<String>)> = vec![
        ("organization:fgw".into(), vec![CREDIT_CODE.into()]),
        ("organization:\"scjgj\"".into(), vec![LEGAL_ENTITY_CODE.into()]),
        ("+groups:department".into(), department),
        ("-groups:base".into(), not_base),
        ("groups:base open_type:conditional".into(), vec![CREDIT_CODE.into()]),
        // Only a dataset a library holds has downloads.
        ("res_format:csv".into(), with_library.clone()),
        ("tags:法定代表人".into(), vec![LEGAL_ENTITY_CODE.into()]),
        ("dataset_type:dataset".into(), all.clone()),
        ("metadata_modified:[2000-01-01T00:00:00Z TO *]".into(), all.clone()),
        ("metadata_modified:[* TO 2000-01-01T00:00:00Z]".into(), vec![]),
        (format!("name:{SPATIAL_CODE}"), vec![SPATIAL_CODE.into()]),
        // As the CKAN harvester filters: organizations OR-ed, AND a modified-since range.
        (
            "organization:fgw OR organization:scjgj metadata_modified:[2000-01-01T00:00:00.000001Z TO *]".into(),
            vec![CREDIT_CODE.into(), LEGAL_ENTITY_CODE.into()],
        ),
        (
            "organization:fgw OR organization:scjgj groups:department".into(),
            vec![],
        ),
        ("-organization:fgw -organization:scjgj".into(), {
            let mut rest = all.clone();
            rest.retain(|c| c != CREDIT_CODE && c != LEGAL_ENTITY_CODE);
            rest
        }),
    ];
    for (fq, mut want) in cases {
        let result = ckan_result(&app, "package_search", json!({"fq": &fq, "rows": 100}), false).await;
        let mut got = names(&result);
        got.sort();
        want.sort();
        assert_eq!(got, want, "fq {fq}");
        assert_eq!(result["count"], want.len(), "fq {fq}");
    }

    // Facets over the matches: facet.field as a JSON list in a string (GET) or a list (POST).
    for (post, fields) in [
        (
            false,
            json!("[\"organization\", \"groups\", \"res_format\", \"open_type\"]"),
        ),
        (true, json!(["organization", "groups", "res_format", "open_type"])),
    ] {
        let result = ckan_result(
            &app,
            "package_search",
            json!({"facet.field": fields, "fq": "groups:base"}),
            post,
        )
        .await;
        let base: Vec<&Resource> = expected.iter().filter(|r| r.code.starts_with('1')).collect();
        assert_eq!(result["count"], base.len());
        assert_eq!(result["facets"]["groups"], json!({"base": base.len()}));
        assert_eq!(result["facets"]["res_format"]["CSV"], base.len());
        for r in &base {
            let org = r.meta.provider_code.to_lowercase();
            let count = base
                .iter()
                .filter(|o| o.meta.provider_code == r.meta.provider_code)
                .count();
            assert_eq!(result["facets"]["organization"][&org], count, "{result}");
        }
        assert_eq!(
            result["facets"]["open_type"],
            json!({"conditional": 1, "unconditional": base.len() - 1})
        );
        let items = result["search_facets"]["organization"]["items"].as_array().unwrap();
        assert_eq!(items.len(), base.len());
        let fgw = items.iter().find(|i| i["name"] == "fgw").unwrap();
        assert_eq!(fgw["display_name"], "市发展和改革委员会");
        assert_eq!(fgw["count"], 1);
        assert_eq!(
            result["search_facets"]["groups"]["items"][0]["display_name"],
            "基础信息资源"
        );
        assert_eq!(result["search_facets"]["open_type"]["title"], "open_type");
    }
    // fq_list repeated in a query string is a list, each entry one more filter.
    let response = app
        .client
        .get(format!(
            "{}/api/3/action/package_search?fq_list=groups:base&fq_list=open_type:conditional",
            app.address
        ))
        .send()
        .await
        .unwrap();
    let listed = json_of(response, 200).await;
    assert_eq!(names(&listed["result"]), [CREDIT_CODE]);
    let limited = ckan_result(
        &app,
        "package_search",
        json!({"facet.field": ["organization"], "facet.limit": 2}),
        true,
    )
    .await;
    assert_eq!(
        limited["search_facets"]["organization"]["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(limited["facets"]["organization"].as_object().unwrap().len(), 2);

    // A search ranks by relevance.
    let ranked = ckan_result(&app, "package_search", json!({"q": "信用"}), true).await;
    assert_eq!(names(&ranked)[0], CREDIT_CODE);
    let star = ckan_result(&app, "package_search", json!({"q": "*:*"}), true).await;
    assert_eq!(star["count"], all.len());
}

#[tokio::test]
async fn ckan_errors_have_ckans_types_and_statuses() {
    let app = spawn_app(MetaDb::Sqlite).await;
    // (action, parameters, status, __type, the key that names the fault)
    let cases = [
        ("package_show", json!({}), 409, "Validation Error", Some("id")),
        ("package_show", json!({"id": ""}), 409, "Validation Error", Some("id")),
        (
            "package_show",
            json!({"id": "9-99-999-999999"}),
            404,
            "Not Found Error",
            None,
        ),
        (
            "package_show",
            json!({"id": POPULATION_CODE}),
            404,
            "Not Found Error",
            None,
        ),
        (
            "resource_show",
            json!({"id": format!("{LEGAL_ENTITY_CODE}-pdf")}),
            404,
            "Not Found Error",
            None,
        ),
        (
            "resource_show",
            json!({"id": format!("{POPULATION_CODE}-csv")}),
            404,
            "Not Found Error",
            None,
        ),
        ("organization_show", json!({"id": "gaj"}), 404, "Not Found Error", None),
        ("group_show", json!({"id": "sports"}), 404, "Not Found Error", None),
        (
            "help_show",
            json!({"name": "datastore_create"}),
            404,
            "Not Found Error",
            None,
        ),
        (
            "package_search",
            json!({"rows": "many"}),
            409,
            "Validation Error",
            Some("rows"),
        ),
        (
            "package_search",
            json!({"start": -1}),
            409,
            "Validation Error",
            Some("start"),
        ),
        (
            "package_search",
            json!({"fq": "colour:red"}),
            409,
            "Search Query Error",
            None,
        ),
        (
            "package_search",
            json!({"fq": "name:\"unclosed"}),
            409,
            "Search Query Error",
            None,
        ),
        (
            "package_search",
            json!({"sort": "views desc"}),
            409,
            "Search Query Error",
            None,
        ),
        (
            "package_search",
            json!({"fq": "organization:fgw OR"}),
            409,
            "Search Query Error",
            None,
        ),
        (
            "package_list",
            json!({"limit": "x"}),
            409,
            "Validation Error",
            Some("limit"),
        ),
        (
            "organization_list",
            json!({"all_fields": "perhaps"}),
            409,
            "Validation Error",
            Some("all_fields"),
        ),
        (
            "organization_list",
            json!({"sort": "age"}),
            409,
            "Validation Error",
            Some("sort"),
        ),
    ];
    for (action, params, status, kind, field) in cases {
        for post in [false, true] {
            let (got, body) = ckan(&app, action, &params, post).await;
            assert_eq!(got, status, "{action} {params} (post: {post}): {body}");
            assert_eq!(body["success"], false, "{body}");
            assert_eq!(body["error"]["__type"], kind, "{action} {params}: {body}");
            assert!(
                body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{body}"
            );
            assert!(body["help"].as_str().unwrap().ends_with(&format!("name={action}")));
            if let Some(field) = field {
                assert!(body["error"][field].is_array(), "{action} {params}: {body}");
            }
        }
    }
    // A package that is not open reads exactly like one that does not exist.
    let (_, missing) = ckan(&app, "package_show", &json!({"id": "9-99-999-999999"}), false).await;
    let (_, closed) = ckan(&app, "package_show", &json!({"id": POPULATION_CODE}), false).await;
    assert_eq!(missing["error"], closed["error"]);

    // An unknown action (the datastore is read-only here) and a body that is not a JSON object
    // are CKAN's bare-string 400s.
    let (status, body) = ckan(&app, "datastore_create", &json!({}), false).await;
    assert_eq!(status, 400);
    assert_eq!(body, "Bad request - Action name not known: datastore_create");
    for raw in ["{not json", "[1, 2]"] {
        let response = app
            .client
            .post(format!("{}/api/3/action/package_list", app.address))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{raw}");
        let body: Value = response.json().await.unwrap();
        assert!(body.as_str().unwrap().starts_with("Bad request - "), "{raw}: {body}");
    }
}

#[tokio::test]
async fn the_open_catalog_exports_as_dcat_ap() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let expected = expected_datasets(&app).await;
    let response = anonymous(&app, "/open/v1/catalog.jsonld").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/ld+json");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["@context"]["dcat"], "http://www.w3.org/ns/dcat#");
    let graph = doc["@graph"].as_array().unwrap();
    let catalogs: Vec<&Value> = graph.iter().filter(|n| n["@type"] == "dcat:Catalog").collect();
    assert_eq!(catalogs.len(), 1);
    let listed: Vec<&str> = catalogs[0]["dcat:dataset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["@id"].as_str().unwrap())
        .collect();
    let dataset_iri = |code: &str| format!("{}/open/v1/datasets/{code}", app.address);
    let want: Vec<String> = expected.iter().map(|r| dataset_iri(&r.code)).collect();
    assert_eq!(listed, want);
    assert!(catalogs[0]["dct:publisher"]["foaf:name"]["@value"].is_string());

    let datasets: Vec<&Value> = graph.iter().filter(|n| n["@type"] == "dcat:Dataset").collect();
    assert_eq!(datasets.len(), expected.len());
    let spatial = datasets.iter().find(|d| d["@id"] == dataset_iri(SPATIAL_CODE)).unwrap();
    assert_eq!(spatial["dct:identifier"], SPATIAL_CODE);
    assert_eq!(
        spatial["dct:title"],
        json!({"@value": "自然资源和空间地理信息", "@language": "zh"})
    );
    assert_eq!(spatial["dct:publisher"]["foaf:name"]["@value"], "市规划和自然资源局");
    assert_eq!(
        spatial["dct:accrualPeriodicity"]["@id"],
        "http://publications.europa.eu/resource/authority/frequency/MONTHLY"
    );
    assert_eq!(spatial["dct:issued"]["@type"], "xsd:date");
    let theme = format!("{}/open/v1/themes/base", app.address);
    assert_eq!(spatial["dcat:theme"]["@id"], theme);
    let concept = graph
        .iter()
        .find(|n| n["@id"] == theme)
        .expect("the theme is described");
    assert_eq!(concept["@type"], "skos:Concept");
    assert_eq!(concept["skos:prefLabel"]["@value"], "基础信息资源");
    let distributions = spatial["dcat:distribution"].as_array().unwrap();
    assert_eq!(distributions.len(), 5);
    let csv = &distributions[0];
    assert_eq!(
        csv["dcat:downloadURL"]["@id"],
        format!("{}/open/v1/datasets/{SPATIAL_CODE}/download?format=csv", app.address)
    );
    assert_eq!(
        csv["dcat:mediaType"]["@id"],
        "http://www.iana.org/assignments/media-types/text/csv"
    );
    let credit = datasets.iter().find(|d| d["@id"] == dataset_iri(CREDIT_CODE)).unwrap();
    assert_eq!(
        credit["dct:accessRights"]["@id"],
        "http://publications.europa.eu/resource/authority/access-right/RESTRICTED"
    );
    // No resource that is not open, and no withheld item as a keyword.
    let text = doc.to_string();
    assert!(!text.contains(POPULATION_CODE));
    assert!(!text.contains("法定代表人身份证号"));

    let response = anonymous(&app, "/open/v1/catalog.ttl").await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/turtle")
    );
    let turtle = response.text().await.unwrap();
    assert!(turtle.starts_with("@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> ."));
    for r in &expected {
        assert!(
            turtle.contains(&format!("<{}>\n    a dcat:Dataset ;", dataset_iri(&r.code))),
            "{}",
            r.code
        );
    }
    assert!(
        turtle.contains("dct:accrualPeriodicity <http://publications.europa.eu/resource/authority/frequency/MONTHLY>")
    );
    assert!(turtle.contains("dct:title \"自然资源和空间地理信息\"@zh"));
    assert!(!turtle.contains(POPULATION_CODE));
}

/// The Python that `scripts/test` gives the `ckanapi` package (a venv under /var/tmp).
fn ckanapi_python() -> std::path::PathBuf {
    let path = std::env::var_os("TEST_CKANAPI_PYTHON")
        .map(std::path::PathBuf::from)
        .expect(
            "TEST_CKANAPI_PYTHON is not set: run ./scripts/test, which installs ckanapi, or \
         `python3 -m venv /var/tmp/huitong-ckanapi-venv && /var/tmp/huitong-ckanapi-venv/bin/pip install \
         ckanapi==4.11` and set TEST_CKANAPI_PYTHON=/var/tmp/huitong-ckanapi-venv/bin/python",
        );
    assert!(path.is_file(), "TEST_CKANAPI_PYTHON={} is not a file", path.display());
    path
}

#[tokio::test]
async fn a_real_ckan_client_lists_searches_and_reads_the_catalog() {
    let python = ckanapi_python();
    let app = spawn_app(MetaDb::Sqlite).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/ckan/client.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&app.address)
        .arg(LEGAL_ENTITY_CODE)
        .arg(POPULATION_CODE)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "the ckanapi client failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).expect("the client prints JSON");
    let expected: Vec<String> = expected_datasets(&app).await.into_iter().map(|r| r.code).collect();
    assert_eq!(got["package_list"], json!(expected));
    assert_eq!(got["search"]["count"], 1);
    assert_eq!(got["search"]["names"], json!([LEGAL_ENTITY_CODE]));
    assert_eq!(got["search"]["organization_facet"], json!({"scjgj": 1}));
    assert_eq!(got["show"]["name"], LEGAL_ENTITY_CODE);
    assert_eq!(got["show"]["title"], "法人单位基础信息");
    assert_eq!(got["show"]["organization"], "scjgj");
    assert_eq!(
        got["show"]["formats"],
        json!(["CSV", "JSON", "NDJSON", "Parquet", "XLSX"])
    );
    assert_eq!(
        got["show"]["first_url"],
        format!(
            "{}/open/v1/datasets/{LEGAL_ENTITY_CODE}/download?format=csv",
            app.address
        )
    );
    let organizations = got["organizations"].as_array().unwrap();
    assert!(
        organizations.contains(&json!({"name": "scjgj", "title": "市市场监督管理局", "package_count": 1})),
        "{organizations:?}"
    );
    // It reads the records and downloads the data.
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
    let records = records["records"].as_array().unwrap();
    let mut usccs: Vec<&str> = records.iter().map(|r| r["uscc"].as_str().unwrap()).collect();
    usccs.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(got["datastore"]["total"], records.len());
    assert_eq!(got["datastore"]["keys"], json!(usccs[..3]));
    assert_eq!(got["datastore"]["fields"][0], "_id");
    assert_eq!(got["download"]["rows"], records.len());
    assert!(got["download"]["header"].as_str().unwrap().starts_with("uscc,name,"));
    // ckanapi turns CKAN's errors back into its exceptions.
    assert_eq!(got["not_open"], "NotFound");
    assert_eq!(got["missing_id"], "ValidationError");
}
