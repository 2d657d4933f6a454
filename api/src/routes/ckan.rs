//! The CKAN-compatible Action API (`/api/3/action/{action}`, and `/api/action/{action}` where the
//! `ckanapi` client calls it), so CKAN clients and harvesters read the open catalog unchanged.
//!
//! Read actions over the open datasets (see [`super::open_catalog`]): `package_list`,
//! `package_show`, `package_search`, `organization_list`, `organization_show`, `group_list`,
//! `group_show`, `resource_show`, `status_show`, `site_read`, `help_show`. As in CKAN, each is
//! called by GET (parameters in the query string, all text) or POST (a JSON object body), and
//! answers `{"help": …, "success": true, "result": …}`; a failure answers
//! `{"help": …, "success": false, "error": {"__type": …, "message": …}}` with CKAN's status:
//! 404 `Not Found Error`, 409 `Validation Error` (the offending parameter is a key with its
//! messages) or `Search Query Error`; an unknown action is CKAN's 400 `"Bad request - Action
//! name not known: …"`. Mapping: a package is a dataset (id and name: the resource code), an
//! organization a providing department (name: its code lower-cased), a group a first-level
//! classification (`base`, `theme`, `department`), a resource one download format
//! (`{code}-{format}`).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{Classification, Resource};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::open_catalog::{
    DOWNLOAD_FORMATS, DownloadFormat, LICENSE_ID, LICENSE_TITLE, LICENSE_URL, base_url, download_url, downloadable,
    library_facts, organization_name,
};
use crate::startup::AppState;

/// The CKAN version whose Action API this emulates (what `status_show` reports).
pub const CKAN_VERSION: &str = "2.10.0";

/// The actions served, each with its help text (`help_show`).
pub const ACTIONS: &[(&str, &str)] = &[
    (
        "package_list",
        "Return the names of the site's datasets (resource codes). :param limit: (optional) :param offset: (optional)",
    ),
    (
        "package_show",
        "Return the metadata of a dataset and its resources. :param id: the dataset's id or name (its resource code)",
    ),
    (
        "package_search",
        "Search the datasets. :param q: search words :param fq: filters `field:value` (organization, groups, \
         res_format, tags, license_id, open_type, name, id, dataset_type, metadata_modified/metadata_created ranges), \
         `-` negates :param rows: (default 10, at most 1000) :param start: :param sort: e.g. `score desc, \
         metadata_modified desc` (default), `name asc`, `title_string asc`, `metadata_created desc` \
         :param facet.field: JSON list of fields to count (organization, groups, tags, res_format, license_id, \
         open_type) :param facet.limit: (default 50) :param facet.mincount: (default 1)",
    ),
    (
        "organization_list",
        "Return the organizations (providing departments with open datasets). :param all_fields: (default false) \
         :param sort: `name asc` (default), `title`, `package_count` :param limit: :param offset: \
         :param organizations: only these names",
    ),
    (
        "organization_show",
        "Return an organization. :param id: its id or name :param include_datasets: (default false)",
    ),
    (
        "group_list",
        "Return the groups (the catalog's first-level classification: base, theme, department). \
         :param all_fields: (default false) :param sort: :param limit: :param offset: :param groups: only these names",
    ),
    (
        "group_show",
        "Return a group. :param id: its id or name :param include_datasets: (default false)",
    ),
    (
        "resource_show",
        "Return a resource (a download of a dataset). :param id: `{dataset code}-{format}`, e.g. `1-02-001-000001-csv`",
    ),
    (
        "datastore_search",
        "Search a dataset's records (open items only, masked as the open policy says; audited). \
         :param resource_id: a resource id (`{dataset code}-{format}`) or the dataset code \
         :param filters: a JSON object `{field: value or [values]}` :param q: text found in any returned field \
         :param fields: the fields to return (list or comma-separated) :param sort: e.g. `name asc, uscc desc` \
         :param limit: (default 100, at most 32000) :param offset: (default 0) :param include_total: (default true)",
    ),
    (
        "status_show",
        "Return the site's status: its title, URL and CKAN version.",
    ),
    ("site_read", "Return true: the site may be read."),
    (
        "help_show",
        "Return an action's help text. :param name: the action's name",
    ),
];

/// A failed action, in CKAN's terms.
#[derive(Debug)]
pub(super) enum Failure {
    /// 404 `Not Found Error`.
    NotFound(String),
    /// 409 `Validation Error`: parameter → messages.
    Validation(BTreeMap<String, Vec<String>>),
    /// 409 `Search Query Error`: `q`, `fq` or `sort` cannot be understood.
    SearchQuery(String),
    /// 400: CKAN answers a bare JSON string.
    BadRequest(String),
    /// 401 `Authorization Error`: the key presented is not valid.
    Unauthenticated(String),
    /// 403 `Authorization Error`: the dataset is open on application only.
    Authorization(String),
    /// 429: the caller's quota is used up (CKAN has no such error; the type says so).
    TooManyRequests(String),
    /// 500: a fault of ours; the cause goes to the log.
    Internal,
}

impl Failure {
    pub(super) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Failure::Validation(BTreeMap::from([(field.to_string(), vec![message.into()])]))
    }
}

impl From<catalog::Error> for Failure {
    fn from(e: catalog::Error) -> Self {
        tracing::error!(error = %e, "CKAN action failed");
        Failure::Internal
    }
}

