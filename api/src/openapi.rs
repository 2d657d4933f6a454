//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/openapi.json`, and the
//! browsable Swagger UI at `/api/docs` (its assets are compiled into the binary: it works on an
//! air-gapped network).
//!
//! Each handler carries `#[utoipa::path(...)]`; each request and response type derives
//! `ToSchema` or `IntoParams`. Adding an endpoint: annotate its handler, add it to
//! [`startup::endpoints`](crate::startup::endpoints), and name it in `paths(...)` below. The
//! `openapi` test fails while a registered endpoint is missing from this document.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use crate::problem::Problem;
use crate::routes;

/// The API's description, gathered from the handlers' attributes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "汇通 Huitong API",
        description = "The Huitong (汇通) government data-sharing and exchange platform: the resource \
            catalog (目录), demands and grants (供需对接), the exchange API (共享交换) with policy, masking, \
            quotas and a tamper-evident audit trail, connectors, and credentials.\n\n\
            Authenticate with `Authorization: Bearer <credential>`: an API key (`ht_…`) or an OAuth2 \
            client-credentials token (JWT). Every error is `application/problem+json` (RFC 9457) with \
            a stable `code` and, when one is to blame, the offending `field`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        document,
        routes::health::health,
        routes::exchange::get_record,
        routes::exchange::changes,
        routes::history::record_history,
        routes::history::diff,
        routes::exchange::batch,
        routes::exchange::verify,
        routes::query::records,
        routes::query::export,
        routes::lab::views,
        routes::lab::query,
        routes::audit::list,
        routes::audit::verify,
        routes::oauth::token,
        routes::session::login,
        routes::session::whoami,
        routes::session::logout,
        routes::catalog::list_departments,
        routes::catalog::save_department,
        routes::catalog::list_resources,
        routes::catalog::create_resource,
        routes::catalog::get_resource,
        routes::catalog::update_resource,
        routes::catalog::resource_history,
        routes::catalog::resource_action,
        routes::catalog::list_grants,
        routes::catalog::list_responsibilities,
        routes::catalog::create_responsibility,
        routes::catalog::dcat,
        routes::demands::list,
        routes::demands::create,
        routes::demands::get,
        routes::demands::decide,
        routes::demands::object,
        routes::demands::arbitrate,
        routes::objections::list,
        routes::objections::create,
        routes::objections::get,
        routes::objections::confirm,
        routes::objections::correct,
        routes::objections::resolve,
        routes::credentials::list,
        routes::credentials::create,
        routes::credentials::revoke,
        routes::credentials::rotate,
        routes::connectors::list,
        routes::connectors::save,
        routes::connectors::get,
        routes::connectors::runs,
        routes::connectors::start,
        routes::connectors::run,
        routes::connectors::quarantine,
        routes::libraries::list,
        routes::libraries::get,
        routes::libraries::lineage,
        routes::libraries::conflicts,
        routes::quality::list,
        routes::quality::evaluate,
        routes::quality::library,
        routes::quality::resource,
        crate::quality::page::ranking_page,
        crate::quality::page::detail_page,
        crate::kpi::route::kpis,
        crate::console::pages::home,
        crate::console::pages::kpis,
        crate::console::login::form,
        crate::console::login::submit,
        crate::console::login::logout,
        routes::themes::list,
        routes::themes::declare,
        routes::themes::get,
        routes::themes::materialize,
        routes::open::download,
        routes::open::records,
        routes::open::apply,
        routes::open::sign_up,
        routes::open::me,
        routes::open::applications,
        routes::open::decide,
        crate::console::applications::answer,
        crate::portal::home,
        crate::portal::search,
        crate::portal::dataset,
        crate::portal::apply,
        crate::portal::developer,
        crate::portal::sign_up,
        crate::portal::login,
        crate::portal::logout,
        crate::portal::rotate,
        routes::open_catalog::list,
        routes::open_catalog::get,
        routes::open_catalog::dcat_jsonld,
        routes::open_catalog::dcat_turtle,
        routes::ckan::action_get,
        routes::ckan::action_post,
        routes::ckan::unversioned_get,
        routes::ckan::unversioned_post,
    ),
    components(
        schemas(Problem),
        responses(
            BadPath,
            Unauthenticated,
            Forbidden,
            NotFound,
            StateConflict,
            Invalid,
            QuotaExceeded,
            AuditUnavailable,
            PolicyRefused,
            ResourceMissing,
            ExchangeFault,
            Internal
        )
    ),
    modifiers(&BearerAuth, &OperationIds),
    security(("bearer" = [])),
    tags(
        (name = "catalog", description = "目录 The resource catalog: departments, resources and their lifecycle \
            (draft → submitted → published → retired), grants, responsibility lists, the DCAT-AP export."),
        (name = "demands", description = "供需对接 Demands: a consumer department asks, the responsible department \
            answers (an approval creates a grant), the consumer may object once, the platform arbitrates."),
        (name = "objections", description = "异议处理 Objections: a consumer disputes a record or a field it reads; the field's \
            authoritative department (一数一源), or the resource's provider, confirms it or corrects it (by an audited \
            manual correction, or at the source through a connector run) within a deadline; every step is timestamped."),
        (name = "exchange", description = "共享交换 The exchange API for government consumers: every call decided by \
            policy from the catalog's grants, masked by sensitivity, held to its quota, and audited (全程留痕)."),
        (name = "connectors", description = "Connectors (数据源接入): configuration, run history, quarantined rows, manual runs."),
        (name = "themes", description = "主题库/专题库 Themed libraries: SQL over the base libraries (and other themes), \
            materialized into a library of their own on change, on a cycle or by hand; catalogued and served like a base library."),
        (name = "lab", description = "数据实验室 The data lab: read-only SQL over views of the resources policy lets the caller read \
            (granted items only, masked, row-filtered); audited like every exchange call."),
        (name = "audit", description = "审计 The audit trail (全程留痕、可追溯): the calls each reader may see, as JSON pages or CSV, and the \
            hash chain's check."),
        (name = "credentials", description = "Credentials (凭证): API keys with a role and a department; issue, rotate (轮换), revoke."),
        (name = "authentication", description = "身份认证 OAuth2 client credentials (an API key exchanged for a short-lived \
            JWT access token) and the web console's session cookie."),
        (name = "libraries", description = "基础库、主题库 The libraries: schemas with each field's authoritative department \
            (一数一源), a record's per-field lineage (数据血缘), and values that lost conflicts between sources."),
        (name = "quality", description = "数据质量 Data quality: each library and resource scored 0–100 on completeness, validity, \
            uniqueness, consistency and timeliness after every committed run, with the rule behind each score and the trend \
            across runs (docs/quality.md)."),
        (name = "open data", description = "数据开放 The open-data API for the public and developers (社会开发者): open datasets' \
            open items (L1 plain, L2 masked; L3/L4 never) listed, searched, read and downloaded as CSV, JSON, NDJSON, Parquet or XLSX, anonymously \
            under a per-address quota or with a developer key; sign-up; applications for conditionally open datasets (有条件开放) \
            and the providers' answers; the DCAT-AP 2 export. Audited like exchange calls (docs/open-data.md)."),
        (name = "kpis", description = "考核指标 The assessment KPIs — 按需共享率 on-demand sharing, 开放率 opening, 使用率 usage, \
            电子证照利用率 e-license utilisation — and calls per resource, per department and per month (docs/console.md)."),
        (name = "console", description = "The web console's pages (HTML, Chinese first, `?lang=en`): the login, the home page \
            of a department officer or of platform staff, the KPI charts, the data quality report with its charts."),
        (name = "portal", description = "开放数据门户 The open-data portal's pages (HTML, Chinese first, `?lang=en`): search, \
            browse by theme and department, a dataset's page with preview, quality trend, downloads and API examples, and the \
            developer center (sign-up, login, applications)."),
        (name = "ckan", description = "The CKAN-compatible Action API over the open catalog, for CKAN clients and harvesters: \
            CKAN's envelope, parameters and errors, not problem+json (docs/open-data.md)."),
        (name = "health", description = "Liveness and the libraries' served versions."),
        (name = "docs", description = "This document."),
    )
)]
pub struct ApiDoc;

