//! The audit trail (全程留痕、可追溯): one record per call, allowed or denied, each holding the
//! hash of the one before, so changing, removing or inserting a record breaks the chain at that
//! point.
//!
//! Records are written by one task in group commits: callers queue their record and wait until
//! the transaction holding it has committed (durable: SQLite runs with `synchronous = FULL`),
//! so throughput is not capped by one fsync per call and no response leaves unrecorded.

use futures::TryStreamExt;
use serde::Serialize;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use catalog::{Catalog, now_text};

use crate::{Error, Result, sha256_hex};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Most records per group commit.
const MAX_GROUP: usize = 512;

/// What happened in one call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// The request id (X-Request-Id, or generated).
    pub request_id: String,
    /// The credential used, when one was valid.
    pub credential_id: Option<i64>,
    /// The caller's department code.
    pub department: Option<String>,
    /// The resource called.
    pub resource_code: Option<String>,
    /// Method and route, e.g. `GET /api/v1/exchange/{resource_code}/records/{key}`.
    pub endpoint: String,
    /// Keyed hash of the record key or filter (never the key itself).
    pub subject_hash: Option<String>,
    /// HTTP status returned.
    pub status: u16,
    /// `allowed`, or the problem code.
    pub outcome: String,
    /// Items returned unmasked.
    pub items_plain: Vec<String>,
    /// Items returned masked.
    pub items_masked: Vec<String>,
    /// The grant that allowed the call.
    pub grant_id: Option<i64>,
    /// Time spent serving, in microseconds.
    pub latency_us: i64,
    /// Records returned (allowed calls).
    pub row_count: Option<i64>,
    /// The demand the grant answers.
    pub demand_id: Option<i64>,
    /// Keyed hash of the client address, for calls without a credential (anonymous open data).
    pub client_hash: Option<String>,
    /// The open-data application (开放申请) that allowed the call.
    pub application_id: Option<i64>,
}

/// A stored record as hashed: field order is part of the chain format.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    at: &'a str,
    request_id: &'a str,
    credential_id: Option<i64>,
    department: Option<&'a str>,
    resource_code: Option<&'a str>,
    endpoint: &'a str,
    subject_hash: Option<&'a str>,
    status: i64,
    outcome: &'a str,
    items_plain: &'a str,
    items_masked: &'a str,
    grant_id: Option<i64>,
    latency_us: i64,
    // Added later: absent from the hashed form when empty, so older records keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    row_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    demand_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    application_id: Option<i64>,
}

impl Canonical<'_> {
    fn hash(&self, prev_hash: &str) -> String {
        let body = serde_json::to_vec(self).expect("plain data serializes");
        sha256_hex(&[prev_hash.as_bytes(), b"\n", &body])
    }
}

type Pending = (AuditEntry, oneshot::Sender<Result<i64, String>>);

/// The handle to the audit writer.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
}

impl AuditLog {
    /// Starts the writer task, continuing the chain already in `catalog`.
    pub async fn start(catalog: Catalog) -> Result<Self> {
        let head = chain_head(&catalog).await?;
        let (tx, rx) = mpsc::channel(8 * MAX_GROUP);
        // The writer has a thread and a single-threaded runtime of its own: waking it (a call
        // queued) and being woken (its commit done) then costs one thread switch each, where a
        // task among the server's others also woke idle workers of the shared runtime.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::AuditUnavailable(format!("starting the audit writer: {e}")))?;
        std::thread::Builder::new()
            .name("huitong-audit".into())
            .spawn(move || runtime.block_on(writer(catalog, rx, head)))
            .map_err(|e| Error::AuditUnavailable(format!("starting the audit writer: {e}")))?;
        Ok(Self { tx })
    }

    /// Appends `entry` and returns its sequence number once it is durable.
    pub async fn record(&self, entry: AuditEntry) -> Result<i64> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((entry, done))
            .await
            .map_err(|_| Error::AuditUnavailable("writer stopped".into()))?;
        wait.await
            .map_err(|_| Error::AuditUnavailable("writer stopped".into()))?
            .map_err(Error::AuditUnavailable)
    }
}

async fn chain_head(catalog: &Catalog) -> Result<(i64, String)> {
    let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(catalog.pool())
        .await?;
    Ok(match row {
        Some(row) => (row.try_get("seq")?, row.try_get("hash")?),
        None => (0, GENESIS_HASH.to_string()),
    })
}

