use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use arrow::array::{Array, RecordBatch, StringArray};
use serde_json::{Value, json};

use super::*;
use crate::batch::{POSITION_COLUMN, ROW_ERROR_COLUMN};
use crate::{CursorKind, Error, ReadRequest, Since};

type Query = web::Query<HashMap<String, String>>;

/// Serves `routes` on a free port of 127.0.0.1 for the rest of the test; returns the base URL.
fn serve(routes: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .unwrap()
        .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

/// A request counter shared with a server.
#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

impl Hits {
    /// Counts a request; returns its number, from 1.
    fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// `n` records `{"id": i, "name": "n<i>"}`.
fn people(range: std::ops::Range<u64>) -> Vec<Value> {
    range.map(|i| json!({"id": i, "name": format!("n{i}")})).collect()
}

fn param(q: &Query, name: &str) -> u64 {
    q.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A config for `url`, with the fields of `extra`.
fn config(url: &str, extra: Value) -> HttpSourceConfig {
    let mut value = json!({"url": url});
    value
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(value).unwrap()
}

async fn read_all(config: &HttpSourceConfig, request: &ReadRequest) -> crate::Result<Vec<RecordBatch>> {
    let mut stream = config.read(request).await?;
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch?);
    }
    Ok(batches)
}

fn column(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let array = b.column_by_name(name).unwrap();
            let text = array.as_any().downcast_ref::<StringArray>().unwrap().clone();
            (0..text.len())
                .map(|i| (!text.is_null(i)).then(|| text.value(i).to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ids(batches: &[RecordBatch]) -> Vec<u64> {
    column(batches, "id")
        .into_iter()
        .map(|id| id.unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_sample_config_parses_with_defaults() {
    let config: HttpSourceConfig = serde_json::from_value(json!({
        "url": "http://api.example/v1/people",
        "records": "/data/list",
        "pagination": {"kind": "page", "param": "pageNo"},
        "headers": {"Authorization": {"env": "WJW_API_TOKEN"}}
    }))
    .unwrap();
    assert_eq!(
        config.pagination,
        Pagination::Page {
            param: "pageNo".into(),
            size_param: "size".into(),
            size: 500,
            first: 1
        }
    );
    assert_eq!((config.retries, config.backoff_ms, config.timeout_secs), (3, 500, 30));
    assert_eq!(config.batch_size, 1000);
    assert!(config.checked_url().is_ok());
    let bare = self::config("http://api.example", json!({}));
    assert_eq!(bare.pagination, Pagination::None);
    assert_eq!(bare.records, "");
    let offset: Pagination = serde_json::from_value(json!({"kind": "offset"})).unwrap();
    assert_eq!(
        offset,
        Pagination::Offset {
            param: "offset".into(),
            limit_param: "limit".into(),
            limit: 500
        }
    );
}

#[test]
fn a_wrong_config_names_the_field() {
    let unknown = serde_json::from_value::<HttpSourceConfig>(json!({"url": "http://x", "record": "/a"}));
    assert!(unknown.unwrap_err().to_string().contains("record"));
    let unknown = serde_json::from_value::<HttpSourceConfig>(
        json!({"url": "http://x", "pagination": {"kind": "page", "sise": 5}}),
    );
    assert!(unknown.unwrap_err().to_string().contains("sise"));

    let credentials = config("http://wjw:pa55word@api.example/v1", json!({}));
    let err = credentials.checked_url().unwrap_err().to_string();
    assert!(err.contains("url") && err.contains("headers"), "{err}");
    assert!(!err.contains("pa55word"), "{err}");

    for (extra, field) in [
        (json!({"records": "data/list"}), "records"),
        (json!({"retries": 0}), "retries"),
        (json!({"timeout_secs": 0}), "timeout_secs"),
        (json!({"pagination": {"kind": "page", "size": 0}}), "pagination.size"),
        (json!({"pagination": {"kind": "cursor", "next": ""}}), "pagination.next"),
    ] {
        let err = config("http://api.example", extra).checked_url().unwrap_err();
        assert!(
            matches!(&err, Error::Config { field: f, .. } if f == field),
            "{field}: {err}"
        );
    }
    let err = config("ftp://api.example", json!({})).checked_url().unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
}

#[tokio::test]
async fn page_pagination_reads_every_record_once() {
    let hits = Hits::default();
    let h = hits.clone();
    let url = serve(move |cfg| {
        let h = h.clone();
        cfg.route(
            "/people",
            web::get().to(move |q: Query| {
                h.hit();
                let (page, size) = (param(&q, "page"), param(&q, "size"));
                let start = ((page - 1) * size).min(2345);
                async move { HttpResponse::Ok().json(people(start..(start + size).min(2345))) }
            }),
        );
    });
    let source = config(&format!("{url}/people"), json!({"pagination": {"kind": "page"}}));
    source.healthcheck().await.unwrap();
    assert_eq!(hits.count(), 1);
    let batches = read_all(&source, &ReadRequest::default()).await.unwrap();
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
        [1000, 1000, 345]
    );
    assert_eq!(ids(&batches), (0..2345).collect::<Vec<_>>());
    // Five pages, the last one short: no request for a sixth.
    assert_eq!(hits.count(), 1 + 5);
    let positions = column(&batches, POSITION_COLUMN);
    assert_eq!(positions[0].as_deref(), Some("page 1, record 1"));
    assert_eq!(positions[1016].as_deref(), Some("page 3, record 17"));
    assert!(column(&batches, ROW_ERROR_COLUMN).iter().all(Option::is_none));
}

#[tokio::test]
async fn offset_pagination_stops_at_an_empty_page() {
    let hits = Hits::default();
    let h = hits.clone();
    let url = serve(move |cfg| {
        let h = h.clone();
        cfg.route(
            "/people",
            web::get().to(move |q: Query| {
                h.hit();
                let (offset, limit) = (param(&q, "from").min(2345), param(&q, "count"));
                async move { HttpResponse::Ok().json(people(offset..(offset + limit).min(2345))) }
            }),
        );
    });
    // 2,345 = 5 × 469: every page is full, an empty sixth one ends the read.
    let source = config(
        &format!("{url}/people"),
        json!({"pagination": {"kind": "offset", "param": "from", "limit_param": "count", "limit": 469}, "batch_size": 700}),
    );
    let batches = read_all(&source, &ReadRequest::default()).await.unwrap();
    assert_eq!(ids(&batches), (0..2345).collect::<Vec<_>>());
    assert_eq!(hits.count(), 6);
    assert_eq!(batches.iter().map(|b| b.num_rows()).max(), Some(700));
    let positions = column(&batches, POSITION_COLUMN);
    assert_eq!(positions[1016].as_deref(), Some("offset 938+78"));
}

#[tokio::test]
async fn cursor_pagination_reads_records_from_an_envelope() {
    let hits = Hits::default();
    let h = hits.clone();
    let url = serve(move |cfg| {
        let h = h.clone();
        cfg.route(
            "/feed",
            web::get().to(move |q: Query| {
                h.hit();
                // Opaque cursors: "c" and the offset, in hexadecimal.
                let start = q
                    .get("after")
                    .map(|c| u64::from_str_radix(c.trim_start_matches('c'), 16).unwrap())
                    .unwrap_or(0);
                let end = (start + 300).min(2345);
                let next = (end < 2345).then(|| format!("c{end:x}"));
                async move {
                    HttpResponse::Ok().json(json!({"code": 0, "data": {"list": people(start..end), "next": next}}))
                }
            }),
        );
    });
    let source = config(
        &format!("{url}/feed"),
        json!({"records": "/data/list", "pagination": {"kind": "cursor", "param": "after", "next": "/data/next"}}),
    );
    let batches = read_all(&source, &ReadRequest::default()).await.unwrap();
    assert_eq!(ids(&batches), (0..2345).collect::<Vec<_>>());
    assert_eq!(hits.count(), 8);
    assert_eq!(
        column(&batches, POSITION_COLUMN)[2344].as_deref(),
        Some("page 8, record 245")
    );
    assert_eq!(column(&batches, "name")[7].as_deref(), Some("n7"));

    // A pointer that finds no array names the page.
    let wrong = config(
        &format!("{url}/feed"),
        json!({"records": "/data/items", "pagination": {"kind": "cursor", "param": "after", "next": "/data/next"}}),
    );
    let err = read_all(&wrong, &ReadRequest::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unreadable(_)), "{text}");
    assert!(text.contains("page 1") && text.contains("/data/items"), "{text}");
    let not_array = config(&format!("{url}/feed"), json!({"records": "/data"}));
    let err = not_array.healthcheck().await.unwrap_err().to_string();
    assert!(err.contains("an object, not an array"), "{err}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_unreadable() {
    let url = serve(|cfg| {
        cfg.route(
            "/broken",
            web::get().to(|| async { HttpResponse::Ok().body("<html>maintenance</html>") }),
        );
    });
    let err = read_all(&config(&format!("{url}/broken"), json!({})), &ReadRequest::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unreadable(_)), "{text}");
    assert!(text.contains("page 1") && text.contains("not JSON"), "{text}");
}

const TOKEN: &str = "Bearer 7f3c9e1d-secret-token-42";

/// `/secure` answers only with the token; it, and `/echo`, quote the header they got.
fn secure_routes(cfg: &mut web::ServiceConfig) {
    fn sent(req: &HttpRequest) -> String {
        req.headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
    cfg.route(
        "/secure",
        web::get().to(|req: HttpRequest| async move {
            let sent = sent(&req);
            if sent == TOKEN {
                HttpResponse::Ok().json(people(0..3))
            } else {
                HttpResponse::Unauthorized().body(format!("bad credentials: {sent}"))
            }
        }),
    );
    cfg.route(
        "/echo",
        web::get().to(|req: HttpRequest| async move {
            HttpResponse::BadRequest().body(format!("unknown parameter; headers were Authorization: {}", sent(&req)))
        }),
    );
}

#[tokio::test]
async fn auth_headers_come_from_secrets_and_stay_secret() {
    let url = serve(secure_routes);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("token");
    std::fs::write(&good, format!("{TOKEN}\n")).unwrap();
    let wrong_token = "Bearer wrong-0a1b2c3d4e5f";
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, wrong_token).unwrap();
    let with = |path: &std::path::Path, route: &str| {
        config(
            &format!("{url}/{route}"),
            json!({"headers": {"Authorization": {"file": path}}, "retries": 1}),
        )
    };

    let source = with(&good, "secure");
    source.healthcheck().await.unwrap();
    let batches = read_all(&source, &ReadRequest::default()).await.unwrap();
    assert_eq!(ids(&batches), [0, 1, 2]);
    let debug = format!("{source:?}");
    assert!(!debug.contains("7f3c9e1d") && debug.contains("token"), "{debug}");

    let anonymous = config(&format!("{url}/secure"), json!({}));
    for err in [
        anonymous.healthcheck().await.unwrap_err(),
        read_all(&anonymous, &ReadRequest::default()).await.unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, Error::Unreadable(_)), "{text}");
        assert!(text.contains("401") && text.contains("headers"), "{text}");
    }

    // Refused credentials are not quoted, even when the server echoes them.
    let err = with(&wrong, "secure").healthcheck().await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("0a1b2c3d4e5f"), "{text}");
    // Other refusals quote the body, without the header values.
    let err = with(&good, "echo").healthcheck().await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("400 Bad Request") && text.contains("unknown parameter"),
        "{text}"
    );
    assert!(!text.contains("7f3c9e1d"), "{text}");

    let unset = config(
        &format!("{url}/secure"),
        json!({"headers": {"Authorization": {"env": "HUITONG_TEST_SURELY_UNSET_HTTP_TOKEN"}}}),
    );
    let err = unset.read(&ReadRequest::default()).await.err().unwrap().to_string();
    assert!(
        err.contains("headers.Authorization") && err.contains("HUITONG_TEST_SURELY_UNSET_HTTP_TOKEN"),
        "{err}"
    );
}