pub(super) type Outcome = Result<Value, Failure>;

/// The `help` of every answer: the action's `help_show` URL, as CKAN gives it.
fn help_url(base: &str, action: &str) -> String {
    format!("{base}/api/3/action/help_show?name={action}")
}

fn answer(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json;charset=utf-8")
        .body(body.to_string())
}

pub(super) fn respond(base: &str, action: &str, outcome: Outcome) -> HttpResponse {
    let help = help_url(base, action);
    let (status, error) = match outcome {
        Ok(result) => {
            return answer(
                StatusCode::OK,
                &json!({"help": help, "success": true, "result": result}),
            );
        }
        Err(Failure::BadRequest(message)) => {
            return answer(
                StatusCode::BAD_REQUEST,
                &Value::String(format!("Bad request - {message}")),
            );
        }
        Err(Failure::NotFound(message)) => (
            StatusCode::NOT_FOUND,
            json!({"__type": "Not Found Error", "message": format!("Not found: {message}")}),
        ),
        Err(Failure::Validation(fields)) => {
            let mut error = Map::new();
            error.insert("__type".into(), "Validation Error".into());
            let message = fields
                .iter()
                .map(|(field, messages)| format!("{field}: {}", messages.join("; ")))
                .collect::<Vec<_>>()
                .join(", ");
            for (field, messages) in fields {
                error.insert(field, json!(messages));
            }
            error.insert("message".into(), Value::String(message));
            (StatusCode::CONFLICT, Value::Object(error))
        }
        Err(Failure::SearchQuery(message)) => (
            StatusCode::CONFLICT,
            json!({"__type": "Search Query Error", "message": format!("Search Query is invalid: {message}")}),
        ),
        Err(Failure::Unauthenticated(message)) => (
            StatusCode::UNAUTHORIZED,
            json!({"__type": "Authorization Error", "message": message}),
        ),
        Err(Failure::Authorization(message)) => (
            StatusCode::FORBIDDEN,
            json!({"__type": "Authorization Error", "message": message}),
        ),
        Err(Failure::TooManyRequests(message)) => (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"__type": "Rate Limit Error", "message": message}),
        ),
        Err(Failure::Internal) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"__type": "Internal Server Error", "message": "Internal Server Error"}),
        ),
    };
    answer(status, &json!({"help": help, "success": false, "error": error}))
}

/// The answer every action gives (the OpenAPI document's view of it).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CkanAnswer {
    /// The URL of the action's help (`help_show`).
    pub help: String,
    /// `true`.
    pub success: bool,
    /// The action's result: a list of names, a package/organization/group/resource dict, or a
    /// search result `{count, results, facets, search_facets, sort}`.
    #[schema(value_type = Object)]
    pub result: Value,
}

/// A failed action's answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"help": "http://example.org/api/3/action/help_show?name=package_show",
    "success": false, "error": {"__type": "Not Found Error", "message": "Not found: Dataset not found"}}))]
pub struct CkanErrorAnswer {
    /// The URL of the action's help.
    pub help: String,
    /// `false`.
    pub success: bool,
    /// `__type` (`Not Found Error`, `Validation Error`, `Search Query Error`, `Internal Server
    /// Error`) and `message`; a validation error also has each offending parameter as a key
    /// with its messages.
    #[schema(value_type = Object)]
    pub error: Value,
}

/// Form or query pairs as parameters; a name given more than once is a list, as in CKAN.
fn pairs_into(params: &mut Map<String, Value>, pairs: url::form_urlencoded::Parse<'_>) {
    for (k, v) in pairs {
        let v = Value::String(v.into_owned());
        match params.get_mut(k.as_ref()) {
            Some(Value::Array(values)) => values.push(v),
            Some(first) => {
                let first = first.take();
                params.insert(k.into_owned(), Value::Array(vec![first, v]));
            }
            None => {
                params.insert(k.into_owned(), v);
            }
        }
    }
}

/// The request's parameters: the query string, overlaid by a POST's JSON object (or form).
fn parameters(req: &HttpRequest, body: &[u8]) -> Result<Map<String, Value>, Failure> {
    let mut params = Map::new();
    pairs_into(&mut params, url::form_urlencoded::parse(req.query_string().as_bytes()));
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let form = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form {
        let mut posted = Map::new();
        pairs_into(&mut posted, url::form_urlencoded::parse(body));
        params.extend(posted);
        return Ok(params);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => {
            params.extend(object);
            Ok(params)
        }
        Ok(_) => Err(Failure::BadRequest(
            "Request data JSON decoded to a non-dictionary object".into(),
        )),
        Err(e) => Err(Failure::BadRequest(format!("JSON Error: {e}"))),
    }
}

/// Typed reads of the parameters, with CKAN's validation messages.
pub(super) struct Params(Map<String, Value>);

