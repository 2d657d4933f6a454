//! CKAN's `datastore_search` over an open dataset's records: the open items only, masked as
//! [`policy::open`] says, held to the caller's open-data quota and audited like every open
//! read. `filters`, `q`, `fields`, `sort`, `limit`, `offset` and `include_total` as in CKAN.
//!
//! One pass over the serving index in key order, a chunk at a time, on a blocking thread:
//! without `sort` it keeps only the page; with `sort` it keeps the best `offset + limit`
//! records (so `offset + limit` is capped), and `total` counts every match.

use std::cmp::Ordering;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::HttpResponse;
use arrow::array::{Array, StringArray};
use serde_json::{Map, Value, json};

use super::ckan::{Failure, Outcome, Params, respond};
use crate::problem::Problem;
use crate::query::view::CHUNK;
use crate::routes::exchange::CallRecord;
use crate::startup::AppState;
use exchange_core::index::Scan;

const ENDPOINT: &str = "GET|POST /api/3/action/datastore_search";
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 32_000;
/// Records a sorted search may hold: `offset + limit` at most.
const MAX_SORTED_WINDOW: usize = 100_000;

/// The dataset a CKAN resource id names: `{code}-{format}` or the code itself.
fn dataset_of(resource_id: &str) -> &str {
    crate::routes::open_catalog::DOWNLOAD_FORMATS
        .iter()
        .find_map(|f| resource_id.strip_suffix(&format!("-{}", f.code)))
        .unwrap_or(resource_id)
}

/// A text literal in SQL.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A problem from the open read, in CKAN's terms.
fn failure(problem: &Problem) -> Failure {
    match problem.status {
        404 => Failure::NotFound("Resource was not found.".into()),
        401 => Failure::Unauthenticated(problem.detail.clone()),
        403 => Failure::Authorization(problem.detail.clone()),
        429 => Failure::TooManyRequests(problem.detail.clone()),
        400 | 422 => {
            let field = match problem.field.as_deref() {
                None | Some("filter") => "filters",
                Some(other) => other,
            };
            Failure::invalid(field, problem.detail.clone())
        }
        _ => Failure::Internal,
    }
}

/// What the search asks, parsed.
struct Search {
    dataset: String,
    resource_id: String,
    filters: Map<String, Value>,
    q: Option<String>,
    fields: Option<Vec<String>>,
    sort: Vec<(String, bool)>,
    limit: usize,
    offset: usize,
    include_total: bool,
}

fn parse(p: &Params) -> Result<Search, Failure> {
    let resource_id = match p.text("resource_id")? {
        Some(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => return Err(Failure::invalid("resource_id", "Missing value")),
    };
    let filters = match p.get("filters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(map)) => map,
            _ => return Err(Failure::invalid("filters", "Must be a JSON object")),
        },
        Some(_) => return Err(Failure::invalid("filters", "Must be a JSON object")),
    };
    let fields = match p.list("fields")? {
        Some(list) if list.len() == 1 && list[0].contains(',') => {
            Some(list[0].split(',').map(|f| f.trim().to_string()).collect())
        }
        other => other,
    };
    let mut sort = Vec::new();
    if let Some(text) = p.text("sort")? {
        for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let mut words = part.split_whitespace();
            let field = words.next().unwrap_or_default().trim_matches('"').to_string();
            let descending = match words.next().map(str::to_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => return Err(Failure::invalid("sort", format!("unknown direction {other:?}"))),
            };
            sort.push((field, descending));
        }
    }
    let limit = p.natural("limit", Some(DEFAULT_LIMIT))?.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(Failure::invalid("limit", format!("Must be at most {MAX_LIMIT}")));
    }
    let offset = p.natural("offset", Some(0))?.unwrap_or(0);
    if !sort.is_empty() && offset + limit > MAX_SORTED_WINDOW {
        return Err(Failure::invalid(
            "offset",
            format!("with sort, offset + limit must be at most {MAX_SORTED_WINDOW}"),
        ));
    }
    Ok(Search {
        dataset: dataset_of(&resource_id).to_string(),
        resource_id,
        filters,
        q: p.text("q")?.filter(|q| !q.trim().is_empty()),
        fields,
        sort,
        limit,
        offset,
        include_total: p.boolean("include_total", true)?,
    })
}