#[tokio::test]
async fn failures_worth_retrying_are_retried() {
    let hits = Hits::default();
    let h = hits.clone();
    let url = serve(move |cfg| {
        let h = h.clone();
        cfg.route(
            "/flaky",
            web::get().to(move |q: Query| {
                let n = h.hit();
                let (page, size) = (param(&q, "page"), param(&q, "size"));
                async move {
                    match n {
                        1 => HttpResponse::ServiceUnavailable()
                            .insert_header(("Retry-After", "0"))
                            .finish(),
                        2 => HttpResponse::TooManyRequests().finish(),
                        _ => {
                            let start = ((page - 1) * size).min(120);
                            HttpResponse::Ok().json(people(start..(start + size).min(120)))
                        }
                    }
                }
            }),
        );
    });
    let source = config(
        &format!("{url}/flaky"),
        json!({"pagination": {"kind": "page", "size": 50}, "retries": 3, "backoff_ms": 10}),
    );
    let batches = read_all(&source, &ReadRequest::default()).await.unwrap();
    assert_eq!(ids(&batches), (0..120).collect::<Vec<_>>());
    assert_eq!(hits.count(), 2 + 3);
}

#[tokio::test]
async fn a_source_that_stays_down_is_unreachable_after_the_retries() {
    let hits = Hits::default();
    let h = hits.clone();
    let url = serve(move |cfg| {
        let h = h.clone();
        cfg.route(
            "/down",
            web::get().to(move || {
                h.hit();
                async { HttpResponse::ServiceUnavailable().finish() }
            }),
        );
    });
    let source = config(&format!("{url}/down"), json!({"retries": 3, "backoff_ms": 10}));
    let err = read_all(&source, &ReadRequest::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unreachable(_)), "{text}");
    assert!(
        text.contains("GET http://127.0.0.1")
            && text.contains("(page 1)")
            && text.contains("503 Service Unavailable after 3 attempts"),
        "{text}"
    );
    assert_eq!(hits.count(), 3);
    assert!(matches!(source.healthcheck().await, Err(Error::Unreachable(_))));
    assert_eq!(hits.count(), 6);

    // Nobody listening at all.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nobody = config(
        &format!("http://127.0.0.1:{port}/"),
        json!({"retries": 2, "backoff_ms": 10}),
    );
    let err = nobody.healthcheck().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unreachable(_)), "{text}");
    assert!(text.contains("after 2 attempts"), "{text}");
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let url = serve(|cfg| {
        cfg.route(
            "/slow",
            web::get().to(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                HttpResponse::Ok().json(people(0..1))
            }),
        );
    });
    let source = config(&format!("{url}/slow"), json!({"retries": 1, "timeout_secs": 1}));
    let err = source.healthcheck().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unreachable(_)), "{text}");
    assert!(text.contains("within 1 s after 1 attempt"), "{text}");
}

