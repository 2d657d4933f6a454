//! Themed libraries (主题库 / 专题库): a theme is one DataFusion `SELECT` over other libraries,
//! declared in the catalog with its fields, and materialized into a library of its own, which
//! is then catalogued, governed and served like a base library.
//!
//! - **Declaring** ([`declare`]) checks the SQL against the open libraries (one query that
//!   plans; its output columns exactly the declared fields, the key among them), registers the
//!   theme's schema ([`exchange_core::theme::register_theme`]), opens its library and records
//!   the theme in the catalog.
//! - **Materializing** ([`materialize`]) runs the SQL in a fresh session where each input
//!   library is a table of its *current* records — from its Delta log, the latest row per key
//!   among inserts, updates and deletes, keys whose latest row is a delete left out — and
//!   streams the result through the theme library's writer: each value normalized as its
//!   declared field requires, rows without a key or with a value that does not normalize
//!   counted as rejected with the reason, records no longer produced marked deleted, one
//!   commit. Each materialization is recorded in the catalog.
//! - **Triggers** ([`ThemeService`]): after a connector run changes a library, the `on_change`
//!   themes reading it; the scheduler, the themes with an update cycle when due; and by hand.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use catalog::{
    Catalog, MAX_REJECTIONS_KEPT, Materialization, MaterializationCounts, MaterializationOutcome, NewTheme, Refresh,
    Rejection, RunStatus, Theme,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use exchange_core::schema::LIBRARIES;
use exchange_core::{Library, ThemeDefinition, ThemeField, Upsert};
use futures::StreamExt;
use serde::Deserialize;

use crate::libraries::Libraries;
use crate::settings::SyncSettings;

/// Memory the operators of one materialization may hold before sorts spill to disk (a join
/// or aggregation beyond it fails the materialization, which is recorded with the reason).
pub const MEMORY_LIMIT: usize = 1 << 30;

/// Materializations listed with a theme.
pub const HISTORY_SHOWN: i64 = 20;

/// A theme as declared: the body of `POST /api/v1/themes`, and what the demo declares.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "elderly", "label_zh": "老年人口专题库", "description": "1966年以前出生的户籍人口",
    "sql": "SELECT id_number, name, birth_date, region_code FROM population WHERE birth_date < DATE '1966-01-01'",
    "key": "id_number",
    "fields": [
        {"name": "id_number", "label_zh": "公民身份号码", "kind": "id_number", "sensitivity": "L3"},
        {"name": "name", "label_zh": "姓名", "kind": "person_name", "sensitivity": "L3"},
        {"name": "birth_date", "label_zh": "出生日期", "kind": "date", "sensitivity": "L2"},
        {"name": "region_code", "label_zh": "户籍地行政区划代码", "kind": "region_code", "sensitivity": "L1"}
    ],
    "refresh": "on_change"
}))]
pub struct ThemeDeclaration {
    /// Library name (snake_case), not a base library's: what a resource's `library` names.
    pub name: String,
    /// Chinese name.
    pub label_zh: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// One `SELECT` over libraries by name (each a table of its current records, without
    /// system columns).
    pub sql: String,
    /// The key field: one of `fields`, unique per row.
    pub key: String,
    /// The fields: exactly the SQL's output columns.
    pub fields: Vec<ThemeField>,
    /// `on_change` (the default: after a run changes an input) or an update cycle
    /// (`daily`, `weekly`, …; `irregular`: by hand only).
    #[serde(default = "on_change")]
    #[schema(value_type = String, example = "on_change")]
    pub refresh: Refresh,
}

fn on_change() -> Refresh {
    Refresh::OnChange
}

impl ThemeDeclaration {
    fn definition(&self) -> ThemeDefinition {
        ThemeDefinition {
            name: self.name.clone(),
            label_zh: self.label_zh.clone(),
            key: self.key.clone(),
            fields: self.fields.clone(),
        }
    }
}

