//! The data lab (数据实验室): read-only SQL over views that already apply the caller's grants.
//!
//! Each query gets a fresh DataFusion session holding nothing but the caller's views — one per
//! resource the caller may read, named `r_` + the resource code with `-` as `_`
//! (`1-01-001-000001` → `r_1_01_001_000001`). A view's rows are the serving index's current
//! records, streamed a chunk at a time, already row-filtered by the grant, projected to the
//! granted items and masked where not plain: no plain value the caller may not see ever enters
//! the session, whatever the SQL does with the view. The session has no information_schema,
//! no URL tables and no catalog but these views, and only a single query statement is run.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use exchange_core::Library;
use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc};

use super::view::{CHUNK, View};
use exchange_core::index::Scan;

/// Rows returned when the request does not say.
pub const DEFAULT_ROWS: usize = 1000;
/// Most rows a query may return.
pub const MAX_ROWS: usize = 10_000;
/// Wall-clock time a query may take, waiting for a slot included.
pub const TIME_LIMIT: Duration = Duration::from_secs(10);
/// Memory the operators of one query may hold (sorts, joins, aggregations).
pub const MEMORY_LIMIT: usize = 256 << 20;
/// Queries run at once; more wait for a slot (within the time limit).
pub const CONCURRENT_QUERIES: usize = 2;

/// Lab queries run here, apart from the workers that serve the exchange API, so a heavy query
/// cannot stall a lookup.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("huitong-lab")
        .enable_all()
        .build()
        .expect("the lab runtime starts")
});

static SLOTS: Semaphore = Semaphore::const_new(CONCURRENT_QUERIES);

/// One view of a lab session.
#[derive(Clone)]
pub struct LabView {
    /// The table name in SQL.
    pub name: String,
    /// The resource it shows.
    pub resource_code: String,
    /// The resource's name.
    pub resource_name: String,
    /// The grant behind it, if one was needed.
    pub grant_id: Option<i64>,
    /// The caller's view of the library.
    pub view: Arc<View>,
    /// The library.
    pub library: Arc<Library>,
}

/// The SQL name of a resource's view.
pub fn view_name(resource_code: &str) -> String {
    format!("r_{}", resource_code.replace('-', "_").to_lowercase())
}

/// Why a query was not answered.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The text is not SQL.
    #[error("{0}")]
    InvalidSql(String),
    /// SQL, but not one read-only query.
    #[error("{0}")]
    NotAllowed(String),
    /// It names a table that is none of the caller's views.
    #[error("{0} is none of your views (GET /api/v1/lab/views lists them)")]
    UnknownView(String),
    /// It ran out of time.
    #[error("the query ran longer than {} s", TIME_LIMIT.as_secs())]
    Timeout,
    /// It needed more memory than a query may hold.
    #[error("the query needs more than {limit} MiB of memory: {0}", limit = MEMORY_LIMIT >> 20)]
    TooLarge(String),
    /// It failed while running (a cast of a value that is not a number, …).
    #[error("{0}")]
    Failed(String),
}

/// A query's answer.
pub struct Answer {
    /// The result's schema.
    pub schema: SchemaRef,
    /// At most `max_rows` rows.
    pub batches: Vec<RecordBatch>,
    /// Whether rows were left out.
    pub truncated: bool,
    /// The views the query named.
    pub views_read: Vec<String>,
}

/// Runs `sql` over `views`, returning at most `max_rows` rows, within [`TIME_LIMIT`].
pub async fn run(sql: String, views: Vec<LabView>, max_rows: usize) -> Result<Answer, LabError> {
    let deadline = tokio::time::Instant::now() + TIME_LIMIT;
    let permit = tokio::time::timeout_at(deadline, SLOTS.acquire())
        .await
        .map_err(|_| LabError::Timeout)?
        .expect("the semaphore is never closed");
    let task = RUNTIME.spawn(async move { plan_and_run(&sql, &views, max_rows).await });
    let abort = task.abort_handle();
    let answer = match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(join)) => Err(LabError::Failed(format!("the query stopped: {join}"))),
        Err(_) => {
            abort.abort();
            Err(LabError::Timeout)
        }
    };
    drop(permit);
    answer
}