#[tokio::test]
async fn incremental_runs_send_the_watermark() {
    let seen: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
    let s = seen.clone();
    let url = serve(move |cfg| {
        let s = s.clone();
        cfg.route(
            "/changes",
            web::get().to(move |q: Query| {
                s.lock().unwrap().push(q.into_inner());
                async { HttpResponse::Ok().json(people(0..2)) }
            }),
        );
    });
    let source = config(
        &format!("{url}/changes"),
        json!({"since_param": "updatedSince", "query": {"region": "330100"}}),
    );
    let since = Since {
        column: "updated_at".into(),
        kind: CursorKind::Timestamp,
        watermark: CursorKind::Timestamp.parse("2024-03-01 08:00:00").unwrap(),
    };
    let request = ReadRequest {
        since: Some(since),
        columns: vec!["id".into()],
    };
    let batches = read_all(&source, &request).await.unwrap();
    assert_eq!(ids(&batches), [0, 1]);
    read_all(&source, &ReadRequest::default()).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].get("updatedSince").map(String::as_str),
        Some("2024-03-01 08:00:00")
    );
    assert_eq!(seen[0].get("region").map(String::as_str), Some("330100"));
    assert!(!seen[1].contains_key("updatedSince"));
    assert_eq!(seen[1].get("region").map(String::as_str), Some("330100"));
}