/// Why a theme could not be declared or materialized.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    /// The declaration is wrong: `field` names the part (`name`, `sql`, `fields`, `key`).
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The offending part of the declaration.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A theme of this name is already declared.
    #[error("theme {0} is already declared")]
    Exists(String),
    /// No theme of this name.
    #[error("no theme is named {0}")]
    NotFound(String),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
    /// A library failed.
    #[error(transparent)]
    Library(#[from] exchange_core::Error),
    /// The query failed while running.
    #[error("query: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// Arrow failed converting the result.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> ThemeError {
    ThemeError::Invalid {
        field,
        message: message.into(),
    }
}

/// A theme's SQL, planned in a session over its inputs.
struct Planned {
    ctx: SessionContext,
    plan: LogicalPlan,
    inputs: Vec<String>,
    input_versions: BTreeMap<String, i64>,
}

/// A fresh session: no information_schema, no URL tables, a memory limit past which sorts spill.
fn session() -> Result<SessionContext, ThemeError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(MEMORY_LIMIT, 1.0)
        .build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(SessionConfig::new())
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// Registers `library` in `ctx` under its name as a table of its current records: per key the
/// latest row among inserts, updates and deletes (other ops, such as conflict records, are
/// not records), unless that row is a delete; the library's fields only. Returns the version
/// read. The Delta log is registered only long enough to plan the view.
async fn register_current(ctx: &SessionContext, library: &Library) -> Result<i64, ThemeError> {
    let schema = library.schema();
    let table = library.table().await?;
    let version = table.version().map(|v| v as i64).unwrap_or(-1);
    table
        .update_datafusion_session(&ctx.state())
        .map_err(exchange_core::Error::from)?;
    let log = format!("__huitong_log_{}", schema.name);
    let provider = table.table_provider().await.map_err(exchange_core::Error::from)?;
    ctx.register_table(log.as_str(), provider)?;
    let fields = schema
        .fields
        .iter()
        .map(|f| format!("\"{}\"", f.name))
        .collect::<Vec<_>>()
        .join(", ");
    let view = ctx
        .sql(&format!(
            "SELECT {fields} FROM (SELECT {fields}, _op, ROW_NUMBER() OVER (PARTITION BY \"{key}\" \
             ORDER BY _version DESC) AS __huitong_rank FROM {log} WHERE _op IN ('I', 'U', 'D')) \
             WHERE __huitong_rank = 1 AND _op <> 'D'",
            key = schema.key
        ))
        .await?
        .into_view();
    ctx.deregister_table(log.as_str())?;
    ctx.register_table(schema.name, view)?;
    Ok(version.max(0))
}

/// Parses `sql` (one query), finds the libraries it reads (open ones only, never `own_name`)
/// and plans it over their current records. Every refusal names `sql`.
async fn plan(libraries: &Libraries, sql: &str, own_name: &str) -> Result<Planned, ThemeError> {
    let ctx = session()?;
    let mut statements = DFParserBuilder::new(sql)
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| invalid("sql", e.to_string()))?;
    if statements.len() != 1 {
        return Err(invalid(
            "sql",
            format!("a theme is one SELECT; this holds {} statements", statements.len()),
        ));
    }
    let statement = statements.pop_front().expect("one statement");
    let is_query = matches!(&statement, DfStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_)));
    if !is_query {
        return Err(invalid(
            "sql",
            "a theme is one query (SELECT or WITH … SELECT); nothing that writes, defines or sets",
        ));
    }
    let references = ctx
        .state()
        .resolve_table_references(&statement)
        .map_err(|e| invalid("sql", e.to_string()))?;
    let mut inputs: Vec<String> = Vec::new();
    for reference in &references {
        let name = reference.table();
        let known = reference.schema().is_none() && name != own_name && libraries.contains(name);
        if !known {
            return Err(invalid(
                "sql",
                format!("{reference} is not a library (tables are libraries by name, e.g. population)"),
            ));
        }
        if !inputs.iter().any(|i| i == name) {
            inputs.push(name.to_string());
        }
    }
    if inputs.is_empty() {
        return Err(invalid("sql", "a theme reads at least one library"));
    }
    let mut input_versions = BTreeMap::new();
    for name in &inputs {
        let library = libraries
            .get(name)
            .ok_or_else(|| invalid("sql", format!("library {name} is not open")))?;
        input_versions.insert(name.clone(), register_current(&ctx, &library).await?);
    }
    let plan = ctx
        .state()
        .statement_to_plan(statement)
        .await
        .map_err(|e| invalid("sql", e.to_string()))?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| invalid("sql", e.to_string()))?;
    Ok(Planned {
        ctx,
        plan,
        inputs,
        input_versions,
    })
}