async fn writer(catalog: Catalog, mut rx: mpsc::Receiver<Pending>, mut head: (i64, String)) {
    let full_statement = insert_statement(catalog.backend(), ROWS_PER_STATEMENT);
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        match write_group(&catalog, &full_statement, &group, &head).await {
            Ok(new_head) => {
                let first_seq = head.0 + 1;
                head = new_head;
                for (i, (_, done)) in group.into_iter().enumerate() {
                    let _ = done.send(Ok(first_seq + i as i64));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit group commit failed; calls refused");
                for (_, done) in group {
                    let _ = done.send(Err(e.to_string()));
                }
                if let Ok(reloaded) = chain_head(&catalog).await {
                    head = reloaded;
                }
            }
        }
    }
}

/// Columns of `audit_log`, in insert order.
const COLUMNS: &str = "seq, at, request_id, credential_id, department, resource_code, endpoint, subject_hash, \
    status, outcome, items_plain, items_masked, grant_id, latency_us, prev_hash, hash, row_count, demand_id, client_hash, application_id";
const COLUMN_COUNT: usize = 20;

/// Records per INSERT statement: one statement per record cost more than the fsync.
const ROWS_PER_STATEMENT: usize = 64;

/// `INSERT INTO audit_log (…) VALUES ($1, …), …` for `rows` records. SQLite gets anonymous
/// `?` placeholders: looking up a numbered one costs a scan of all of them, per value bound.
fn insert_statement(backend: catalog::Backend, rows: usize) -> String {
    let mut sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..COLUMN_COUNT {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                catalog::Backend::Sqlite => sql.push('?'),
                catalog::Backend::Postgres => sql.push_str(&format!("${}", row * COLUMN_COUNT + column + 1)),
            }
        }
        sql.push(')');
    }
    sql
}

/// One record as stored: its canonical form and chain links.
struct Stored {
    seq: i64,
    items_plain: String,
    items_masked: String,
    prev_hash: String,
    hash: String,
}

