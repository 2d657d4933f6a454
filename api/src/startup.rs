//! Building the application: open the catalog, libraries, audit writer and quotas, bind the
//! listener, and wire every route in one place.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpRequest, HttpServer, Route, web};
use catalog::Catalog;
use exchange_core::Library;
use exchange_core::schema::LIBRARIES;

use crate::libraries::Libraries;
use policy::{AuditLog, Authenticator, CatalogCache, Quotas, TokenSigner};

use crate::Failure;
use crate::problem::Problem;
use crate::routes;
use crate::settings::Settings;
use crate::sync::SyncService;
use crate::themes::ThemeService;

/// Shared by every request.
pub struct AppState {
    /// The metadata DB.
    pub catalog: Catalog,
    /// The libraries by name: the base libraries and the declared themes.
    pub libraries: Libraries,
    /// The audit writer.
    pub audit: AuditLog,
    /// Per-credential and per-grant quotas.
    pub quotas: Arc<Quotas>,
    /// Open-data quotas of anonymous callers, keyed by client address.
    pub open_anonymous: Arc<Quotas>,
    /// Open-data quotas of developer keys.
    pub open_developers: Arc<Quotas>,
    /// How long a developer key issued at sign-up lasts (`None`: until revoked).
    pub developer_key_lifetime: Option<chrono::Duration>,
    /// Resources and grants as the exchange hot path reads them.
    pub catalog_cache: CatalogCache,
    /// Secret for the keyed hashes of looked-up keys in the audit trail.
    pub audit_key: Vec<u8>,
    /// Working days a department has to answer a demand.
    pub demand_deadline_working_days: u32,
    /// Working days a department has to answer an objection.
    pub objection_deadline_working_days: u32,
    /// Connector runs, by hand and on schedule.
    pub sync: Arc<SyncService>,
    /// Themed libraries: declarations and materializations.
    pub themes: Arc<ThemeService>,
    /// Authenticates API keys (and bearer tokens' credentials) with a short-lived cache.
    pub auth: Authenticator,
    /// Issues and verifies OAuth2 access tokens.
    pub tokens: TokenSigner,
    /// How long a console session lasts.
    pub session_lifetime: chrono::Duration,
}

/// Opens the catalog and the libraries of a data dir — the base libraries, then the themes the
/// catalog declares; used by the server and the CLI.
pub async fn open_stores(settings: &Settings) -> crate::Result<(Catalog, Libraries)> {
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(|e| Failure::msg(format!("creating data dir {}: {e}", settings.data_dir.display())))?;
    let catalog = Catalog::connect(&settings.database_url()).await?;
    let libraries = Libraries::new();
    for schema in LIBRARIES {
        libraries.insert(Arc::new(Library::open(&settings.data_dir, schema).await?));
    }
    crate::themes::open_declared(&catalog, &libraries, &settings.data_dir)
        .await
        .map_err(|e| Failure::msg(format!("opening the themed libraries: {e}")))?;
    Ok((catalog, libraries))
}

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
    audit: AuditLog,
}

impl Application {
    /// Opens everything `settings` names and binds its listen address (port 0 picks a free
    /// port: see [`Application::port`]).
    pub async fn build(settings: &Settings) -> crate::Result<Self> {
        let (catalog, libraries) = open_stores(settings).await?;
        Self::build_with(settings, catalog, libraries).await
    }