/// The filter over the view: `filters` (equality, or membership for a list) and `q` (found
/// in any returned field).
fn filter_sql(search: &Search, visible: &[&str], returned: &[&str]) -> Result<Option<String>, Failure> {
    let mut terms = Vec::new();
    for (field, value) in &search.filters {
        if !visible.contains(&field.as_str()) {
            return Err(Failure::invalid("filters", format!("field {field:?} not in resource")));
        }
        let text = |v: &Value| match v {
            Value::String(s) => Ok(literal(s)),
            Value::Number(n) => Ok(literal(&n.to_string())),
            Value::Bool(b) => Ok(literal(&b.to_string())),
            _ => Err(Failure::invalid(
                "filters",
                format!("the value of {field:?} must be text or a list"),
            )),
        };
        match value {
            Value::Array(values) if values.is_empty() => terms.push("FALSE".to_string()),
            Value::Array(values) => {
                let list: Result<Vec<String>, Failure> = values.iter().map(text).collect();
                terms.push(format!("{field} IN ({})", list?.join(", ")));
            }
            other => terms.push(format!("{field} = {}", text(other)?)),
        }
    }
    if let Some(q) = &search.q {
        let any: Vec<String> = returned
            .iter()
            .map(|f| format!("strpos({f}, {}) > 0", literal(q.trim())))
            .collect();
        terms.push(format!("({})", any.join(" OR ")));
    }
    Ok((!terms.is_empty()).then(|| terms.join(" AND ")))
}

/// Serves one `datastore_search`: answered in CKAN's envelope, recorded in the audit trail.
pub(super) async fn serve(
    req: &HttpRequest,
    state: &AppState,
    params: Result<Params, Failure>,
    base: &str,
) -> HttpResponse {
    let search = params.and_then(|p| parse(&p));
    let dataset = search.as_ref().map(|s| s.dataset.clone()).unwrap_or_default();
    let mut call = CallRecord::new(req, ENDPOINT, &dataset);
    let mut refused = None;
    let outcome = match search {
        Ok(search) => run(req, state, search, &mut call, &mut refused).await,
        Err(failure) => Err(failure),
    };
    let code = match &outcome {
        Ok(_) => "allowed",
        Err(_) if refused.is_some() => refused.unwrap_or_default(),
        Err(Failure::NotFound(_)) => "dataset_not_found",
        Err(Failure::Unauthenticated(_)) => "unauthenticated",
        Err(Failure::Authorization(_)) => "application_required",
        Err(Failure::TooManyRequests(_)) => "quota_exceeded",
        Err(Failure::Validation(_)) | Err(Failure::SearchQuery(_)) | Err(Failure::BadRequest(_)) => "invalid_query",
        Err(Failure::Internal) => "internal",
    };
    let response = respond(base, "datastore_search", outcome);
    call.finish_as(state, response, code).await
}