/// The output columns must be exactly the declared fields (`names`, in schema order), each
/// convertible to text; returns each field's output column position.
fn match_columns(plan: &LogicalPlan, names: &[&str]) -> Result<Vec<usize>, ThemeError> {
    let output = plan.schema();
    let produced: Vec<&str> = output.fields().iter().map(|f| f.name().as_str()).collect();
    for (i, name) in produced.iter().enumerate() {
        if produced[..i].contains(name) {
            return Err(invalid("fields", format!("the SQL outputs the column {name} twice")));
        }
        if !names.contains(name) {
            return Err(invalid(
                "fields",
                format!("the SQL outputs {name}, which is not a declared field"),
            ));
        }
    }
    let mut positions = Vec::with_capacity(names.len());
    for name in names {
        let Some(at) = produced.iter().position(|p| p == name) else {
            return Err(invalid(
                "fields",
                format!(
                    "the declared field {name} is not an output column of the SQL (it outputs {})",
                    produced.join(", ")
                ),
            ));
        };
        let data_type = output.field(at).data_type();
        if !arrow::compute::can_cast_types(data_type, &DataType::Utf8) {
            return Err(invalid(
                "fields",
                format!("the column {name} is a {data_type}, which has no text form"),
            ));
        }
        positions.push(at);
    }
    Ok(positions)
}

/// Checks a declaration against the open libraries; returns the libraries its SQL reads.
pub async fn check(libraries: &Libraries, declaration: &ThemeDeclaration) -> Result<Vec<String>, ThemeError> {
    let definition = declaration.definition();
    definition.validate().map_err(|e| match e {
        exchange_core::Error::InvalidValue { field, message } => invalid(field, message),
        other => other.into(),
    })?;
    let planned = plan(libraries, &declaration.sql, &declaration.name).await?;
    // The fields in the order the theme's schema will have them: key first.
    let mut names: Vec<&str> = vec![declaration.key.as_str()];
    names.extend(
        declaration
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .filter(|n| *n != declaration.key),
    );
    match_columns(&planned.plan, &names)?;
    Ok(planned.inputs)
}