    /// As [`Application::build`], with stores already open.
    pub async fn build_with(settings: &Settings, catalog: Catalog, libraries: Libraries) -> crate::Result<Self> {
        let audit = AuditLog::start(catalog.clone(), &settings.audit_dir()).await?;
        let audit_key = load_or_create_secret(settings, "audit.key")?;
        let jwt_key = load_or_create_secret(settings, "jwt.key")?;
        let themes = Arc::new(ThemeService::new(
            catalog.clone(),
            libraries.clone(),
            settings.data_dir.clone(),
            settings.sync.clone(),
        ));
        themes
            .settle_interrupted()
            .await
            .map_err(|e| Failure::msg(format!("settling interrupted materializations: {e}")))?;
        themes.clone().spawn_scheduler();
        let sync = Arc::new(
            SyncService::new(catalog.clone(), libraries.clone(), settings.sync.clone()).with_themes(themes.clone()),
        );
        sync.clone().spawn_scheduler();
        let rate = &settings.rate_limit;
        let quotas = Quotas::new(rate.requests_per_second, rate.burst, rate.requests_per_day);
        quotas.restore_today(&catalog).await?;
        let quotas = Arc::new(quotas);
        spawn_quota_saver(quotas.clone(), catalog.clone());
        let open = &settings.open;
        let open_anonymous = Quotas::new(open.anonymous_per_second, open.anonymous_burst, open.anonymous_per_day)
            .with_prefix("open-anonymous:");
        open_anonymous.restore_today(&catalog).await?;
        let open_anonymous = Arc::new(open_anonymous);
        spawn_quota_saver(open_anonymous.clone(), catalog.clone());
        let open_developers =
            Quotas::new(open.developer_per_second, open.developer_burst, open.developer_per_day).with_prefix("open:");
        open_developers.restore_today(&catalog).await?;
        let open_developers = Arc::new(open_developers);
        spawn_quota_saver(open_developers.clone(), catalog.clone());
        if settings.exchange.export_snapshots {
            spawn_snapshot_keeper(
                libraries.clone(),
                std::time::Duration::from_secs(settings.exchange.snapshot_min_interval_seconds),
            );
        }
        let catalog_cache = CatalogCache::new(
            catalog.clone(),
            std::time::Duration::from_secs_f64(settings.exchange.catalog_cache_seconds.max(0.0)),
        );
        let state = web::Data::new(AppState {
            catalog: catalog.clone(),
            libraries,
            audit: audit.clone(),
            quotas,
            open_anonymous,
            open_developers,
            developer_key_lifetime: (open.developer_key_days > 0)
                .then(|| seconds(open.developer_key_days.saturating_mul(86_400))),
            catalog_cache,
            audit_key,
            demand_deadline_working_days: settings.catalog.demand_deadline_working_days,
            objection_deadline_working_days: settings.catalog.objection_deadline_working_days,
            sync,
            themes,
            auth: Authenticator::new(
                catalog.clone(),
                std::time::Duration::from_secs(settings.auth.cache_seconds),
            ),
            tokens: TokenSigner::new(&jwt_key, seconds(settings.auth.token_seconds)),
            session_lifetime: seconds(settings.auth.session_hours.saturating_mul(3600)),
        });
        let listener = TcpListener::bind(&settings.listen)
            .map_err(|e| Failure::msg(format!("cannot listen on {}: {e}", settings.listen)))?;
        let port = listener.local_addr().map_err(|e| Failure::msg(e.to_string()))?.port();
        let server =
            HttpServer::new(move || {
                // Runs on each worker thread, in its LocalSet.
                policy::AuditLog::answer_on_this_thread();
                App::new()
                    .app_data(state.clone())
                    .app_data(web::PathConfig::default().error_handler(|err, _| {
                        Problem::new(
                            actix_web::http::StatusCode::BAD_REQUEST,
                            "bad_path",
                            "Bad path parameter",
                            err.to_string(),
                        )
                        .into()
                    }))
                    .app_data(web::JsonConfig::default().limit(4 << 20).error_handler(|err, _| {
                        crate::problem::bad_request_body("invalid_body", err.to_string()).into()
                    }))
                    .app_data(web::QueryConfig::default().error_handler(|err, _| {
                        crate::problem::bad_request_body("invalid_query", err.to_string()).into()
                    }))
                    .wrap(actix_web::middleware::from_fn(around_request))
                    .configure(register_endpoints)
                    .route("/api/docs", web::get().to(crate::openapi::docs_redirect))
                    .service(crate::openapi::swagger_ui())
                    .default_service(web::to(|req: HttpRequest| async move {
                        Err::<actix_web::HttpResponse, _>(Problem::no_route(req.path()))
                    }))
            })
            .listen(listener)
            .map_err(|e| Failure::msg(e.to_string()))?
            .disable_signals()
            .shutdown_timeout(5)
            .run();
        Ok(Self { port, server, audit })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until stopped (Ctrl-C in the CLI, or the test runtime ending).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// The audit writer, and the reader of what it wrote ([`AuditLog::scan`]).
    pub fn audit(&self) -> AuditLog {
        self.audit.clone()
    }

    /// The server handle, to stop it gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// Saves the daily quota counts every two seconds, so a restart loses at most that much.
fn spawn_quota_saver(quotas: Arc<Quotas>, catalog: Catalog) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            if let Err(e) = quotas.persist(&catalog).await {
                tracing::warn!(error = %e, "saving daily quota counts failed; will retry");
            }
        }
    });
}