/// The document, serialized once.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serializes"));

/// `GET /api/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "docs",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.as_str())
}

/// The Swagger UI at `/api/docs/`, reading `/api/openapi.json`; its assets are vendored in the
/// binary. The online validator badge is off (it would call out to the internet).
pub fn swagger_ui() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/api/docs/{_:.*}").config(
        utoipa_swagger_ui::Config::new(["/api/openapi.json"])
            .validator_url("none")
            .try_it_out_enabled(true)
            .persist_authorization(false),
    )
}

/// `GET /api/docs` → `/api/docs/`, where the UI is.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/api/docs/"))
        .finish()
}

/// Adds the bearer scheme every protected endpoint uses.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`ht_` + 40 hex characters, issued by the platform admin) or an OAuth2 \
                         client-credentials access token (JWT).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "huitong_session",
                "The web console's session cookie, set by `POST /api/v1/session`.",
            ))),
        );
    }
}

/// Operation ids are the handlers' names, which repeat across modules (`list`, `get`); each
/// becomes `<tag>_<name>` (`credentials_list`), unique as long as names are unique per tag.
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let tag = operation.tags.as_ref().and_then(|t| t.first()).cloned();
                if let (Some(tag), Some(id)) = (tag, operation.operation_id.as_mut())
                    && !id.starts_with(&format!("{tag}_"))
                {
                    *id = format!("{tag}_{id}");
                }
            }
        }
    }
}