/// Writes `group` after `head` in one transaction; `full_statement` inserts a full chunk.
async fn write_group(
    catalog: &Catalog,
    full_statement: &str,
    group: &[Pending],
    head: &(i64, String),
) -> Result<(i64, String)> {
    let (mut seq, mut prev_hash) = head.clone();
    let at = now_text();
    let mut stored = Vec::with_capacity(group.len());
    for (entry, _) in group {
        seq += 1;
        let items_plain = serde_json::to_string(&entry.items_plain).unwrap_or_default();
        let items_masked = serde_json::to_string(&entry.items_masked).unwrap_or_default();
        let hash = canonical(seq, &at, entry, &items_plain, &items_masked).hash(&prev_hash);
        stored.push(Stored {
            seq,
            items_plain,
            items_masked,
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
    }
    let mut tx = catalog.pool().begin().await?;
    for (records, entries) in stored.chunks(ROWS_PER_STATEMENT).zip(group.chunks(ROWS_PER_STATEMENT)) {
        let partial;
        let sql = if records.len() == ROWS_PER_STATEMENT {
            full_statement
        } else {
            partial = insert_statement(catalog.backend(), records.len());
            partial.as_str()
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (record, (entry, _)) in records.iter().zip(entries) {
            query = query
                .bind(record.seq)
                .bind(&at)
                .bind(&entry.request_id)
                .bind(entry.credential_id)
                .bind(entry.department.as_deref())
                .bind(entry.resource_code.as_deref())
                .bind(&entry.endpoint)
                .bind(entry.subject_hash.as_deref())
                .bind(i64::from(entry.status))
                .bind(&entry.outcome)
                .bind(&record.items_plain)
                .bind(&record.items_masked)
                .bind(entry.grant_id)
                .bind(entry.latency_us)
                .bind(&record.prev_hash)
                .bind(&record.hash)
                .bind(entry.row_count)
                .bind(entry.demand_id)
                .bind(entry.client_hash.as_deref())
                .bind(entry.application_id);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok((seq, prev_hash))
}

fn canonical<'a>(seq: i64, at: &'a str, entry: &'a AuditEntry, plain: &'a str, masked: &'a str) -> Canonical<'a> {
    Canonical {
        seq,
        at,
        request_id: &entry.request_id,
        credential_id: entry.credential_id,
        department: entry.department.as_deref(),
        resource_code: entry.resource_code.as_deref(),
        endpoint: &entry.endpoint,
        subject_hash: entry.subject_hash.as_deref(),
        status: i64::from(entry.status),
        outcome: &entry.outcome,
        items_plain: plain,
        items_masked: masked,
        grant_id: entry.grant_id,
        latency_us: entry.latency_us,
        row_count: entry.row_count,
        demand_id: entry.demand_id,
        client_hash: entry.client_hash.as_deref(),
        application_id: entry.application_id,
    }
}

/// The first record where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BrokenLink {
    /// Its sequence number.
    pub seq: i64,
    /// What does not hold.
    pub reason: String,
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Records checked.
    pub records: u64,
    /// The first broken link, if any.
    pub first_broken: Option<BrokenLink>,
}

/// Recomputes every record's hash in order; stops at the first that does not hold: a changed
/// record, a removed one (a gap in sequence numbers), or a `prev_hash` that does not match.
pub async fn verify(catalog: &Catalog) -> Result<ChainReport> {
    let mut rows = sqlx::query(
        "SELECT seq, at, request_id, credential_id, department, resource_code, endpoint, \
         subject_hash, status, outcome, items_plain, items_masked, grant_id, latency_us, \
         prev_hash, hash, row_count, demand_id, client_hash, application_id FROM audit_log ORDER BY seq",
    )
    .fetch(catalog.pool());
    let mut expected_prev = GENESIS_HASH.to_string();
    let mut expected_seq = 1i64;
    let mut records = 0u64;
    while let Some(row) = rows.try_next().await? {
        records += 1;
        let seq: i64 = row.try_get("seq")?;
        let broken = |reason: String| {
            Ok(ChainReport {
                records,
                first_broken: Some(BrokenLink { seq, reason }),
            })
        };
        if seq != expected_seq {
            return broken(format!(
                "expected record {expected_seq} next, found {seq}: records were removed"
            ));
        }
        let prev_hash: String = row.try_get("prev_hash")?;
        if prev_hash != expected_prev {
            return broken("prev_hash does not match the previous record's hash".into());
        }
        let text = |c: &str| row.try_get::<String, _>(c);
        let opt = |c: &str| row.try_get::<Option<String>, _>(c);
        let (at, request_id, endpoint, outcome) =
            (text("at")?, text("request_id")?, text("endpoint")?, text("outcome")?);
        let (items_plain, items_masked) = (text("items_plain")?, text("items_masked")?);
        let (department, resource_code, subject_hash, client_hash) = (
            opt("department")?,
            opt("resource_code")?,
            opt("subject_hash")?,
            opt("client_hash")?,
        );
        let canonical = Canonical {
            seq,
            at: &at,
            request_id: &request_id,
            credential_id: row.try_get("credential_id")?,
            department: department.as_deref(),
            resource_code: resource_code.as_deref(),
            endpoint: &endpoint,
            subject_hash: subject_hash.as_deref(),
            status: row.try_get("status")?,
            outcome: &outcome,
            items_plain: &items_plain,
            items_masked: &items_masked,
            grant_id: row.try_get("grant_id")?,
            latency_us: row.try_get("latency_us")?,
            row_count: row.try_get("row_count")?,
            demand_id: row.try_get("demand_id")?,
            client_hash: client_hash.as_deref(),
            application_id: row.try_get("application_id")?,
        };
        let hash: String = row.try_get("hash")?;
        if canonical.hash(&prev_hash) != hash {
            return broken("the record's content does not match its hash: it was changed".into());
        }
        expected_prev = hash;
        expected_seq += 1;
    }
    Ok(ChainReport {
        records,
        first_broken: None,
    })
}

/// A stored audit record, as listed to the people allowed to see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Position in the chain.
    pub seq: i64,
    /// When it was recorded (UTC).
    pub at: String,
    /// The request id.
    pub request_id: String,
    /// The credential used.
    pub credential_id: Option<i64>,
    /// The caller's department code.
    pub department: Option<String>,
    /// The resource called.
    pub resource_code: Option<String>,
    /// Method and route.
    pub endpoint: String,
    /// Keyed hash of the key, keys, filter or SQL.
    pub subject_hash: Option<String>,
    /// HTTP status.
    pub status: i64,
    /// `allowed` or the problem code.
    pub outcome: String,
    /// Items returned unmasked.
    pub items_plain: Vec<String>,
    /// Items returned masked.
    pub items_masked: Vec<String>,
    /// Records returned.
    pub row_count: Option<i64>,
    /// The grant that allowed the call.
    pub grant_id: Option<i64>,
    /// The demand behind that grant.
    pub demand_id: Option<i64>,
    /// Keyed hash of the client address (anonymous open-data calls).
    pub client_hash: Option<String>,
    /// The open-data application that allowed the call.
    pub application_id: Option<i64>,
    /// Time spent serving, in microseconds.
    pub latency_us: i64,
    /// The record's hash (the next record's `prev_hash`).
    pub hash: String,
}

/// Which records a query returns. Times are in the stored form (UTC, RFC 3339 with
/// microseconds), compared as text.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only calls on this resource.
    pub resource_code: Option<String>,
    /// Only calls made for this department (its code).
    pub caller_department: Option<String>,
    /// Only calls by this credential.
    pub credential_id: Option<i64>,
    /// Only calls on resources this department provides, or made by it (a provider's view).
    pub provider_department_id: Option<i64>,
    /// Recorded at or after.
    pub from: Option<String>,
    /// Recorded before.
    pub to: Option<String>,
    /// Records after this sequence number (paging).
    pub after_seq: i64,
    /// At most this many.
    pub limit: i64,
}

/// The records `query` selects, oldest first.
pub async fn query(catalog: &Catalog, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
    let mut conditions = vec!["seq > $1".to_string()];
    let mut texts: Vec<&str> = Vec::new();
    let mut numbers: Vec<i64> = Vec::new();
    // Placeholders are numbered: the cursor ($1), texts, numbers, then the limit.
    for (column, op, value) in [
        ("resource_code", "=", query.resource_code.as_deref()),
        ("department", "=", query.caller_department.as_deref()),
        ("at", ">=", query.from.as_deref()),
        ("at", "<", query.to.as_deref()),
    ] {
        if let Some(value) = value {
            texts.push(value);
            conditions.push(format!("{column} {op} ${}", 1 + texts.len()));
        }
    }
    if let Some(id) = query.credential_id {
        numbers.push(id);
        conditions.push(format!("credential_id = ${}", 1 + texts.len() + numbers.len()));
    }
    if let Some(id) = query.provider_department_id {
        numbers.push(id);
        let n = 1 + texts.len() + numbers.len();
        conditions.push(format!(
            "(resource_code IN (SELECT code FROM resources WHERE provider_id = ${n}) \
             OR department = (SELECT code FROM departments WHERE id = ${n}))"
        ));
    }
    let limit_placeholder = 2 + texts.len() + numbers.len();
    let sql = format!(
        "SELECT seq, at, request_id, credential_id, department, resource_code, endpoint, subject_hash, \
         status, outcome, items_plain, items_masked, row_count, grant_id, demand_id, client_hash, application_id, \
         latency_us, hash \
         FROM audit_log WHERE {} ORDER BY seq LIMIT ${limit_placeholder}",
        conditions.join(" AND ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(query.after_seq);
    for text in texts {
        q = q.bind(text);
    }
    for number in numbers {
        q = q.bind(number);
    }
    let rows = q.bind(query.limit).fetch_all(catalog.pool()).await?;
    let list = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
    rows.iter()
        .map(|row| {
            Ok(AuditRecord {
                seq: row.try_get("seq")?,
                at: row.try_get("at")?,
                request_id: row.try_get("request_id")?,
                credential_id: row.try_get("credential_id")?,
                department: row.try_get("department")?,
                resource_code: row.try_get("resource_code")?,
                endpoint: row.try_get("endpoint")?,
                subject_hash: row.try_get("subject_hash")?,
                status: row.try_get("status")?,
                outcome: row.try_get("outcome")?,
                items_plain: list(row.try_get("items_plain")?),
                items_masked: list(row.try_get("items_masked")?),
                row_count: row.try_get("row_count")?,
                grant_id: row.try_get("grant_id")?,
                demand_id: row.try_get("demand_id")?,
                client_hash: row.try_get("client_hash")?,
                application_id: row.try_get("application_id")?,
                latency_us: row.try_get("latency_us")?,
                hash: row.try_get("hash")?,
            })
        })
        .collect()
}