/// Keeps each library's export snapshot ([`exchange_core::snapshot`]) at the version it serves:
/// once a second it looks for a library whose snapshot is missing or older, and writes that
/// library's snapshot on a blocking thread, one library at a time and no more often than
/// `min_interval` per library. Themed libraries declared later are picked up as they appear.
fn spawn_snapshot_keeper(libraries: Libraries, min_interval: std::time::Duration) {
    tokio::spawn(async move {
        let mut written: std::collections::HashMap<&'static str, std::time::Instant> = Default::default();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (name, library) in libraries.all() {
                let stale = match library.version() {
                    Ok(version) => library.snapshot_version() != Some(version),
                    Err(e) => {
                        tracing::warn!(library = name, error = %e, "reading the library version failed");
                        false
                    }
                };
                if !stale || written.get(name).is_some_and(|at| at.elapsed() < min_interval) {
                    continue;
                }
                written.insert(name, std::time::Instant::now());
                match tokio::task::spawn_blocking(move || library.refresh_snapshot()).await {
                    Ok(Ok(Some(stats))) => tracing::info!(
                        library = name,
                        version = stats.version,
                        records = stats.records,
                        bytes = stats.bytes,
                        elapsed_ms = stats.elapsed.as_millis() as u64,
                        "export snapshot written"
                    ),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::warn!(
                        library = name,
                        error = %e,
                        "writing the export snapshot failed; exports scan the serving index meanwhile"
                    ),
                    Err(e) => tracing::warn!(library = name, error = %e, "the export snapshot writer stopped"),
                }
            }
        }
    });
}

/// One endpoint: its method, its full path (the actix pattern, which is also its path in the
/// OpenAPI document) and its handler.
pub struct Endpoint {
    /// The HTTP method.
    pub method: Method,
    /// The full path, e.g. `/api/v1/resources/{code}`.
    pub path: &'static str,
    route: Route,
}

fn endpoint<F, Args>(method: Method, path: &'static str, handler: F) -> Endpoint
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    Endpoint {
        route: web::method(method.clone()).to(handler),
        method,
        path,
    }
}