impl Params {
    /// The raw value of a parameter.
    pub(super) fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub(super) fn text(&self, name: &str) -> Result<Option<String>, Failure> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(Failure::invalid(name, "Must be a string")),
        }
    }

    fn id(&self) -> Result<String, Failure> {
        match self.text("id")? {
            Some(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
            _ => Err(Failure::invalid("id", "Missing value")),
        }
    }

    pub(super) fn natural(&self, name: &str, default: Option<usize>) -> Result<Option<usize>, Failure> {
        let text = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(default),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(default),
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err(Failure::invalid(name, "Invalid integer")),
        };
        match text.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n as usize)),
            Ok(_) => Err(Failure::invalid(name, "Must be a natural number")),
            Err(_) => Err(Failure::invalid(name, "Invalid integer")),
        }
    }

    pub(super) fn boolean(&self, name: &str, default: bool) -> Result<bool, Failure> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(false),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(true),
            Some(Value::String(s)) => match s.trim().to_lowercase().as_str() {
                "true" | "yes" | "on" | "y" | "t" | "1" => Ok(true),
                "false" | "no" | "off" | "n" | "f" | "0" | "" => Ok(false),
                _ => Err(Failure::invalid(name, format!("String is not true/false: {s:?}"))),
            },
            Some(_) => Err(Failure::invalid(name, "Must be a boolean")),
        }
    }

    /// A list given as a JSON list, a JSON list in a string (GET), or one plain string.
    pub(super) fn list(&self, name: &str) -> Result<Option<Vec<String>>, Failure> {
        let strings = |values: &[Value]| -> Result<Vec<String>, Failure> {
            values
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(Failure::invalid(name, "Must be a list of strings")),
                })
                .collect()
        };
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(values)) => strings(values).map(Some),
            Some(Value::String(s)) if s.trim_start().starts_with('[') => match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(values)) => strings(&values).map(Some),
                _ => Err(Failure::invalid(name, "Must be a JSON list of strings")),
            },
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(_) => Err(Failure::invalid(name, "Must be a list of strings")),
        }
    }
}

/// What an action needs besides its parameters.
struct Context<'a> {
    state: &'a AppState,
    base: String,
}

/// CKAN's timestamps: ISO 8601 without a zone (UTC).
fn ckan_time(stored: &str) -> String {
    stored.trim_end_matches('Z').to_string()
}

fn organization_dict(code: &str, title: &str, package_count: usize) -> Value {
    let name = organization_name(code);
    json!({
        "id": name,
        "name": name,
        "title": title,
        "display_name": title,
        "description": format!("{title}（部门代码 {code}）提供的开放数据。"),
        "image_url": "",
        "image_display_url": "",
        "type": "organization",
        "is_organization": true,
        "state": "active",
        "approval_status": "approved",
        "package_count": package_count,
        "num_followers": 0,
        "extras": [{"key": "department_code", "value": code}],
    })
}

const GROUPS: [Classification; 3] = [Classification::Base, Classification::Theme, Classification::Department];

fn group_dict(classification: Classification, package_count: usize) -> Value {
    let name = classification.code();
    let title = classification.label_zh();
    json!({
        "id": name,
        "name": name,
        "title": title,
        "display_name": title,
        "description": format!("政务信息资源目录的{title}（资源分类第一级 {}）。", classification.digit()),
        "image_url": "",
        "image_display_url": "",
        "type": "group",
        "is_organization": false,
        "state": "active",
        "approval_status": "approved",
        "package_count": package_count,
        "num_followers": 0,
    })
}

fn resource_dict(ctx: &Context<'_>, r: &Resource, position: usize, format: &DownloadFormat) -> Value {
    json!({
        "id": format!("{}-{}", r.code, format.code),
        "package_id": r.code,
        "name": format!("{} ({})", r.meta.name, format.label),
        "description": format!("{}，{} 格式下载；仅含开放信息项（L2 脱敏）。", r.meta.name, format.label),
        "format": format.label,
        "mimetype": format.media_type,
        "url": download_url(&ctx.base, &r.code, format.code),
        "url_type": Value::Null,
        "resource_type": Value::Null,
        "position": position,
        "state": "active",
        "created": ckan_time(&r.created_at),
        "last_modified": ckan_time(&r.updated_at),
        "metadata_modified": ckan_time(&r.updated_at),
        "size": Value::Null,
        "hash": "",
        "datastore_active": r.meta.library.is_some(),
    })
}