#[tokio::test]
async fn records_become_text_cells() {
    let url = serve(|cfg| {
        cfg.route(
            "/mixed",
            web::get().to(|| async {
                HttpResponse::Ok().json(json!([
                    {"id": 1, "name": "张三", "score": 1.5, "ok": true, "tags": ["x", "y"], "addr": {"city": "杭州"}},
                    {"id": 2},
                    "oops",
                    {"id": 3, "name": null, "extra": "ignored"}
                ]))
            }),
        );
        cfg.route(
            "/ordered",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(r#"[{"zeta": 1, "alpha": 2, "_huitong_error": "x"}, {"alpha": 3, "mid": 4}]"#)
            }),
        );
    });
    let names = ["id", "name", "score", "ok", "tags", "addr", "missing"];
    let request = ReadRequest {
        since: None,
        columns: names.iter().map(|s| s.to_string()).collect(),
    };
    let batches = read_all(&config(&format!("{url}/mixed"), json!({})), &request)
        .await
        .unwrap();
    let schema = batches[0].schema();
    let fields: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(fields, [&names[..], &[POSITION_COLUMN, ROW_ERROR_COLUMN]].concat());
    let cells = |name| column(&batches, name);
    let text = |s: &str| Some(s.to_string());
    assert_eq!(cells("id"), [text("1"), text("2"), None, text("3")]);
    assert_eq!(cells("name"), [text("张三"), None, None, None]);
    assert_eq!(cells("score")[0], text("1.5"));
    assert_eq!(cells("ok")[0], text("true"));
    assert_eq!(cells("tags")[0], text(r#"["x","y"]"#));
    assert_eq!(cells("addr")[0], text(r#"{"city":"杭州"}"#));
    assert!(cells("missing").iter().all(Option::is_none));
    let errors = cells(ROW_ERROR_COLUMN);
    assert_eq!(errors[0], None);
    assert!(
        errors[2].as_deref().unwrap().contains("not a JSON object"),
        "{errors:?}"
    );
    assert_eq!(cells(POSITION_COLUMN)[2], text("page 1, record 3"));

    // Without named columns: the first record's keys, in its order.
    let batches = read_all(&config(&format!("{url}/ordered"), json!({})), &ReadRequest::default())
        .await
        .unwrap();
    let schema = batches[0].schema();
    let fields: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(fields, ["zeta", "alpha", POSITION_COLUMN, ROW_ERROR_COLUMN]);
    assert_eq!(column(&batches, "alpha"), [text("2"), text("3")]);
    assert_eq!(column(&batches, ROW_ERROR_COLUMN), [None, None]);
}

#[tokio::test]
async fn a_server_ignoring_the_pagination_fails_instead_of_looping() {
    let url = serve(|cfg| {
        // Always the same first page, whatever the parameters.
        cfg.route(
            "/same",
            web::get().to(|| async { HttpResponse::Ok().json(people(0..10)) }),
        );
    });
    let err = read_all(
        &config(
            &format!("{url}/same"),
            json!({"pagination": {"kind": "page", "size": 10}}),
        ),
        &ReadRequest::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("page 2") && err.contains("same records"), "{err}");
    let err = read_all(
        &config(
            &format!("{url}/same"),
            json!({"pagination": {"kind": "offset", "limit": 4}}),
        ),
        &ReadRequest::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("more than the 4 asked for"), "{err}");
}