/// Every endpoint of the API, in matching order: the one list the server registers and the
/// `openapi` test holds the OpenAPI document to. A new endpoint is one line here, plus
/// `#[utoipa::path]` on its handler and its name in [`crate::openapi::ApiDoc`].
pub fn endpoints() -> Vec<Endpoint> {
    use routes::{
        audit, catalog, ckan, connectors, credentials, demands, exchange, health, history, lab, libraries, oauth,
        objections, open, open_catalog, quality, query, session, themes,
    };
    const GET: Method = Method::GET;
    const POST: Method = Method::POST;
    const PUT: Method = Method::PUT;
    const DELETE: Method = Method::DELETE;
    vec![
        endpoint(GET, "/health", health::health),
        endpoint(GET, "/api/openapi.json", crate::openapi::document),
        endpoint(POST, "/oauth/token", oauth::token),
        endpoint(
            GET,
            "/api/v1/exchange/{resource_code}/records/{key}",
            exchange::get_record,
        ),
        endpoint(
            GET,
            "/api/v1/exchange/{resource_code}/records/{key}/history",
            history::record_history,
        ),
        endpoint(GET, "/api/v1/exchange/{resource_code}/changes", exchange::changes),
        endpoint(GET, "/api/v1/exchange/{resource_code}/diff", history::diff),
        endpoint(POST, "/api/v1/exchange/{resource_code}/records:batch", exchange::batch),
        endpoint(POST, "/api/v1/exchange/{resource_code}/verify", exchange::verify),
        endpoint(GET, "/api/v1/exchange/{resource_code}/records", query::records),
        endpoint(GET, "/api/v1/exchange/{resource_code}/export", query::export),
        endpoint(GET, "/api/v1/lab/views", lab::views),
        endpoint(POST, "/api/v1/lab/query", lab::query),
        endpoint(GET, "/api/v1/audit", audit::list),
        endpoint(GET, "/api/v1/audit/verify", audit::verify),
        endpoint(GET, "/api/v1/departments", catalog::list_departments),
        endpoint(POST, "/api/v1/departments", catalog::save_department),
        endpoint(GET, "/api/v1/resources", catalog::list_resources),
        endpoint(POST, "/api/v1/resources", catalog::create_resource),
        endpoint(GET, "/api/v1/resources/{code}", catalog::get_resource),
        endpoint(PUT, "/api/v1/resources/{code}", catalog::update_resource),
        endpoint(GET, "/api/v1/resources/{code}/history", catalog::resource_history),
        endpoint(POST, "/api/v1/resources/{code}/{action}", catalog::resource_action),
        endpoint(GET, "/api/v1/demands", demands::list),
        endpoint(POST, "/api/v1/demands", demands::create),
        endpoint(GET, "/api/v1/demands/{id}", demands::get),
        endpoint(POST, "/api/v1/demands/{id}/decision", demands::decide),
        endpoint(POST, "/api/v1/demands/{id}/objection", demands::object),
        endpoint(POST, "/api/v1/demands/{id}/arbitration", demands::arbitrate),
        endpoint(GET, "/api/v1/objections", objections::list),
        endpoint(POST, "/api/v1/objections", objections::create),
        endpoint(GET, "/api/v1/objections/{id}", objections::get),
        endpoint(POST, "/api/v1/objections/{id}/confirm", objections::confirm),
        endpoint(POST, "/api/v1/objections/{id}/correct", objections::correct),
        endpoint(POST, "/api/v1/objections/{id}/resolve", objections::resolve),
        endpoint(GET, "/api/v1/grants", catalog::list_grants),
        endpoint(GET, "/api/v1/responsibilities", catalog::list_responsibilities),
        endpoint(POST, "/api/v1/responsibilities", catalog::create_responsibility),
        endpoint(GET, "/api/v1/catalog.jsonld", catalog::dcat),
        endpoint(GET, "/api/v1/credentials", credentials::list),
        endpoint(POST, "/api/v1/credentials", credentials::create),
        endpoint(DELETE, "/api/v1/credentials/{id}", credentials::revoke),
        endpoint(POST, "/api/v1/credentials/{id}/rotate", credentials::rotate),
        endpoint(POST, "/api/v1/session", session::login),
        endpoint(GET, "/api/v1/session", session::whoami),
        endpoint(DELETE, "/api/v1/session", session::logout),
        endpoint(GET, "/api/v1/connectors", connectors::list),
        endpoint(POST, "/api/v1/connectors", connectors::save),
        endpoint(GET, "/api/v1/connectors/{id}", connectors::get),
        endpoint(GET, "/api/v1/connectors/{id}/runs", connectors::runs),
        endpoint(POST, "/api/v1/connectors/{id}/runs", connectors::start),
        endpoint(GET, "/api/v1/connectors/{id}/runs/{run}", connectors::run),
        endpoint(
            GET,
            "/api/v1/connectors/{id}/runs/{run}/quarantine",
            connectors::quarantine,
        ),
        endpoint(GET, "/api/v1/libraries", libraries::list),
        endpoint(GET, "/api/v1/libraries/{name}", libraries::get),
        endpoint(
            GET,
            "/api/v1/libraries/{name}/records/{key}/lineage",
            libraries::lineage,
        ),
        endpoint(GET, "/api/v1/libraries/{name}/conflicts", libraries::conflicts),
        endpoint(GET, "/api/v1/quality", quality::list),
        endpoint(POST, "/api/v1/quality/evaluations", quality::evaluate),
        endpoint(GET, "/api/v1/quality/libraries/{name}", quality::library),
        endpoint(GET, "/api/v1/quality/resources/{code}", quality::resource),
        endpoint(GET, "/console/quality", crate::quality::page::ranking_page),
        endpoint(GET, "/console/quality/{name}", crate::quality::page::detail_page),
        endpoint(GET, "/open/v1/datasets/{id}/download", open::download),
        endpoint(GET, "/open/v1/datasets/{id}/records", open::records),
        endpoint(POST, "/open/v1/datasets/{id}/applications", open::apply),
        endpoint(POST, "/open/v1/developers", open::sign_up),
        endpoint(GET, "/open/v1/developers/me", open::me),
        endpoint(GET, "/api/v1/open-applications", open::applications),
        endpoint(POST, "/api/v1/open-applications/{id}/decision", open::decide),
        endpoint(GET, "/", crate::portal::home),
        endpoint(GET, "/datasets", crate::portal::search),
        endpoint(GET, "/datasets/{id}", crate::portal::dataset),
        endpoint(POST, "/datasets/{id}/apply", crate::portal::apply),
        endpoint(GET, "/developer", crate::portal::developer),
        endpoint(POST, "/developer/signup", crate::portal::sign_up),
        endpoint(POST, "/developer/login", crate::portal::login),
        endpoint(POST, "/developer/logout", crate::portal::logout),
        endpoint(POST, "/developer/rotate", crate::portal::rotate),
        endpoint(GET, "/api/v1/kpis", crate::kpi::route::kpis),
        endpoint(GET, "/console", crate::console::pages::home),
        endpoint(GET, "/console/kpis", crate::console::pages::kpis),
        endpoint(GET, "/console/login", crate::console::login::form),
        endpoint(POST, "/console/login", crate::console::login::submit),
        endpoint(POST, "/console/logout", crate::console::login::logout),
        endpoint(
            POST,
            "/console/open-applications/{id}",
            crate::console::applications::answer,
        ),
        endpoint(GET, "/api/v1/themes", themes::list),
        endpoint(POST, "/api/v1/themes", themes::declare),
        endpoint(GET, "/api/v1/themes/{name}", themes::get),
        endpoint(POST, "/api/v1/themes/{name}/materializations", themes::materialize),
        endpoint(GET, "/open/v1/datasets", open_catalog::list),
        endpoint(GET, "/open/v1/datasets/{id}", open_catalog::get),
        endpoint(GET, "/open/v1/catalog.jsonld", open_catalog::dcat_jsonld),
        endpoint(GET, "/open/v1/catalog.ttl", open_catalog::dcat_turtle),
        endpoint(GET, "/api/3/action/{action}", ckan::action_get),
        endpoint(POST, "/api/3/action/{action}", ckan::action_post),
        endpoint(GET, "/api/action/{action}", ckan::unversioned_get),
        endpoint(POST, "/api/action/{action}", ckan::unversioned_post),
    ]
}