/// Declares a theme: checks it, registers its schema, opens its library (under
/// `<data_dir>/libraries/<name>`), records it in the catalog with `department_code` as the
/// source of its rows, and adds the library to `libraries`. Does not materialize it.
pub async fn declare(
    catalog: &Catalog,
    libraries: &Libraries,
    data_dir: &Path,
    declaration: &ThemeDeclaration,
    department_code: &str,
) -> Result<Theme, ThemeError> {
    if LIBRARIES.iter().any(|l| l.name == declaration.name) {
        return Err(invalid("name", format!("{} is a base library", declaration.name)));
    }
    match catalog.theme_by_name(&declaration.name).await {
        Ok(_) => return Err(ThemeError::Exists(declaration.name.clone())),
        Err(catalog::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    if libraries.contains(&declaration.name) {
        return Err(ThemeError::Exists(declaration.name.clone()));
    }
    let inputs = check(libraries, declaration).await?;
    catalog.department_by_code(department_code).await?;
    let schema = exchange_core::theme::register_theme(&declaration.definition()).map_err(|e| match e {
        exchange_core::Error::InvalidValue { field, message } => invalid(field, message),
        other => other.into(),
    })?;
    let library = Arc::new(Library::open(data_dir, schema).await?);
    let theme = catalog
        .create_theme(&NewTheme {
            name: declaration.name.clone(),
            label_zh: declaration.label_zh.clone(),
            description: declaration.description.clone(),
            sql: declaration.sql.clone(),
            key: declaration.key.clone(),
            fields: declaration.fields.clone(),
            inputs,
            refresh: declaration.refresh,
            department_code: department_code.to_string(),
        })
        .await
        .map_err(|e| match e {
            catalog::Error::Conflict { .. } => ThemeError::Exists(declaration.name.clone()),
            other => other.into(),
        })?;
    libraries.insert(library);
    tracing::debug!(theme = %theme.name, inputs = ?theme.inputs, "theme declared");
    Ok(theme)
}

/// Registers the schema of every theme the catalog declares, without opening their libraries
/// (for commands that validate resources bound to themes but serve nothing).
pub async fn register_declared(catalog: &Catalog) -> Result<(), ThemeError> {
    for theme in catalog.themes().await? {
        exchange_core::theme::register_theme(&theme.definition())?;
    }
    Ok(())
}

/// Opens the library of every theme the catalog declares (at start-up, after the base
/// libraries, which themes read).
pub async fn open_declared(catalog: &Catalog, libraries: &Libraries, data_dir: &Path) -> Result<(), ThemeError> {
    for theme in catalog.themes().await? {
        let schema = exchange_core::theme::register_theme(&theme.definition())?;
        libraries.insert(Arc::new(Library::open(data_dir, schema).await?));
    }
    Ok(())
}

/// The Delta application id under which a theme's materializations commit.
pub fn watermark_app_id(theme: &str) -> String {
    format!("huitong-theme-{theme}")
}

/// Materializes `theme` once (started by `trigger`: `manual`, `schedule`, `on_change`,
/// `declare`), recording it in the catalog. A failure is recorded and returned as a
/// materialization with status `failed`; only a catalog failure is an `Err`.
#[tracing::instrument(skip_all, fields(theme = %theme.name, trigger))]
pub async fn materialize(
    catalog: &Catalog,
    libraries: &Libraries,
    theme: &Theme,
    trigger: &str,
) -> Result<Materialization, ThemeError> {
    let id = catalog.start_materialization(theme.id, trigger).await?;
    let mut input_versions = BTreeMap::new();
    let outcome = match run(libraries, theme, id, &mut input_versions).await {
        Ok((counts, rejections, version)) => {
            tracing::info!(
                version,
                read = counts.read,
                rejected = counts.rejected,
                deleted = counts.deleted,
                "theme materialized"
            );
            MaterializationOutcome {
                status: RunStatus::Succeeded,
                input_versions,
                counts,
                rejections,
                library_version: Some(version),
                error: None,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "theme materialization failed; nothing committed");
            MaterializationOutcome {
                status: RunStatus::Failed,
                input_versions,
                counts: MaterializationCounts::default(),
                rejections: Vec::new(),
                library_version: None,
                error: Some(e.to_string()),
            }
        }
    };
    Ok(catalog.finish_materialization(id, &outcome).await?)
}

async fn run(
    libraries: &Libraries,
    theme: &Theme,
    run_id: i64,
    input_versions: &mut BTreeMap<String, i64>,
) -> Result<(MaterializationCounts, Vec<Rejection>, i64), ThemeError> {
    let library = libraries
        .get(&theme.name)
        .ok_or_else(|| invalid("name", format!("the library of theme {} is not open", theme.name)))?;
    let schema = library.schema();
    let Planned {
        ctx,
        plan,
        input_versions: versions,
        ..
    } = plan(libraries, &theme.sql, &theme.name).await?;
    *input_versions = versions;
    let names: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
    let positions = match_columns(&plan, &names)?;
    let mut stream = ctx.execute_logical_plan(plan).await?.execute_stream().await?;
    let mut writer = library
        .writer(
            &theme.department_code,
            run_id,
            exchange_core::Authority::snapshot(library.schema()),
        )
        .await?;
    let mut counts = MaterializationCounts::default();
    let mut rejections = Vec::new();
    let mut reject = |counts: &mut MaterializationCounts, rejection: Rejection| {
        counts.rejected += 1;
        if rejections.len() < MAX_REJECTIONS_KEPT {
            rejections.push(rejection);
        }
    };
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let columns = positions
            .iter()
            .map(|&at| arrow::compute::cast(batch.column(at), &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()?;
        let columns: Vec<&StringArray> = columns
            .iter()
            .map(|c| c.as_any().downcast_ref::<StringArray>().expect("cast to Utf8"))
            .collect();
        'rows: for row in 0..batch.num_rows() {
            counts.read += 1;
            let raw_key = cell(columns[0], row);
            let mut values = Vec::with_capacity(columns.len());
            for (field, column) in schema.fields.iter().zip(&columns) {
                match cell(column, row).map(|raw| field.normalize(raw)).transpose() {
                    Ok(value) => values.push(value.flatten()),
                    Err(reason) => {
                        reject(
                            &mut counts,
                            Rejection {
                                key: raw_key.map(str::to_string),
                                field: Some(field.name.to_string()),
                                reason,
                            },
                        );
                        continue 'rows;
                    }
                }
            }
            if values[0].is_none() {
                reject(
                    &mut counts,
                    Rejection {
                        key: None,
                        field: Some(schema.key.to_string()),
                        reason: format!("the row has no {}", schema.key),
                    },
                );
                continue;
            }
            let key = values[0].as_ref().map(|k| k.to_string());
            if writer.upsert(values)? == Upsert::Duplicate {
                reject(
                    &mut counts,
                    Rejection {
                        key,
                        field: Some(schema.key.to_string()),
                        reason: format!(
                            "the SQL produced this {} more than once; the first row was kept",
                            schema.key
                        ),
                    },
                );
            }
            writer.flush_if_full().await?;
        }
    }
    // Every theme record comes from this query, so what it no longer produces is gone.
    writer.delete_unseen(100)?;
    let stats = writer.stats();
    let app_id = watermark_app_id(&theme.name);
    let changed = stats.inserted + stats.updated + stats.deleted > 0;
    // Nothing changed: keep the watermark where it was, so nothing is committed.
    let watermark = match writer.watermark(&app_id).await? {
        Some(previous) if !changed => previous,
        _ => run_id,
    };
    let outcome = writer.commit(&app_id, watermark).await?;
    counts.inserted = outcome.stats.inserted as i64;
    counts.updated = outcome.stats.updated as i64;
    counts.unchanged = outcome.stats.unchanged as i64;
    counts.deleted = outcome.stats.deleted as i64;
    Ok((counts, rejections, outcome.version.max(0)))
}

fn cell(column: &StringArray, row: usize) -> Option<&str> {
    (!column.is_null(row)).then(|| column.value(row))
}

/// How long an update cycle lasts; `None` for irregular (by hand only).
pub fn cycle_interval(cycle: exchange_core::UpdateCycle, realtime_seconds: u64) -> Option<Duration> {
    use exchange_core::UpdateCycle;
    const DAY: u64 = 86_400;
    let seconds = match cycle {
        UpdateCycle::RealTime => realtime_seconds,
        UpdateCycle::Daily => DAY,
        UpdateCycle::Weekly => 7 * DAY,
        UpdateCycle::Monthly => 30 * DAY,
        UpdateCycle::Quarterly => 91 * DAY,
        UpdateCycle::HalfYearly => 182 * DAY,
        UpdateCycle::Yearly => 365 * DAY,
        UpdateCycle::Irregular => return None,
    };
    Some(Duration::from_secs(seconds.max(1)))
}

/// Themes in the server: declarations one at a time, materializations of one theme one at a
/// time (later ones wait, and then read the inputs as they are by then), and the triggers.
pub struct ThemeService {
    catalog: Catalog,
    libraries: Libraries,
    data_dir: PathBuf,
    settings: SyncSettings,
    declaring: tokio::sync::Mutex<()>,
    running: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Where materializations run: the runtime the service was made on (the process's
    /// multi-threaded one), never an HTTP worker's single-threaded runtime, which a query over a
    /// large library would hold with every connection it serves.
    runtime: tokio::runtime::Handle,
}

impl ThemeService {
    /// A service over the server's catalog and libraries.
    pub fn new(catalog: Catalog, libraries: Libraries, data_dir: PathBuf, settings: SyncSettings) -> Self {
        Self {
            catalog,
            libraries,
            data_dir,
            settings,
            declaring: tokio::sync::Mutex::new(()),
            running: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// [`ThemeService::materialize`] on the service's runtime, for a caller on an HTTP worker.
    pub async fn materialize_elsewhere(
        self: &Arc<Self>,
        name: &str,
        trigger: &str,
    ) -> Result<Materialization, ThemeError> {
        let (this, name, trigger) = (self.clone(), name.to_string(), trigger.to_string());
        match self
            .runtime
            .spawn(async move { this.materialize(&name, &trigger).await })
            .await
        {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Declares a theme (see [`declare`]).
    pub async fn declare(&self, declaration: &ThemeDeclaration, department_code: &str) -> Result<Theme, ThemeError> {
        let _one_at_a_time = self.declaring.lock().await;
        declare(
            &self.catalog,
            &self.libraries,
            &self.data_dir,
            declaration,
            department_code,
        )
        .await
    }

    /// Materializes the theme named `name` now, after any materialization of it under way.
    pub async fn materialize(self: &Arc<Self>, name: &str, trigger: &str) -> Result<Materialization, ThemeError> {
        let lock = self
            .running
            .lock()
            .expect("lock")
            .entry(name.to_string())
            .or_default()
            .clone();
        let _turn = lock.lock().await;
        let theme = match self.catalog.theme_by_name(name).await {
            Ok(theme) => theme,
            Err(catalog::Error::NotFound { .. }) => return Err(ThemeError::NotFound(name.to_string())),
            Err(e) => return Err(e.into()),
        };
        let done = materialize(&self.catalog, &self.libraries, &theme, trigger).await?;
        if done.status == RunStatus::Succeeded {
            // Scored like a base library after its runs (a failure is logged, not the
            // materialization's).
            if let Err(e) = crate::quality::evaluate_library(&self.catalog, &self.libraries, &theme.name).await {
                tracing::warn!(theme = %theme.name, error = %e, "theme quality not scored");
            }
            if done.counts.inserted + done.counts.updated + done.counts.deleted > 0 {
                // Themes over this theme follow it.
                self.library_changed(&theme.name);
            }
        }
        Ok(done)
    }

    /// A commit changed `library`: materializes, each on its own task, the `on_change` themes
    /// that read it.
    pub fn library_changed(self: &Arc<Self>, library: &str) {
        let this = self.clone();
        let library = library.to_string();
        self.runtime.spawn(async move {
            let themes = match this.catalog.themes().await {
                Ok(themes) => themes,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the themes to refresh");
                    return;
                }
            };
            for theme in themes {
                if theme.refresh == Refresh::OnChange && theme.inputs.contains(&library) {
                    let this = this.clone();
                    this.runtime.clone().spawn(async move {
                        if let Err(e) = this.materialize(&theme.name, "on_change").await {
                            tracing::warn!(theme = %theme.name, error = %e, "theme not refreshed");
                        }
                    });
                }
            }
        });
    }

    /// When `theme`, last materialized as `last`, is next due by its cycle; `None` when it
    /// refreshes on change or by hand only.
    pub fn next_due(&self, theme: &Theme, last: Option<&Materialization>) -> Option<chrono::DateTime<chrono::Utc>> {
        let Refresh::Cycle(cycle) = theme.refresh else {
            return None;
        };
        let interval = cycle_interval(cycle, self.settings.realtime_interval_seconds)?;
        let Some(last) = last else {
            return Some(chrono::Utc::now());
        };
        let started = chrono::DateTime::parse_from_rfc3339(&last.started_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        let wait = if last.status == RunStatus::Failed {
            interval.min(Duration::from_secs(self.settings.retry_failed_after_seconds))
        } else {
            interval
        };
        Some(started + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX))
    }

    /// Marks failed the materializations an earlier process left running. Called when the
    /// server starts: it then holds the libraries, so no other process is materializing.
    pub async fn settle_interrupted(&self) -> Result<(), ThemeError> {
        let settled = self.catalog.settle_interrupted_materializations().await?;
        if settled > 0 {
            tracing::warn!(
                settled,
                "materializations interrupted by the end of an earlier process marked failed"
            );
        }
        Ok(())
    }

    /// Runs the theme scheduler until the process ends (when the connector scheduler runs):
    /// every tick, materializes the themes whose cycle is due.
    pub fn spawn_scheduler(self: Arc<Self>) {
        if !self.settings.scheduler {
            return;
        }
        let tick = Duration::from_secs(self.settings.tick_seconds.max(1));
        self.runtime.clone().spawn(async move {
            let mut timer = tokio::time::interval(tick);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                if let Err(e) = self.materialize_due().await {
                    tracing::warn!(error = %e, "theme scheduler could not read the catalog");
                }
            }
        });
    }

    async fn materialize_due(self: &Arc<Self>) -> Result<(), ThemeError> {
        for theme in self.catalog.themes().await? {
            let last = self.catalog.materializations(theme.id, 1).await?.into_iter().next();
            if last.as_ref().is_some_and(|m| m.status == RunStatus::Running) {
                continue;
            }
            if self
                .next_due(&theme, last.as_ref())
                .is_some_and(|due| due <= chrono::Utc::now())
            {
                match self.materialize(&theme.name, "schedule").await {
                    Ok(m) => tracing::info!(theme = %theme.name, status = ?m.status, "scheduled materialization"),
                    Err(e) => tracing::warn!(theme = %theme.name, error = %e, "scheduled materialization not done"),
                }
            }
        }
        Ok(())
    }
}

/// After `huitong sync` (no server): materializes the `on_change` themes that read any of
/// `changed`, each after the themes it reads; returns the materializations done.
pub async fn follow_changes(
    catalog: &Catalog,
    libraries: &Libraries,
    changed: &[String],
) -> Result<Vec<(String, Materialization)>, ThemeError> {
    let mut changed = changed.to_vec();
    let mut done = Vec::new();
    // Declaration order is an order in which every theme comes after the themes it reads.
    let mut themes = catalog.themes().await?;
    themes.sort_by_key(|t| t.id);
    for theme in themes {
        if theme.refresh == Refresh::OnChange && theme.inputs.iter().any(|i| changed.contains(i)) {
            let m = materialize(catalog, libraries, &theme, "on_change").await?;
            if m.counts.inserted + m.counts.updated + m.counts.deleted > 0 {
                changed.push(theme.name.clone());
            }
            done.push((theme.name, m));
        }
    }
    Ok(done)
}

/// For the demo and scripts, without HTTP: declares the theme unless the catalog already has
/// one of that name (then that declaration stands), and materializes it. `department_code` is
/// the platform department whose code the theme's rows carry as their source (DSJ in the demo).
pub async fn declare_and_materialize(
    catalog: &Catalog,
    libraries: &Libraries,
    data_dir: &Path,
    declaration: &ThemeDeclaration,
    department_code: &str,
) -> Result<(Theme, Materialization), ThemeError> {
    let theme = match catalog.theme_by_name(&declaration.name).await {
        Ok(theme) => theme,
        Err(catalog::Error::NotFound { .. }) => {
            declare(catalog, libraries, data_dir, declaration, department_code).await?
        }
        Err(e) => return Err(e.into()),
    };
    let done = materialize(catalog, libraries, &theme, "declare").await?;
    Ok((theme, done))
}