fn resources_of(ctx: &Context<'_>, r: &Resource) -> Vec<&'static DownloadFormat> {
    if downloadable(ctx.state, r) {
        DOWNLOAD_FORMATS.iter().collect()
    } else {
        Vec::new()
    }
}

/// A dataset as a CKAN package dict.
fn package_dict(ctx: &Context<'_>, r: &Resource) -> Value {
    let m = &r.meta;
    let org = organization_dict(&m.provider_code, &r.provider_name, 0);
    let organization = json!({
        "id": org["id"], "name": org["name"], "title": org["title"], "type": "organization",
        "description": org["description"], "image_url": "", "is_organization": true,
        "state": "active", "approval_status": "approved",
    });
    let group = group_dict(m.classification, 0);
    let tags: Vec<Value> = catalog::open_items(r)
        .map(|(item, _)| {
            json!({"id": item.label_zh, "name": item.label_zh, "display_name": item.label_zh,
                   "state": "active", "vocabulary_id": Value::Null})
        })
        .collect();
    let mut extras = vec![
        json!({"key": "resource_code", "value": r.code}),
        json!({"key": "open_type", "value": m.open_type.code()}),
        json!({"key": "open_type_label", "value": m.open_type.label_zh()}),
        json!({"key": "update_cycle", "value": m.update_cycle.code()}),
        json!({"key": "update_cycle_label", "value": m.update_cycle.label_zh()}),
        json!({"key": "theme", "value": m.classification.code()}),
    ];
    if let Some(date) = m.publish_date {
        extras.push(json!({"key": "publish_date", "value": date.to_string()}));
    }
    let (library_version, record_count) = library_facts(ctx.state, r);
    if let Some(version) = library_version {
        extras.push(json!({"key": "library_version", "value": version.to_string()}));
    }
    if let Some(count) = record_count {
        extras.push(json!({"key": "record_count", "value": count.to_string()}));
    }
    let resources: Vec<Value> = resources_of(ctx, r)
        .into_iter()
        .enumerate()
        .map(|(n, f)| resource_dict(ctx, r, n, f))
        .collect();
    json!({
        "id": r.code,
        "name": r.code,
        "title": m.name,
        "notes": m.summary,
        "url": format!("{}/open/v1/datasets/{}", ctx.base, r.code),
        "state": "active",
        "private": false,
        "type": "dataset",
        "metadata_created": ckan_time(&r.created_at),
        "metadata_modified": ckan_time(&r.updated_at),
        "author": r.provider_name,
        "author_email": Value::Null,
        "maintainer": r.provider_name,
        "maintainer_email": Value::Null,
        "version": library_version.map(|v| v.to_string()),
        "license_id": LICENSE_ID,
        "license_title": LICENSE_TITLE,
        "license_url": LICENSE_URL,
        "isopen": true,
        "creator_user_id": Value::Null,
        "owner_org": org["id"],
        "organization": organization,
        "groups": [{
            "id": group["id"], "name": group["name"], "title": group["title"],
            "display_name": group["display_name"], "description": group["description"],
            "image_display_url": "",
        }],
        "num_tags": tags.len(),
        "tags": tags,
        "extras": extras,
        "num_resources": resources.len(),
        "resources": resources,
        "relationships_as_object": [],
        "relationships_as_subject": [],
    })
}

/// The values a package has for a facet or filter field (`None`: not a field we know).
fn field_values(ctx: &Context<'_>, r: &Resource, field: &str) -> Option<Vec<String>> {
    let m = &r.meta;
    Some(match field {
        "organization" | "owner_org" => vec![organization_name(&m.provider_code)],
        "groups" => vec![m.classification.code().to_string()],
        "tags" => catalog::open_items(r).map(|(i, _)| i.label_zh.clone()).collect(),
        "res_format" => resources_of(ctx, r).iter().map(|f| f.label.to_string()).collect(),
        "license_id" => vec![LICENSE_ID.to_string()],
        "open_type" => vec![m.open_type.code().to_string()],
        "update_cycle" => vec![m.update_cycle.code().to_string()],
        "name" | "id" => vec![r.code.clone()],
        "dataset_type" | "type" => vec!["dataset".to_string()],
        "state" => vec!["active".to_string()],
        "capacity" => vec!["public".to_string()],
        _ => return None,
    })
}

/// One `field:value` term of `fq`.
struct FilterTerm {
    negated: bool,
    field: String,
    value: FilterValue,
}

enum FilterValue {
    /// Matches a value exactly (formats and organizations without regard to case).
    Exact(String),
    /// `[from TO to]` over timestamps (`*` open); compared as ISO text.
    Range(Option<String>, Option<String>),
}

/// Parses `fq` into clauses that must all hold, each a disjunction of terms: white space
/// separates terms (except inside quotes and brackets) and means AND, as in CKAN; `OR` between two
/// terms joins them into one clause (`organization:a OR organization:b`, as the CKAN harvester
/// writes its organization filter).
fn parse_fq(fq: &str) -> Result<Vec<Vec<FilterTerm>>, Failure> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut depth) = (false, 0i32);
    for c in fq.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '[' | '{' if !quoted => {
                depth += 1;
                current.push(c);
            }
            ']' | '}' if !quoted => {
                depth -= 1;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted && depth == 0 => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted || depth != 0 {
        return Err(Failure::SearchQuery(format!(
            "unbalanced quotes or brackets in fq {fq:?}"
        )));
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    let mut clauses: Vec<Vec<FilterTerm>> = Vec::new();
    let mut or_next = false;
    for token in tokens {
        if token == "AND" || token == "&&" {
            continue;
        }
        if token == "OR" || token == "||" {
            if clauses.is_empty() || or_next {
                return Err(Failure::SearchQuery(format!(
                    "OR without a term before it in fq {fq:?}"
                )));
            }
            or_next = true;
            continue;
        }
        let (negated, rest) = match token.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, token.strip_prefix('+').unwrap_or(&token)),
        };
        let Some((field, value)) = rest.split_once(':') else {
            return Err(Failure::SearchQuery(format!("fq term {token:?} is not field:value")));
        };
        let value = if let Some(range) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let Some((from, to)) = range.split_once(" TO ") else {
                return Err(Failure::SearchQuery(format!("range {value:?} is not [from TO to]")));
            };
            let bound = |b: &str| -> Result<Option<String>, Failure> {
                let b = b.trim().trim_matches('"');
                if b == "*" {
                    Ok(None)
                } else if b.starts_with("NOW") {
                    Err(Failure::SearchQuery(format!(
                        "date arithmetic {b:?} is not supported; give a timestamp"
                    )))
                } else {
                    Ok(Some(b.trim_end_matches('Z').to_string()))
                }
            };
            FilterValue::Range(bound(from)?, bound(to)?)
        } else {
            let value = value.trim_matches('"');
            if value.starts_with('(') {
                return Err(Failure::SearchQuery(format!(
                    "grouped values {value:?} are not supported; give one term per value"
                )));
            }
            FilterValue::Exact(value.replace('\\', ""))
        };
        let term = FilterTerm {
            negated,
            field: field.to_string(),
            value,
        };
        match clauses.last_mut() {
            Some(clause) if or_next => clause.push(term),
            _ => clauses.push(vec![term]),
        }
        or_next = false;
    }
    if or_next {
        return Err(Failure::SearchQuery(format!("OR without a term after it in fq {fq:?}")));
    }
    Ok(clauses)
}