fn session(views: &[LabView]) -> Result<SessionContext, DataFusionError> {
    let config = SessionConfig::new()
        .with_information_schema(false)
        .with_target_partitions(2)
        .with_batch_size(CHUNK);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(MEMORY_LIMIT, 1.0)
        .build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    let ctx = SessionContext::new_with_state(state);
    for view in views {
        let partition = ViewPartition {
            schema: view.view.arrow.clone(),
            view: view.view.clone(),
            library: view.library.clone(),
        };
        let table = StreamingTable::try_new(view.view.arrow.clone(), vec![Arc::new(partition)])?;
        ctx.register_table(view.name.as_str(), Arc::new(table))?;
    }
    Ok(ctx)
}

async fn plan_and_run(sql: &str, views: &[LabView], max_rows: usize) -> Result<Answer, LabError> {
    let ctx = session(views).map_err(|e| LabError::Failed(e.to_string()))?;
    let state = ctx.state();
    let mut statements = DFParserBuilder::new(sql)
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| LabError::InvalidSql(e.to_string()))?;
    if statements.len() != 1 {
        return Err(LabError::NotAllowed(format!(
            "one SELECT per call; this holds {} statements",
            statements.len()
        )));
    }
    let statement = statements.pop_front().expect("one statement");
    let is_query = matches!(&statement, DfStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_)));
    if !is_query {
        return Err(LabError::NotAllowed(
            "only a query (SELECT, WITH … SELECT, VALUES) runs in the lab; nothing that writes, defines, copies, explains or sets".into(),
        ));
    }
    let references = state
        .resolve_table_references(&statement)
        .map_err(|e| LabError::InvalidSql(e.to_string()))?;
    let mut views_read = Vec::new();
    for reference in &references {
        let known = reference.schema().is_none() && views.iter().any(|v| v.name == reference.table());
        if !known {
            return Err(LabError::UnknownView(reference.to_string()));
        }
        if !views_read.contains(&reference.table().to_string()) {
            views_read.push(reference.table().to_string());
        }
    }
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(|e| LabError::InvalidSql(e.to_string()))?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|e| LabError::NotAllowed(e.to_string()))?;
    let frame = ctx.execute_logical_plan(plan).await.map_err(failure)?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let mut stream = frame.execute_stream().await.map_err(failure)?;
    let mut batches = Vec::new();
    let mut rows = 0;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(failure)?;
        if rows + batch.num_rows() > max_rows {
            batches.push(batch.slice(0, max_rows - rows));
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        batches.push(batch);
    }
    Ok(Answer {
        schema,
        batches,
        truncated,
        views_read,
    })
}

fn failure(e: DataFusionError) -> LabError {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(message) => LabError::TooLarge(message.clone()),
        _ => LabError::Failed(e.to_string()),
    }
}

/// A view's rows, read from the serving index when the query runs.
struct ViewPartition {
    schema: SchemaRef,
    view: Arc<View>,
    library: Arc<Library>,
}

impl std::fmt::Debug for ViewPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewPartition").field("view", &self.view).finish()
    }
}

impl PartitionStream for ViewPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        // Two chunks in flight: a query that stops early (LIMIT) stops the reader too.
        let (tx, rx) = mpsc::channel::<Result<RecordBatch, DataFusionError>>(2);
        let view = self.view.clone();
        let library = self.library.clone();
        tokio::task::spawn_blocking(move || {
            let reader = match library.reader() {
                Ok(reader) => reader,
                Err(e) => {
                    let _ = tx.blocking_send(Err(DataFusionError::External(Box::new(e))));
                    return;
                }
            };
            let mut scan = Scan::new(reader, None);
            loop {
                let item = match scan.next_chunk(CHUNK) {
                    Ok(chunk) if chunk.is_empty() => return,
                    Ok(chunk) => view
                        .select(&chunk, None)
                        .map(|(_, batch)| batch)
                        .map_err(|e| DataFusionError::External(Box::new(e))),
                    Err(e) => Err(DataFusionError::External(Box::new(e))),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