async fn run(
    req: &HttpRequest,
    state: &AppState,
    search: Search,
    call: &mut CallRecord,
    refused: &mut Option<&'static str>,
) -> Outcome {
    let mut refuse = |p: Problem| {
        *refused = Some(p.code);
        failure(&p)
    };
    // Which items the caller may see decides which filters and fields are valid: ask first.
    let (resource, library, access) = crate::routes::open::authorize_open(req, state, &search.dataset, call)
        .await
        .map_err(&mut refuse)?;
    // The items the caller may see decide which filters, fields and sort keys are valid.
    let schema = library.schema();
    let visible: Vec<&str> = access
        .items
        .iter()
        .filter_map(|item| schema.position(&item.name).map(|i| schema.fields[i].name))
        .collect();
    if let Some(fields) = &search.fields
        && let Some(unknown) = fields.iter().find(|f| !visible.contains(&f.as_str()))
    {
        return Err(Failure::invalid("fields", format!("field {unknown:?} not in resource")));
    }
    if let Some((unknown, _)) = search.sort.iter().find(|(f, _)| !visible.contains(&f.as_str())) {
        return Err(Failure::invalid("sort", format!("field {unknown:?} not in resource")));
    }
    let returned: Vec<&str> = match &search.fields {
        Some(fields) => fields.iter().map(String::as_str).collect(),
        None => visible.clone(),
    };
    let sql = filter_sql(&search, &visible, &returned)?;
    let fields_param = search.fields.as_ref().map(|f| f.join(","));
    let read = crate::routes::query::read_of(
        state,
        resource,
        library,
        access,
        sql.as_deref(),
        fields_param.as_deref(),
        call,
    )
    .map_err(&mut refuse)?;
    let names: Vec<&'static str> = read.field_names();
    let sort: Vec<(usize, bool)> = search
        .sort
        .iter()
        .map(|(f, desc)| (names.iter().position(|n| n == f).unwrap_or(usize::MAX), *desc))
        .collect();
    if sort.iter().any(|(i, _)| *i == usize::MAX) {
        return Err(Failure::invalid("sort", "sort by a returned field"));
    }
    let version = read.library.version().map_err(|_| Failure::Internal)?;
    let reader = read.library.reader().map_err(|_| Failure::Internal)?;
    let (view, filter, fields) = (read.view.clone(), read.filter.clone(), read.fields.clone());
    let (limit, offset, include_total) = (search.limit, search.offset, search.include_total);
    let scanned = tokio::task::spawn_blocking(move || {
        scan(
            reader,
            &view,
            filter.as_deref(),
            &fields,
            &sort,
            limit,
            offset,
            include_total,
        )
    })
    .await
    .map_err(|_| Failure::Internal)??;
    let (rows, total) = scanned;
    call.entry.row_count = Some(rows.len() as i64);
    let mut field_list = vec![json!({"id": "_id", "type": "int"})];
    field_list.extend(names.iter().map(|n| json!({"id": n, "type": "text"})));
    let records: Vec<Value> = rows
        .into_iter()
        .enumerate()
        .map(|(i, values)| {
            let mut record = Map::new();
            record.insert("_id".into(), json!(offset + i + 1));
            for (name, value) in names.iter().zip(values) {
                record.insert((*name).to_string(), value.map(Value::String).unwrap_or(Value::Null));
            }
            Value::Object(record)
        })
        .collect();
    let id = &search.resource_id;
    let mut result = json!({
        "resource_id": id,
        "fields": field_list,
        "records": records,
        "limit": limit,
        "offset": offset,
        "filters": search.filters,
        "include_total": include_total,
        "records_format": "objects",
        "library_version": version,
        "_links": {
            "start": format!("/api/3/action/datastore_search?resource_id={id}"),
            "next": format!("/api/3/action/datastore_search?resource_id={id}&offset={}", offset + limit),
        },
    });
    if let Some(total) = total {
        result["total"] = json!(total);
    }
    if let Some(q) = &search.q {
        result["q"] = json!(q);
    }
    if !search.sort.is_empty() {
        let text: Vec<String> = search
            .sort
            .iter()
            .map(|(f, d)| format!("{f} {}", if *d { "desc" } else { "asc" }))
            .collect();
        result["sort"] = json!(text.join(", "));
    }
    Ok(result)
}

type Row = Vec<Option<String>>;

/// The page of matching rows (each the returned fields' values) and, when asked, the count of
/// all matches.
#[allow(clippy::too_many_arguments)]
fn scan(
    reader: exchange_core::IndexReader,
    view: &Arc<crate::query::view::View>,
    filter: Option<&crate::query::RowFilter>,
    fields: &[usize],
    sort: &[(usize, bool)],
    limit: usize,
    offset: usize,
    include_total: bool,
) -> Result<(Vec<Row>, Option<u64>), Failure> {
    let mut scan = Scan::new(reader, None);
    let mut total: u64 = 0;
    let mut kept: Vec<Row> = Vec::new();
    let window = offset + limit;
    let order = |a: &Row, b: &Row| -> Ordering {
        for (i, desc) in sort {
            let o = a[*i].cmp(&b[*i]);
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    };
    loop {
        let chunk = scan.next_chunk(CHUNK).map_err(|_| Failure::Internal)?;
        if chunk.is_empty() {
            break;
        }
        let (_, batch) = view
            .select(&chunk, filter)
            .map_err(|e| Failure::invalid("filters", e.to_string()))?;
        let columns: Vec<&StringArray> = fields
            .iter()
            .map(|i| batch.column(*i).as_any().downcast_ref().expect("views are text"))
            .collect();
        for r in 0..batch.num_rows() {
            total += 1;
            let wanted = if sort.is_empty() {
                total as usize > offset && kept.len() < limit
            } else {
                true
            };
            if wanted {
                kept.push(
                    columns
                        .iter()
                        .map(|c| c.is_valid(r).then(|| c.value(r).to_string()))
                        .collect(),
                );
            }
        }
        if !sort.is_empty() && kept.len() > 2 * window.max(1) {
            kept.sort_by(order);
            kept.truncate(window);
        }
        if sort.is_empty() && !include_total && kept.len() == limit {
            break;
        }
    }
    if !sort.is_empty() {
        kept.sort_by(order);
        kept.truncate(window);
        kept = kept.split_off(offset.min(kept.len()));
    }
    Ok((kept, include_total.then_some(total)))
}