fn term_matches(ctx: &Context<'_>, r: &Resource, term: &FilterTerm) -> Result<bool, Failure> {
    let hit = match &term.value {
        FilterValue::Range(from, to) => {
            let stamp = match term.field.as_str() {
                "metadata_modified" => ckan_time(&r.updated_at),
                "metadata_created" => ckan_time(&r.created_at),
                other => {
                    return Err(Failure::SearchQuery(format!(
                        "{other} cannot be filtered by a range; metadata_modified and metadata_created can"
                    )));
                }
            };
            from.as_ref().is_none_or(|f| stamp.as_str() >= f.as_str())
                && to.as_ref().is_none_or(|t| stamp.as_str() <= t.as_str())
        }
        FilterValue::Exact(value) => {
            let values = field_values(ctx, r, &term.field).ok_or_else(|| {
                Failure::SearchQuery(format!(
                    "undefined field {:?} in fq; filter by organization, groups, tags, res_format, \
                     license_id, open_type, update_cycle, name, id, dataset_type, metadata_modified, \
                     metadata_created",
                    term.field
                ))
            })?;
            value == "*" || values.iter().any(|v| v.eq_ignore_ascii_case(value))
        }
    };
    Ok(hit != term.negated)
}

/// One key of `sort`.
#[derive(Clone, Copy)]
enum SortKey {
    Score,
    Modified,
    Created,
    Name,
    Title,
}

fn parse_sort(sort: &str) -> Result<Vec<(SortKey, bool)>, Failure> {
    sort.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|part| {
            let mut words = part.split_whitespace();
            let field = words.next().unwrap_or_default();
            let descending = match words.next().unwrap_or("asc") {
                "asc" => false,
                "desc" => true,
                other => return Err(Failure::SearchQuery(format!("sort direction {other:?} is not asc or desc"))),
            };
            let key = match field {
                "score" => SortKey::Score,
                "metadata_modified" => SortKey::Modified,
                "metadata_created" => SortKey::Created,
                "name" | "id" => SortKey::Name,
                "title_string" | "title" => SortKey::Title,
                other => {
                    return Err(Failure::SearchQuery(format!(
                        "cannot sort by {other:?}; sort by score, metadata_modified, metadata_created, name or title_string"
                    )));
                }
            };
            Ok((key, descending))
        })
        .collect()
}

const DEFAULT_SORT: &str = "score desc, metadata_modified desc";
const FACET_FIELDS: [&str; 6] = [
    "organization",
    "groups",
    "tags",
    "res_format",
    "license_id",
    "open_type",
];