/// The `X-Request-Id` header an audited call may carry.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct RequestIdHeader {
    /// The caller's request id (up to 128 characters), echoed and audited; one is generated
    /// when absent.
    #[param(rename = "X-Request-Id")]
    x_request_id: Option<String>,
}

// Reusable problem responses. Each is a `Problem` in `application/problem+json`; the
// description names the codes it carries.

/// `bad_path`: a path parameter does not parse (an id that is not a number).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct BadPath(Problem);

/// `unauthenticated`: no `Authorization: Bearer`, or a credential that is unknown, malformed,
/// expired or revoked.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "`Bearer`"))
)]
#[allow(dead_code)]
pub struct Unauthenticated(Problem);

/// `forbidden`: the caller's role or department may not do this.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Forbidden(Problem);

/// `not_found`: no such entity, or one the caller may not see (`field` names the parameter).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct NotFound(Problem);

/// `invalid_state`: the lifecycle does not allow this now; `conflict`: a unique code taken.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct StateConflict(Problem);

/// `validation_failed` (a rule is broken; `errors` lists every field), `invalid_body` (the
/// JSON body does not parse: unknown or missing field named in `field`, wrong type) or
/// `invalid_query` (a query parameter does not parse or is out of range).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Invalid(Problem);

/// `quota_exceeded`: over the credential's or the grant's quota (限流), per second or per day;
/// `detail` says whose and which.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(
        ("Retry-After" = u64, description = "Seconds to wait (a daily quota: until midnight China Standard Time)"),
        ("RateLimit-Limit" = u64, description = "The allowance that ran out: the burst of a per-second quota, or the calls of a daily one"),
        ("RateLimit-Policy" = String, description = "`<limit>;w=<1|86400>`: the allowance and its window in seconds"),
        ("RateLimit-Remaining" = u32, description = "0"),
        ("RateLimit-Reset" = u64, description = "Seconds until the quota refills"),
    )
)]
#[allow(dead_code)]
pub struct QuotaExceeded(Problem);

/// `audit_unavailable`: the call could not be recorded in the audit trail, so it was not served.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct AuditUnavailable(Problem);

/// Refused by policy (策略拒绝): `no_grant` (conditional share without an active grant),
/// `grant_expired`, `not_shared` (不予共享), `role_forbidden` (platform staff and open-data
/// developers do not consume), `no_department`.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct PolicyRefused(Problem);