fn register_endpoints(config: &mut web::ServiceConfig) {
    for endpoint in endpoints() {
        config.route(endpoint.path, endpoint.route);
    }
}

fn seconds(n: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 1000))
}

/// The caller's `X-Request-Id`, when it is 1–128 visible ASCII characters: the id its
/// response carries and its audit record holds. Without one, an id is generated
/// ([`new_request_id`]).
pub(crate) fn sent_request_id(headers: &actix_web::http::header::HeaderMap) -> Option<&HeaderValue> {
    headers.get(X_REQUEST_ID).filter(|v| {
        let v = v.as_bytes();
        !v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic())
    })
}

/// A new request id: 12 random bytes in hex.
pub(crate) fn new_request_id() -> String {
    use rand::Rng;
    policy::hex_string(&rand::rng().random::<[u8; 12]>())
}

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The one middleware around every request (one layer: each `from_fn` layer costs a boxed
/// future per request):
/// - every response carries `X-Request-Id`: the one its handler set (handlers that record
///   the call in the audit trail choose it as [`sent_request_id`] says), else the caller's
///   when acceptable, else a generated one;
/// - the access log: one `huitong::http` line per request (status, request line, time to the
///   response head), except exchange calls: each is in the audit trail already, with more
///   than a log line holds, and a line per lookup would cost the hot path a write;
/// - after a catalog write served here (any successful request that is not a read or an
///   exchange/lab/CKAN call; a form post succeeds with a redirect), the cached catalog reads
///   are dropped, so the next call sees the write.
async fn around_request(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let path = req.path();
    let exchange = path.starts_with("/api/v1/exchange/");
    let sent = sent_request_id(req.headers()).cloned();
    let logged = (!exchange).then(|| {
        let line = format!("{} {} {:?}", req.method(), req.uri(), req.version());
        (std::time::Instant::now(), line)
    });
    let writes = !matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    ) && !exchange
        && !path.starts_with("/api/v1/lab/")
        && !path.starts_with("/api/3/action/")
        && !path.starts_with("/api/action/");
    let state = writes.then(|| req.app_data::<web::Data<AppState>>().cloned()).flatten();
    let mut response = next.call(req).await?;
    if !response.headers().contains_key(X_REQUEST_ID)
        && let Some(id) = sent.or_else(|| HeaderValue::from_str(&new_request_id()).ok())
    {
        response.headers_mut().insert(X_REQUEST_ID, id);
    }
    if let Some(state) = state
        && (response.status().is_success() || response.status().is_redirection())
    {
        state.catalog_cache.invalidate();
    }
    if let Some((started, line)) = logged {
        tracing::info!(
            target: "huitong::http",
            "{} {line} {:.3}ms",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(response)
}

/// A secret of this server in `<data_dir>/secrets/<name>`: 32 random bytes created on first
/// start, readable by the owner only. `audit.key` keys the audit trail's hashes of looked-up
/// keys (without it, hashes of ID numbers could be reversed by enumeration); `jwt.key` signs
/// access tokens.
pub fn load_or_create_secret(settings: &Settings, name: &str) -> crate::Result<Vec<u8>> {
    use rand::Rng;
    use std::io::Write;
    let dir = settings.data_dir.join("secrets");
    let path = dir.join(name);
    if let Ok(key) = std::fs::read(&path)
        && key.len() == 32
    {
        return Ok(key);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Failure::msg(format!("creating {}: {e}", dir.display())))?;
    let key: [u8; 32] = rand::rng().random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        // Created 0600 rather than chmod-ed after writing, so the secret is never readable by others.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write = |path: &std::path::Path| -> std::io::Result<()> {
        let mut file = options.open(path)?;
        #[cfg(unix)]
        {
            // A file left by an older version may have wider permissions.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(&key)?;
        file.sync_all()
    };
    write(&path).map_err(|e| Failure::msg(format!("writing {}: {e}", path.display())))?;
    Ok(key.to_vec())
}