async fn package_search(ctx: &Context<'_>, p: &Params) -> Outcome {
    let q = p.text("q")?.unwrap_or_default();
    let words = if q.trim() == "*:*" {
        Vec::new()
    } else {
        catalog::search_words(&q)
    };
    let mut clauses = parse_fq(&p.text("fq")?.unwrap_or_default())?;
    for fq in p.list("fq_list")?.unwrap_or_default() {
        clauses.extend(parse_fq(&fq)?);
    }
    let rows = p.natural("rows", Some(10))?.unwrap_or(10).min(1000);
    let start = p.natural("start", Some(0))?.unwrap_or(0);
    let sort_text = p.text("sort")?.filter(|s| !s.trim().is_empty());
    let sort = parse_sort(sort_text.as_deref().unwrap_or(DEFAULT_SORT))?;
    let facet_fields = if p.boolean("facet", true)? {
        p.list("facet.field")?.unwrap_or_default()
    } else {
        Vec::new()
    };
    let facet_limit = match p.0.get("facet.limit") {
        // CKAN: a negative limit means no limit.
        Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n < 0) => None,
        Some(Value::String(s)) if s.trim().starts_with('-') => None,
        _ => p.natural("facet.limit", Some(50))?,
    };
    let facet_mincount = p.natural("facet.mincount", Some(1))?.unwrap_or(1);

    let datasets = ctx.state.catalog.open_datasets().await?;
    let mut matched: Vec<(i64, &Resource)> = Vec::new();
    for r in &datasets {
        let score = if words.is_empty() {
            1
        } else {
            catalog::relevance(r, &words)
        };
        if score == 0 {
            continue;
        }
        let mut keep = true;
        for clause in &clauses {
            let mut any = false;
            for term in clause {
                if term_matches(ctx, r, term)? {
                    any = true;
                    break;
                }
            }
            if !any {
                keep = false;
                break;
            }
        }
        if keep {
            matched.push((score, r));
        }
    }
    matched.sort_by(|(sa, a), (sb, b)| {
        for (key, descending) in &sort {
            let order = match key {
                SortKey::Score => sa.cmp(sb),
                SortKey::Modified => a.updated_at.cmp(&b.updated_at),
                SortKey::Created => a.created_at.cmp(&b.created_at),
                SortKey::Name => a.code.cmp(&b.code),
                SortKey::Title => a.meta.name.cmp(&b.meta.name),
            };
            let order = if *descending { order.reverse() } else { order };
            if order.is_ne() {
                return order;
            }
        }
        a.code.cmp(&b.code)
    });

    let mut facets = Map::new();
    let mut search_facets = Map::new();
    for field in &facet_fields {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        if FACET_FIELDS.contains(&field.as_str()) {
            for (_, r) in &matched {
                let mut values = field_values(ctx, r, field).unwrap_or_default();
                values.sort();
                values.dedup();
                for value in values {
                    *counts.entry(value).or_default() += 1;
                }
            }
        }
        let mut ranked: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n >= facet_mincount).collect();
        ranked.sort_by(|(va, na), (vb, nb)| nb.cmp(na).then_with(|| va.cmp(vb)));
        if let Some(limit) = facet_limit {
            ranked.truncate(limit);
        }
        let display = |value: &str| -> String {
            match field.as_str() {
                "organization" => matched
                    .iter()
                    .find(|(_, r)| organization_name(&r.meta.provider_code) == value)
                    .map(|(_, r)| r.provider_name.clone())
                    .unwrap_or_else(|| value.to_string()),
                "groups" => Classification::parse(value)
                    .map(|c| c.label_zh().to_string())
                    .unwrap_or_else(|| value.to_string()),
                "open_type" => value
                    .parse::<exchange_core::OpenType>()
                    .map(|t| t.label_zh().to_string())
                    .unwrap_or_else(|_| value.to_string()),
                _ => value.to_string(),
            }
        };
        facets.insert(
            field.clone(),
            Value::Object(ranked.iter().map(|(v, n)| (v.clone(), json!(n))).collect()),
        );
        search_facets.insert(
            field.clone(),
            json!({
                "title": field,
                "items": ranked
                    .iter()
                    .map(|(v, n)| json!({"name": v, "display_name": display(v), "count": n}))
                    .collect::<Vec<_>>(),
            }),
        );
    }
    let count = matched.len();
    let results: Vec<Value> = matched
        .iter()
        .skip(start)
        .take(rows)
        .map(|(_, r)| package_dict(ctx, r))
        .collect();
    Ok(json!({
        "count": count,
        "sort": sort_text.as_deref().unwrap_or(DEFAULT_SORT),
        "facets": facets,
        "search_facets": search_facets,
        "results": results,
    }))
}

/// Applies `limit` and `offset` to a list.
fn page<T>(items: Vec<T>, p: &Params) -> Result<Vec<T>, Failure> {
    let offset = p.natural("offset", Some(0))?.unwrap_or(0);
    let limit = p.natural("limit", None)?;
    Ok(items
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .collect())
}

async fn open_dataset(ctx: &Context<'_>, id: &str) -> Result<Resource, Failure> {
    match ctx.state.catalog.open_dataset(id).await {
        Ok(r) => Ok(r),
        Err(catalog::Error::NotFound { .. }) => Err(Failure::NotFound("Dataset not found".into())),
        Err(e) => Err(e.into()),
    }
}

/// The organizations: (code, title, datasets), by name.
fn organizations(datasets: &[Resource]) -> Vec<(String, String, Vec<&Resource>)> {
    let mut by_code: BTreeMap<String, (String, String, Vec<&Resource>)> = BTreeMap::new();
    for r in datasets {
        by_code
            .entry(organization_name(&r.meta.provider_code))
            .or_insert_with(|| (r.meta.provider_code.clone(), r.provider_name.clone(), Vec::new()))
            .2
            .push(r);
    }
    by_code.into_values().collect()
}

/// Sorts list dicts as CKAN's `sort` asks: `name`, `title` or `package_count`, asc or desc.
fn sort_list(dicts: &mut [Value], sort: Option<String>) -> Result<(), Failure> {
    let sort = sort.unwrap_or_else(|| "name asc".into());
    let mut words = sort.split_whitespace();
    let field = words.next().unwrap_or("name").to_string();
    let descending = match words.next().unwrap_or("asc") {
        "asc" => false,
        "desc" => true,
        _ => return Err(Failure::invalid("sort", format!("cannot sort by {sort:?}"))),
    };
    let field = match field.as_str() {
        "name" | "title" | "package_count" => field,
        "packages" => "package_count".to_string(),
        _ => {
            return Err(Failure::invalid(
                "sort",
                "sort by name, title or package_count, with asc or desc",
            ));
        }
    };
    dicts.sort_by(|a, b| {
        let order = match field.as_str() {
            "package_count" => a[&field].as_u64().cmp(&b[&field].as_u64()),
            _ => a[&field].as_str().cmp(&b[&field].as_str()),
        };
        if descending { order.reverse() } else { order }
    });
    Ok(())
}