/// `resource_not_found` (`field: resource_code`): no resource has that code;
/// `resource_not_served`: it is catalogued but served from no library.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct ResourceMissing(Problem);

/// `internal`: a fault of the server (the cause is in its log); `grant_filter_invalid`: the row
/// filter of the caller's grant does not compile, so the call is refused (fail closed).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct ExchangeFault(Problem);

/// `internal`: a fault of the server; the cause is in its log, not in the answer.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Internal(Problem);

// Shapes of answers the handlers build as JSON values; they exist for the document only.

/// `{"items": [...]}`: a list.
#[derive(Serialize, ToSchema)]
pub struct Items<T: ToSchema> {
    /// The entries.
    pub items: Vec<T>,
}

/// The answer of `GET /health`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "version": "0.1.0",
    "libraries": {"population": {"version": 2, "records": 20163}}}))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// Each library by name.
    pub libraries: std::collections::BTreeMap<String, LibraryHealth>,
}

/// A library's served state.
#[derive(Serialize, ToSchema)]
pub struct LibraryHealth {
    /// The library version served (null if it cannot be read).
    pub version: Option<i64>,
    /// Current records (null if it cannot be read).
    pub records: Option<u64>,
}

/// One record as the caller may see it (`GET …/records/{key}`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"resource_code": "1-01-001-000001", "library_version": 2,
    "record": {"id_number": "330102198807150031", "name": "周**", "gender": "男",
               "birth_date": "1988-07-15", "region_code": "330102",
               "address": "浙江省杭州市上城区****", "phone": null},
    "masked": ["name", "address", "phone"]}))]
pub struct RecordAnswer {
    /// The resource asked.
    pub resource_code: String,
    /// The library version the record was last changed in (up to `as_of_version` when asked).
    pub library_version: i64,
    /// The version asked for with `as_of_version`, or the one current at `as_of`; absent for the
    /// current record.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub as_of_version: Option<i64>,
    /// The items the caller may see, by name; masked (脱敏) where not granted plain; null where
    /// empty.
    pub record: std::collections::BTreeMap<String, Option<String>>,
    /// The items returned masked.
    pub masked: Vec<String>,
}

/// Every version of one record (`GET …/records/{key}/history`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"resource_code": "1-01-001-000001", "versions": [
    {"version": 1, "op": "insert", "source": "GAJ", "ingested_at": "2026-11-23T08:00:00.123456Z",
     "record": {"id_number": "330102198807150031", "name": "周**", "address": "浙江省杭州市上城区****"}},
    {"version": 4, "op": "update", "source": "GAJ", "ingested_at": "2026-11-24T08:00:00.654321Z",
     "record": {"id_number": "330102198807150031", "name": "周**", "address": "浙江省杭州市西湖区****"}}],
    "masked": ["name", "address"]}))]
pub struct HistoryAnswer {
    /// The resource asked.
    pub resource_code: String,
    /// The record's versions, oldest first.
    pub versions: Vec<RecordVersionView>,
    /// The items returned masked.
    pub masked: Vec<String>,
}

/// One version of a record.
#[derive(Serialize, ToSchema)]
pub struct RecordVersionView {
    /// The library version that wrote it.
    pub version: i64,
    /// `insert`, `update` or `delete`.
    pub op: HistoryOp,
    /// The department whose data the record is (for a delete, the one that reported it).
    pub source: String,
    /// When the library wrote it (RFC 3339, UTC).
    pub ingested_at: String,
    /// The record after it, as for `records/{key}`; null after a delete.
    pub record: Option<std::collections::BTreeMap<String, Option<String>>>,
}

/// What a version, or a net change, did to a record.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryOp {
    /// The key appeared (新增).
    Insert,
    /// The record changed (变更).
    Update,
    /// The key was deleted (删除).
    Delete,
}

/// A page of a diff between two versions (`GET …/diff`).
#[derive(Serialize, ToSchema)]
pub struct DiffAnswer {
    /// The resource asked.
    pub resource_code: String,
    /// As asked.
    pub from_version: i64,
    /// As asked.
    pub to_version: i64,
    /// The net change of each key, in key order.
    pub changes: Vec<DiffChange>,
    /// The cursor of the next page; null at the end.
    pub next_cursor: Option<String>,
    /// The items returned masked.
    pub masked: Vec<String>,
}

/// The net change of one key between two versions.
#[derive(Serialize, ToSchema)]
pub struct DiffChange {
    /// `insert`, `update` or `delete`.
    pub op: HistoryOp,
    /// The record's key.
    pub key: String,
    /// The library version of the key's last change up to `to_version`.
    pub version: i64,
    /// The library version of the record `before` is (null for an insert).
    pub before_version: Option<i64>,
    /// The record at `from_version`, as for `records/{key}`; null for an insert.
    pub before: Option<std::collections::BTreeMap<String, Option<String>>>,
    /// The record at `to_version`; null for a delete.
    pub after: Option<std::collections::BTreeMap<String, Option<String>>>,
}

/// A page of the change feed (`GET …/changes`).
#[derive(Serialize, ToSchema)]
pub struct ChangesAnswer {
    /// The resource asked.
    pub resource_code: String,
    /// As asked.
    pub since_version: i64,
    /// The library version this feed pages through; ask again from it when done.
    pub as_of_version: i64,
    /// The net change of each key.
    pub changes: Vec<Change>,
    /// The cursor of the next page; null at the end.
    pub next_cursor: Option<String>,
    /// The items returned masked.
    pub masked: Vec<String>,
}

/// The net change of one key.
#[derive(Serialize, ToSchema)]
pub struct Change {
    /// `upsert` or `delete`.
    pub op: ChangeOp,
    /// The record's key.
    pub key: String,
    /// The library version of the change.
    pub version: i64,
    /// The current record, as for `records/{key}`; null for a deletion.
    pub record: Option<std::collections::BTreeMap<String, Option<String>>>,
}

/// What happened to a key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// Inserted or changed.
    Upsert,
    /// Deleted.
    Delete,
}

/// A grant with its state as of now.
#[derive(Serialize, ToSchema)]
pub struct GrantView {
    /// The grant.
    #[serde(flatten)]
    pub grant: catalog::Grant,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

/// A newly issued key: shown this once, never retrievable again.
#[derive(Serialize, ToSchema)]
pub struct IssuedCredential {
    /// The stored credential.
    pub credential: policy::Credential,
    /// The full key (`ht_…`), to hand to its holder now.
    pub key: String,
}

/// A connector as shown by the API: its configuration (secrets only as references), whether
/// it runs now, when it runs next, and its last run.
#[derive(Serialize, ToSchema)]
pub struct ConnectorView {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Source kind (`sqlite`, `postgres`, `mysql`, `csv`, `excel`, `http`, `huitong`, …).
    pub kind: String,
    /// The department whose source it reads.
    pub department_code: String,
    /// The resource it feeds.
    pub resource_code: String,
    /// `full` or `incremental`; null if the configuration does not parse.
    pub mode: Option<Value>,
    /// `"catalog"`, `"manual"` or `{"every": seconds}`; null if the configuration does not parse.
    pub schedule: Option<Value>,
    /// The configuration as saved (see docs/connectors.md).
    pub config: Value,
    /// Whether a run is under way.
    pub running: bool,
    /// When the scheduler runs it next.
    pub next_run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The latest run.
    pub last_run: Option<catalog::SyncRun>,
}

/// A themed library as shown by the API: its declaration, its library's served version and
/// record count, and (from `GET /api/v1/themes/{name}`) its latest materializations.
#[derive(Serialize, ToSchema)]
pub struct ThemeView {
    /// The declaration and its bookkeeping.
    #[serde(flatten)]
    pub theme: catalog::Theme,
    /// The theme library as served.
    pub library: LibraryHealth,
    /// Materializations, newest first (only from `GET /api/v1/themes/{name}`).
    #[schema(required = false)]
    pub materializations: Vec<catalog::Materialization>,
}

/// A connector's run history.
#[derive(Serialize, ToSchema)]
pub struct RunsAnswer {
    /// The connector's name.
    pub connector: String,
    /// Runs, newest first.
    pub items: Vec<catalog::SyncRun>,
}

/// The rows a run rejected.
#[derive(Serialize, ToSchema)]
pub struct QuarantineAnswer {
    /// The run.
    pub run: i64,
    /// The rejected rows.
    pub items: Vec<catalog::QuarantinedRow>,
}

/// One result of `records:batch`.
#[derive(Serialize, ToSchema)]
pub struct BatchResult {
    /// The key as sent.
    pub key: String,
    /// `found`, `not_found` (no record, or one outside the grant's row filter) or `invalid_key`.
    pub status: BatchStatus,
    /// Why the key is invalid (`invalid_key` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub detail: Option<String>,
    /// The library version the record was last changed in (`found` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub library_version: Option<i64>,
    /// The record, as for `records/{key}` (`found` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub record: Option<std::collections::BTreeMap<String, Option<String>>>,
}

/// What became of one key of a batch.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// The record is returned.
    Found,
    /// No record the caller may see.
    NotFound,
    /// The key is malformed; `detail` says why.
    InvalidKey,
}