fn names_or_dicts(dicts: Vec<Value>, all_fields: bool) -> Value {
    if all_fields {
        Value::Array(dicts)
    } else {
        Value::Array(dicts.into_iter().map(|d| d["name"].clone()).collect())
    }
}

async fn run(ctx: &Context<'_>, action: &str, p: &Params) -> Outcome {
    match action {
        "package_list" => {
            let names: Vec<Value> = ctx
                .state
                .catalog
                .open_datasets()
                .await?
                .into_iter()
                .map(|r| Value::String(r.code))
                .collect();
            Ok(Value::Array(page(names, p)?))
        }
        "package_show" => {
            let r = open_dataset(ctx, &p.id()?).await?;
            Ok(package_dict(ctx, &r))
        }
        "package_search" => package_search(ctx, p).await,
        "organization_list" => {
            let datasets = ctx.state.catalog.open_datasets().await?;
            let only = p.list("organizations")?;
            let mut dicts: Vec<Value> = organizations(&datasets)
                .into_iter()
                .filter(|(code, _, _)| {
                    only.as_ref()
                        .is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(code)))
                })
                .map(|(code, title, list)| organization_dict(&code, &title, list.len()))
                .collect();
            sort_list(&mut dicts, p.text("sort")?)?;
            Ok(names_or_dicts(page(dicts, p)?, p.boolean("all_fields", false)?))
        }
        "organization_show" => {
            let id = p.id()?;
            let datasets = ctx.state.catalog.open_datasets().await?;
            let (code, title, list) = organizations(&datasets)
                .into_iter()
                .find(|(code, _, _)| code.eq_ignore_ascii_case(&id))
                .ok_or_else(|| Failure::NotFound("Organization was not found.".into()))?;
            let mut dict = organization_dict(&code, &title, list.len());
            if p.boolean("include_datasets", false)? {
                dict["packages"] = list.iter().take(1000).map(|r| package_dict(ctx, r)).collect();
            }
            dict["users"] = json!([]);
            Ok(dict)
        }
        "group_list" => {
            let datasets = ctx.state.catalog.open_datasets().await?;
            let only = p.list("groups")?;
            let mut dicts: Vec<Value> = GROUPS
                .iter()
                .filter(|g| only.as_ref().is_none_or(|names| names.iter().any(|n| n == g.code())))
                .map(|g| group_dict(*g, datasets.iter().filter(|r| r.meta.classification == *g).count()))
                .collect();
            sort_list(&mut dicts, p.text("sort")?)?;
            Ok(names_or_dicts(page(dicts, p)?, p.boolean("all_fields", false)?))
        }
        "group_show" => {
            let id = p.id()?;
            let group = GROUPS
                .into_iter()
                .find(|g| g.code() == id)
                .ok_or_else(|| Failure::NotFound("Group was not found.".into()))?;
            let datasets = ctx.state.catalog.open_datasets().await?;
            let members: Vec<&Resource> = datasets.iter().filter(|r| r.meta.classification == group).collect();
            let mut dict = group_dict(group, members.len());
            if p.boolean("include_datasets", false)? {
                dict["packages"] = members.iter().take(1000).map(|r| package_dict(ctx, r)).collect();
            }
            dict["users"] = json!([]);
            Ok(dict)
        }
        "resource_show" => {
            let id = p.id()?;
            let not_found = || Failure::NotFound("Resource was not found.".into());
            let (code, format) = id.rsplit_once('-').ok_or_else(not_found)?;
            let (position, format) = DOWNLOAD_FORMATS
                .iter()
                .enumerate()
                .find(|(_, f)| f.code == format)
                .ok_or_else(not_found)?;
            let r = open_dataset(ctx, code).await.map_err(|e| match e {
                Failure::NotFound(_) => not_found(),
                other => other,
            })?;
            if !downloadable(ctx.state, &r) {
                return Err(not_found());
            }
            Ok(resource_dict(ctx, &r, position, format))
        }
        "status_show" => Ok(json!({
            "site_title": "汇通公共数据开放平台",
            "site_description": "政府部门依法向社会开放的公共数据（Huitong open data）",
            "site_url": ctx.base,
            "ckan_version": CKAN_VERSION,
            "error_emails_to": Value::Null,
            "locale_default": "zh_Hans_CN",
            "extensions": [],
        })),
        "site_read" => Ok(Value::Bool(true)),
        "help_show" => {
            let name = p.text("name")?.unwrap_or_default();
            ACTIONS
                .iter()
                .find(|(action, _)| *action == name)
                .map(|(_, help)| Value::String((*help).to_string()))
                .ok_or_else(|| Failure::NotFound("Action function not found".into()))
        }
        other => Err(Failure::BadRequest(format!("Action name not known: {other}"))),
    }
}

async fn serve(req: HttpRequest, state: web::Data<AppState>, action: String, body: web::Bytes) -> HttpResponse {
    let base = base_url(&req);
    if action == "datastore_search" {
        return super::datastore::serve(&req, &state, parameters(&req, &body).map(Params), &base).await;
    }
    let outcome = match parameters(&req, &body) {
        Ok(params) => {
            let ctx = Context {
                state: &state,
                base: base.clone(),
            };
            run(&ctx, &action, &Params(params)).await
        }
        Err(failure) => Err(failure),
    };
    respond(&base, &action, outcome)
}