/// The answer of `records:batch` (批量查询).
#[derive(Serialize, ToSchema)]
pub struct BatchAnswer {
    /// The resource asked.
    pub resource_code: String,
    /// Keys found.
    pub found: i64,
    /// One per key, in request order.
    pub results: Vec<BatchResult>,
    /// The items returned masked.
    pub masked: Vec<String>,
}

/// The answer of `verify` (核验): no data, only whether each claim matches.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"resource_code": "1-01-001-000001", "found": true, "match": false,
    "results": {"birth_date": "match", "name": "no_match"}}))]
pub struct VerifyAnswer {
    /// The resource asked.
    pub resource_code: String,
    /// Whether the caller may see a record for the key.
    pub found: bool,
    /// Whether every claim matches.
    #[serde(rename = "match")]
    pub all_match: bool,
    /// `match` or `no_match` by claimed item.
    pub results: std::collections::BTreeMap<String, VerifyOutcome>,
}

/// One claim's outcome.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOutcome {
    /// The claimed value equals the record's (after normalization).
    Match,
    /// It does not, or there is no record.
    NoMatch,
}

/// A page of `GET …/records` (条件查询).
#[derive(Serialize, ToSchema)]
pub struct RecordsAnswer {
    /// The resource asked.
    pub resource_code: String,
    /// The library version read.
    pub library_version: i64,
    /// The records, each with the items asked (of those the caller may see), masked where not plain.
    pub records: Vec<std::collections::BTreeMap<String, Option<String>>>,
    /// The cursor of the next page; null at the end.
    pub next_cursor: Option<String>,
    /// The items returned masked.
    pub masked: Vec<String>,
}

/// The caller's lab views.
#[derive(Serialize, ToSchema)]
pub struct LabViewsAnswer {
    /// One per resource the caller may read.
    pub views: Vec<LabViewInfo>,
}

/// One lab view.
#[derive(Serialize, ToSchema)]
pub struct LabViewInfo {
    /// The view's name in SQL (`r_` + the resource code, `-` as `_`).
    pub view: String,
    /// The resource behind it.
    pub resource_code: String,
    /// The resource's name.
    pub resource_name: String,
    /// The grant that allows it, if one does.
    pub grant_id: Option<i64>,
    /// Whether the grant's row filter (行过滤) limits the rows.
    pub row_filtered: bool,
    /// The columns the caller may read.
    pub columns: Vec<LabViewColumn>,
}

/// A column of a lab view.
#[derive(Serialize, ToSchema)]
pub struct LabViewColumn {
    /// The data item.
    pub name: String,
    /// Its Chinese label.
    pub label_zh: String,
    /// Always `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether its values are masked (脱敏).
    pub masked: bool,
}

/// The answer of a lab query.
#[derive(Serialize, ToSchema)]
pub struct LabAnswer {
    /// The result's columns, in order.
    pub columns: Vec<LabColumn>,
    /// The rows, each an array in column order (names may repeat, so not objects).
    pub rows: Vec<Vec<Value>>,
    /// Rows returned.
    pub row_count: u64,
    /// Whether rows beyond `max_rows` were cut.
    pub truncated: bool,
    /// The views the query read.
    pub views: Vec<String>,
}

/// A column of a lab result.
#[derive(Serialize, ToSchema)]
pub struct LabColumn {
    /// Its name.
    pub name: String,
    /// Its Arrow data type (`Utf8`, `Int64`, …).
    #[serde(rename = "type")]
    pub kind: String,
}

/// A page of the audit trail.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// The records, oldest first.
    pub items: Vec<policy::audit::AuditRecord>,
    /// Ask again with `after` = this for the next page; null at the end.
    pub next_after: Option<i64>,
}

/// The audit chain's check (链校验).
#[derive(Serialize, ToSchema)]
pub struct AuditChainAnswer {
    /// Records checked.
    pub records: u64,
    /// Whether every link holds.
    pub intact: bool,
    /// The first broken link; null when intact.
    pub first_broken: Option<policy::audit::BrokenLink>,
}

/// The form of `POST /oauth/token` (RFC 6749 §4.4).
#[derive(Serialize, ToSchema)]
pub struct TokenRequest {
    /// `client_credentials`.
    pub grant_type: String,
    /// The key's prefix (`ht_…`, as shown in key lists), unless sent by HTTP Basic.
    #[schema(required = false)]
    pub client_id: Option<String>,
    /// The API key itself, unless sent by HTTP Basic.
    #[schema(required = false)]
    pub client_secret: Option<String>,
    /// Not used: must be absent or empty (a token carries its credential's role and department).
    #[schema(required = false)]
    pub scope: Option<String>,
}

/// An access token (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiJ9.…", "token_type": "Bearer", "expires_in": 3600}))]
pub struct TokenAnswer {
    /// The JWT, for `Authorization: Bearer`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds it is valid.
    pub expires_in: u64,
}

/// An OAuth2 error (RFC 6749 §5.2); the token endpoint answers these instead of problem+json.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": "invalid_client", "error_description": "the client secret is not valid (unknown key)"}))]
pub struct OAuthErrorAnswer {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope` or `server_error`.
    pub error: String,
    /// What happened, for people.
    pub error_description: String,
}

/// A console session (控制台会话).
#[derive(Serialize, ToSchema)]
pub struct SessionAnswer {
    /// The credential logged in.
    pub credential: policy::Credential,
    /// When the session ends (UTC, RFC 3339).
    pub expires_at: String,
}

/// A rotated key (密钥轮换): the new one, shown this once.
#[derive(Serialize, ToSchema)]
pub struct RotatedCredential {
    /// The new credential.
    pub credential: policy::Credential,
    /// Its full key (`ht_…`), to hand to its holder now.
    pub key: String,
    /// The id of the credential it replaces.
    pub replaces: i64,
    /// Until when the old key keeps working; null when it was revoked at once.
    pub old_key_expires_at: Option<String>,
    /// Whether the old key was revoked at once (no grace period).
    pub old_key_revoked: bool,
}

/// A developer signed up (开发者注册): the account and its key, shown this once.
#[derive(Serialize, ToSchema)]
pub struct DeveloperSignedUp {
    /// The account.
    pub developer: catalog::Developer,
    /// The developer's credential (role `open_data_developer`).
    pub credential: policy::Credential,
    /// The full key (`ht_…`), shown this once.
    pub key: String,
    /// When the key ends (UTC, RFC 3339); null: until revoked.
    pub expires_at: Option<String>,
}

/// A developer's account and applications.
#[derive(Serialize, ToSchema)]
pub struct DeveloperAnswer {
    /// The account; null for a developer key issued without one (by an administrator).
    pub developer: Option<catalog::Developer>,
    /// The credential.
    pub credential: policy::Credential,
    /// Its applications for conditionally open datasets, newest first.
    pub applications: Vec<catalog::OpenApplication>,
}