/// One documented operation of the Action API: both paths, by GET and by POST, call [`serve`].
macro_rules! ckan_operation {
    ($(#[$doc:meta])* $name:ident, $method:ident, $path:literal $(, $body:expr)?) => {
        $(#[$doc])*
        #[utoipa::path(
            $method,
            path = $path,
            tag = "ckan",
            security((), ("bearer" = [])),
            params(
                ("action" = String, Path, description = "The action: `package_list`, `package_show`, \
                    `package_search`, `organization_list`, `organization_show`, `group_list`, `group_show`, \
                    `resource_show`, `datastore_search`, `status_show`, `site_read`, `help_show`. Its parameters (see `help_show` \
                    and docs/open-data.md) come as query parameters (GET) or a JSON object (POST)."),
            ),
            $(request_body(content = Option<Object>, description = $body, content_type = "application/json"),)?
            responses(
                (status = 200, description = "The action's result in CKAN's envelope", body = CkanAnswer),
                (status = 400, description = "An unknown action, or a POST body that is not a JSON object: CKAN's \
                    bare JSON string, e.g. `\"Bad request - Action name not known: foo\"`", body = String,
                    content_type = "application/json"),
                (status = 404, description = "`Not Found Error`: no such dataset, organization, group or resource \
                    (a dataset that is not open is not found)", body = CkanErrorAnswer),
                (status = 401, description = "`Authorization Error` (`datastore_search`): the key presented is not \
                    valid (every other action reads no credential)", body = CkanErrorAnswer),
                (status = 403, description = "`Authorization Error` (`datastore_search`): the dataset is open on \
                    application only; call with a developer key whose application was approved", body = CkanErrorAnswer),
                (status = 409, description = "`Validation Error` (a parameter is missing or malformed; it is a key \
                    of `error`) or `Search Query Error` (`fq` or `sort` not understood)", body = CkanErrorAnswer),
                (status = 429, description = "`Rate Limit Error` (`datastore_search`): the caller's open-data quota \
                    is used up; `Retry-After` says when to come back", body = CkanErrorAnswer),
                (status = 500, description = "`Internal Server Error`: a fault of the server; the cause is in its log",
                    body = CkanErrorAnswer),
            )
        )]
        pub async fn $name(
            req: HttpRequest,
            state: web::Data<AppState>,
            path: web::Path<String>,
            body: web::Bytes,
        ) -> HttpResponse {
            serve(req, state, path.into_inner(), body).await
        }
    };
}

ckan_operation!(
    /// `GET /api/3/action/{action}`: a CKAN action, parameters in the query string.
    action_get, get, "/api/3/action/{action}"
);
ckan_operation!(
    /// `POST /api/3/action/{action}`: a CKAN action, parameters in a JSON object.
    action_post, post, "/api/3/action/{action}",
    "The action's parameters as a JSON object, e.g. `{\"id\": \"1-02-001-000001\"}`"
);
ckan_operation!(
    /// `GET /api/action/{action}`: the same at the unversioned path (as `ckanapi` calls it).
    unversioned_get, get, "/api/action/{action}"
);
ckan_operation!(
    /// `POST /api/action/{action}`: the same at the unversioned path (as `ckanapi` calls it).
    unversioned_post, post, "/api/action/{action}",
    "The action's parameters as a JSON object, e.g. `{\"id\": \"1-02-001-000001\"}`"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fq_terms_keep_quotes_and_ranges_together() {
        let clauses = parse_fq(
            "organization:\"scjgj\" -groups:theme metadata_modified:[2020-01-01T00:00:00Z TO *] +res_format:CSV",
        )
        .unwrap();
        assert!(clauses.iter().all(|c| c.len() == 1));
        let terms: Vec<&FilterTerm> = clauses.iter().map(|c| &c[0]).collect();
        assert_eq!(terms.len(), 4);
        assert!(matches!(&terms[0].value, FilterValue::Exact(v) if v == "scjgj"));
        assert!(terms[1].negated && terms[1].field == "groups");
        assert!(matches!(&terms[2].value, FilterValue::Range(Some(from), None) if from == "2020-01-01T00:00:00"));
        assert!(!terms[3].negated && terms[3].field == "res_format");
    }

    #[test]
    fn or_joins_the_terms_beside_it_into_one_clause() {
        let clauses =
            parse_fq("organization:a OR organization:b metadata_modified:[2020-01-01T00:00:00 TO *]").unwrap();
        assert_eq!(clauses.len(), 2);
        assert_eq!(clauses[0].len(), 2);
        assert_eq!(clauses[1].len(), 1);
        for fq in [
            "OR organization:a",
            "organization:a OR",
            "organization:a OR OR organization:b",
        ] {
            assert!(matches!(parse_fq(fq), Err(Failure::SearchQuery(_))), "{fq}");
        }
    }

    #[test]
    fn malformed_fq_and_sort_are_search_query_errors() {
        for fq in [
            "organization",
            "name:\"open",
            "metadata_modified:[NOW-1DAY TO *]",
            "groups:(a OR b)",
        ] {
            assert!(matches!(parse_fq(fq), Err(Failure::SearchQuery(_))), "{fq}");
        }
        for sort in ["views desc", "name sideways"] {
            assert!(matches!(parse_sort(sort), Err(Failure::SearchQuery(_))), "{sort}");
        }
    }
}
