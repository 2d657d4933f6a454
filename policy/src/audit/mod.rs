//! The audit trail (全程留痕、可追溯): one record per call, allowed or denied, each holding the
//! hash of the one before, so changing, removing or inserting a record breaks the chain at that
//! point.
//!
//! Records are written by one thread in group commits to an append-only journal
//! ([`journal`]): callers queue their record and wait until the group holding it is written and
//! synced, so throughput is not capped by one sync per call and no response leaves unrecorded.
//! A second thread moves journaled records into the metadata DB's `audit_log` in large
//! transactions, off the call path; [`AuditLog::settle`] waits for it, so readers of the table
//! see every call answered before they asked. After a crash, the records the journal holds and
//! the DB does not are moved at the next start.

mod journal;

use std::path::{Path, PathBuf};
use std::sync::mpsc as sync_mpsc;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use catalog::{Catalog, now_text};

use crate::{Error, Result, sha256_hex};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Most records per group commit.
const MAX_GROUP: usize = 512;

/// Records the ingester gathers into one DB transaction while calls keep coming: small enough
/// that a transaction does not hold a core for long (its commits do not sync: see [`ingester`]).
const INGEST_BATCH: usize = 512;

/// How long calls pause before the ingester writes what it has gathered.
const INGEST_IDLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Groups that may wait for the ingester before the writer waits too.
const INGEST_QUEUE: usize = 4096;

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

/// A record as hashed, in the journal and the DB: field order is part of the chain format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Canonical<S> {
    seq: i64,
    at: S,
    request_id: S,
    credential_id: Option<i64>,
    department: Option<S>,
    resource_code: Option<S>,
    endpoint: S,
    subject_hash: Option<S>,
    status: i64,
    outcome: S,
    items_plain: S,
    items_masked: S,
    grant_id: Option<i64>,
    latency_us: i64,
    // Added later: absent from the hashed form when empty, so older records keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    row_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    demand_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_hash: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    application_id: Option<i64>,
}

impl<S: AsRef<str>> Canonical<S> {
    /// Serializes into `body` (cleared first) and returns the hash chained to `prev_hash`.
    fn hash_into(&self, prev_hash: &str, body: &mut Vec<u8>) -> String {
        body.clear();
        self.write_json(body);
        sha256_hex(&[prev_hash.as_bytes(), b"\n", body])
    }

    /// Appends exactly what `serde_json::to_writer` writes for this record (a property test
    /// holds it to that: the bytes are hashed), without serde's per-byte escaping scan: the
    /// journal writer serializes every call's record, and that scan was 1.7 % of the CPU of an
    /// exchange lookup under load.
    fn write_json(&self, o: &mut Vec<u8>) {
        fn key(o: &mut Vec<u8>, name: &str) {
            if o.last() != Some(&b'{') {
                o.push(b',');
            }
            o.push(b'"');
            o.extend_from_slice(name.as_bytes());
            o.extend_from_slice(b"\":");
        }
        fn int(o: &mut Vec<u8>, name: &str, value: Option<i64>) {
            key(o, name);
            match value {
                Some(v) => o.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
                None => o.extend_from_slice(b"null"),
            }
        }
        fn text<S: AsRef<str>>(o: &mut Vec<u8>, name: &str, value: Option<&S>) {
            key(o, name);
            match value {
                Some(v) => json_str(o, v.as_ref()),
                None => o.extend_from_slice(b"null"),
            }
        }
        o.push(b'{');
        int(o, "seq", Some(self.seq));
        text(o, "at", Some(&self.at));
        text(o, "request_id", Some(&self.request_id));
        int(o, "credential_id", self.credential_id);
        text(o, "department", self.department.as_ref());
        text(o, "resource_code", self.resource_code.as_ref());
        text(o, "endpoint", Some(&self.endpoint));
        text(o, "subject_hash", self.subject_hash.as_ref());
        int(o, "status", Some(self.status));
        text(o, "outcome", Some(&self.outcome));
        text(o, "items_plain", Some(&self.items_plain));
        text(o, "items_masked", Some(&self.items_masked));
        int(o, "grant_id", self.grant_id);
        int(o, "latency_us", Some(self.latency_us));
        // Left out when empty, as `skip_serializing_if` does.
        if self.row_count.is_some() {
            int(o, "row_count", self.row_count);
        }
        if self.demand_id.is_some() {
            int(o, "demand_id", self.demand_id);
        }
        if self.client_hash.is_some() {
            text(o, "client_hash", self.client_hash.as_ref());
        }
        if self.application_id.is_some() {
            int(o, "application_id", self.application_id);
        }
        o.push(b'}');
    }

    fn hash(&self, prev_hash: &str) -> String {
        self.hash_into(prev_hash, &mut Vec::with_capacity(512))
    }
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it: `"` and `\\` get a
/// backslash, and a string with a control character is left to serde_json itself.
fn json_str(o: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if bytes.iter().any(|&b| b < 0x20) {
        serde_json::to_writer(&mut *o, s).expect("a string serializes");
        return;
    }
    o.reserve(bytes.len() + 2);
    o.push(b'"');
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' || b == b'\\' {
            o.extend_from_slice(&bytes[run..i]);
            o.push(b'\\');
            run = i;
        }
    }
    o.extend_from_slice(&bytes[run..]);
    o.push(b'"');
}

/// `items` as a JSON array of strings, exactly as `serde_json::to_string` writes it (a
/// property test holds it to that): the writer makes two per call.
fn json_list(items: &[String]) -> String {
    let mut o = Vec::with_capacity(2 + items.iter().map(|i| i.len() + 3).sum::<usize>());
    o.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            o.push(b',');
        }
        json_str(&mut o, item);
    }
    o.push(b']');
    // Whole `&str`s and ASCII punctuation: valid UTF-8.
    String::from_utf8(o).unwrap_or_default()
}

impl Canonical<String> {
    fn new(seq: i64, at: String, entry: AuditEntry) -> Self {
        Self {
            seq,
            at,
            request_id: entry.request_id,
            credential_id: entry.credential_id,
            department: entry.department,
            resource_code: entry.resource_code,
            endpoint: entry.endpoint,
            subject_hash: entry.subject_hash,
            status: i64::from(entry.status),
            outcome: entry.outcome,
            items_plain: json_list(&entry.items_plain),
            items_masked: json_list(&entry.items_masked),
            grant_id: entry.grant_id,
            latency_us: entry.latency_us,
            row_count: entry.row_count,
            demand_id: entry.demand_id,
            client_hash: entry.client_hash,
            application_id: entry.application_id,
        }
    }
}

/// A record with its chain links, as the DB stores it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    canonical: Canonical<String>,
    prev_hash: String,
    hash: String,
}

type Done<T> = oneshot::Sender<Result<T, String>>;

/// Answers for calls waiting on one thread: each call's sender and what it is told.
type Answers = Vec<(Done<i64>, Result<i64, String>)>;

/// Where the writer sends the answers for the calls waiting on one thread.
type Route = mpsc::UnboundedSender<Answers>;

thread_local! {
    /// This thread's route, once [`AuditLog::answer_on_this_thread`] was called on it.
    static ROUTE: std::cell::RefCell<Option<Route>> = const { std::cell::RefCell::new(None) };
}

// Nearly every message is a record: boxing it would cost an allocation per call.
#[expect(clippy::large_enum_variant, reason = "records are the common case")]
enum Message {
    /// A call's record, where to say its sequence number once it is durable, and the route of
    /// the thread the call waits on, if it has one.
    Record(AuditEntry, Done<i64>, Option<Route>),
    /// Say when every record journaled so far is in the DB.
    Settle(Done<()>),
}

enum Ingest {
    /// A journaled group.
    Records(Vec<Record>),
    /// Answer once every record handed over before is in the DB.
    Settle(Done<()>),
    /// A journal segment whose records were all handed over before: removed once they are in.
    SegmentEnded(PathBuf),
}

/// The handle to the audit writer.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
    dir: PathBuf,
}

impl AuditLog {
    /// Moves into `catalog` what the journal in `dir` holds beyond it (records of calls
    /// answered before a crash), then starts the writer and the DB ingester, continuing the
    /// chain. Fails when the journal does not continue the DB's chain: it was damaged or
    /// changed, and the operator has to look at it.
    pub async fn start(catalog: Catalog, dir: &Path) -> Result<Self> {
        let head = recover(&catalog, dir).await?;
        let journal = journal::Journal::create(dir, head.0 + 1)
            .map_err(|e| Error::AuditUnavailable(format!("opening the audit journal in {}: {e}", dir.display())))?;
        let (tx, rx) = mpsc::channel(8 * MAX_GROUP);
        let (ingest_tx, ingest_rx) = sync_mpsc::sync_channel(INGEST_QUEUE);
        // The ingester awaits sqlx on a single-threaded runtime of its own.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::AuditUnavailable(format!("starting the audit ingester: {e}")))?;
        std::thread::Builder::new()
            .name("huitong-audit-db".into())
            .spawn(move || {
                lower_priority();
                runtime.block_on(ingester(catalog, ingest_rx))
            })
            .map_err(|e| Error::AuditUnavailable(format!("starting the audit ingester: {e}")))?;
        // The writer is a plain thread: it blocks on the file, and waking it (a call queued)
        // or being woken by it (its group synced) costs one thread switch each.
        std::thread::Builder::new()
            .name("huitong-audit".into())
            .spawn(move || writer(rx, journal, head, ingest_tx))
            .map_err(|e| Error::AuditUnavailable(format!("starting the audit writer: {e}")))?;
        Ok(Self {
            tx,
            dir: dir.to_path_buf(),
        })
    }

    /// The journal's directory, for [`verify`].
    pub fn journal_dir(&self) -> &Path {
        &self.dir
    }

    /// Has the calls recorded on this thread answered by one task of its own: the writer then
    /// wakes the thread once per group, not once per call. Waking a task from another thread
    /// costs a system call (tokio writes to the runtime's eventfd each time), one per call
    /// without this: under load that was one `write` per exchange lookup.
    ///
    /// For the worker threads of the server; call it on the thread, inside its `LocalSet` (an
    /// actix-web worker builds its app there). A thread without it has each call woken alone.
    pub fn answer_on_this_thread() {
        ROUTE.with(|route| {
            let mut route = route.borrow_mut();
            if route.is_some() {
                return;
            }
            let (tx, mut rx) = mpsc::unbounded_channel::<Answers>();
            tokio::task::spawn_local(async move {
                while let Some(answers) = rx.recv().await {
                    for (done, answer) in answers {
                        let _ = done.send(answer);
                    }
                }
            });
            *route = Some(tx);
        });
    }

    /// Appends `entry` and returns its sequence number once it is durable.
    pub async fn record(&self, entry: AuditEntry) -> Result<i64> {
        let (done, wait) = oneshot::channel();
        let route = ROUTE.with(|route| route.borrow().clone());
        self.send(Message::Record(entry, done, route)).await?;
        wait.await
            .map_err(|_| Error::AuditUnavailable("writer stopped".into()))?
            .map_err(Error::AuditUnavailable)
    }

    /// Returns once every record of a call answered before this was called is in the DB's
    /// `audit_log`: readers of the table call it first.
    pub async fn settle(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.send(Message::Settle(done)).await?;
        wait.await
            .map_err(|_| Error::AuditUnavailable("writer stopped".into()))?
            .map_err(Error::AuditUnavailable)
    }

    async fn send(&self, message: Message) -> Result<()> {
        self.tx
            .send(message)
            .await
            .map_err(|_| Error::AuditUnavailable("writer stopped".into()))
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

/// Moves the journal's records beyond the DB's chain head into the DB, removes the journal's
/// segments and returns the new head.
async fn recover(catalog: &Catalog, dir: &Path) -> Result<(i64, String)> {
    let unavailable = |what: String| Error::AuditUnavailable(format!("audit journal {}: {what}", dir.display()));
    let (seq, hash) = chain_head(catalog).await?;
    let mut chain = Chain::after(seq, hash);
    let segments = journal::segments(dir).map_err(|e| unavailable(e.to_string()))?;
    let mut conn = None;
    let mut batch = Vec::new();
    for (i, (_, path)) in segments.iter().enumerate() {
        let mut broken = None;
        journal::read_segment(path, i + 1 == segments.len(), |line| {
            if line.record.seq < chain.next_seq {
                return std::ops::ControlFlow::Continue(());
            }
            let prev_hash = chain.prev_hash.clone();
            broken = chain.check(&line.record, None, &line.hash);
            if broken.is_some() {
                return std::ops::ControlFlow::Break(());
            }
            batch.push(Record {
                canonical: line.record,
                prev_hash,
                hash: line.hash,
            });
            std::ops::ControlFlow::Continue(())
        })
        .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        if let Some(broken) = broken {
            let (file, seq, reason) = (path.display(), broken.seq, broken.reason);
            return Err(unavailable(format!("{file}: record {seq}: {reason}")));
        }
        if !batch.is_empty() {
            // The ingester's kind of connection (on SQLite its inserts block this thread, at
            // start-up only); every commit waits for the disk, as the segments go next.
            let conn = match &mut conn {
                Some(conn) => conn,
                None => conn.insert(IngestConnection::open(catalog).await?),
            };
            for chunk in batch.chunks(INGEST_BATCH) {
                conn.insert(chunk, true).await?;
            }
            tracing::warn!(
                records = batch.len(),
                "audit records of calls answered before a stop moved from the journal into the DB"
            );
        }
        batch.clear();
    }
    for (_, path) in &segments {
        std::fs::remove_file(path).map_err(|e| unavailable(format!("removing {}: {e}", path.display())))?;
    }
    Ok((chain.next_seq - 1, chain.prev_hash))
}

/// The writer thread: gathers queued records into groups, chains, journals and syncs each
/// group, answers its callers, and hands the records on to the ingester.
fn writer(
    mut rx: mpsc::Receiver<Message>,
    mut journal: journal::Journal,
    mut head: (i64, String),
    ingest: sync_mpsc::SyncSender<Ingest>,
) {
    let mut body = Vec::with_capacity(1024);
    // Kept across groups, so a group's calls are not moved again as it grows.
    let mut group = Vec::new();
    let hand_over = |message: Ingest| {
        if let Err(sync_mpsc::SendError(Ingest::Settle(done))) = ingest.send(message) {
            let _ = done.send(Err("the audit DB ingester stopped".into()));
        }
    };
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Record(entry, done, route) => group.push((entry, (done, route))),
                // In order: the ingester answers it after the records handed over before.
                Message::Settle(done) => hand_over(Ingest::Settle(done)),
            }
            if group.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        if group.is_empty() {
            continue;
        }
        let at = now_text();
        let (first_seq, mut prev_hash) = (head.0 + 1, head.1.clone());
        let mut records = Vec::with_capacity(group.len());
        let mut waiting = Vec::with_capacity(group.len());
        for (i, (entry, done)) in group.drain(..).enumerate() {
            let canonical = Canonical::new(first_seq + i as i64, at.clone(), entry);
            let hash = canonical.hash_into(&prev_hash, &mut body);
            let record = Record {
                canonical,
                prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
            };
            journal.push(&record, &body);
            records.push(record);
            waiting.push(done);
        }
        if journal.full() {
            // Every record of the segment it ends was handed over before this group.
            match journal.rotate(first_seq) {
                Ok(ended) => hand_over(Ingest::SegmentEnded(ended)),
                Err(e) => {
                    tracing::error!(error = %e, "starting the next audit journal segment; the current one goes on")
                }
            }
        }
        match journal.commit() {
            Ok(()) => {
                head = (first_seq + records.len() as i64 - 1, prev_hash);
                answer(waiting, |i| Ok(first_seq + i as i64));
                hand_over(Ingest::Records(records));
            }
            Err(e) => {
                tracing::error!(error = %e, "audit journal write failed; calls refused");
                answer(waiting, |_| Err(format!("writing the audit journal: {e}")));
            }
        }
    }
}

/// Tells each waiting call (in group order) its answer: through its thread's route, one
/// message per thread, or directly when it has none (or the route's task is gone).
fn answer(waiting: Vec<(Done<i64>, Option<Route>)>, answer_of: impl Fn(usize) -> Result<i64, String>) {
    let mut routed: Vec<(Route, Answers)> = Vec::new();
    for (i, (done, route)) in waiting.into_iter().enumerate() {
        let answer = answer_of(i);
        match route {
            None => {
                let _ = done.send(answer);
            }
            Some(route) => match routed.iter_mut().find(|(to, _)| to.same_channel(&route)) {
                Some((_, answers)) => answers.push((done, answer)),
                None => routed.push((route, vec![(done, answer)])),
            },
        }
    }
    for (route, answers) in routed {
        if let Err(mpsc::error::SendError(answers)) = route.send(answers) {
            for (done, answer) in answers {
                let _ = done.send(answer);
            }
        }
    }
}

/// The ingester thread: inserts journaled records into `audit_log`, gathered into one
/// transaction per [`INGEST_BATCH`] records, or sooner when calls pause or a reader asks,
/// retrying while the DB fails (the records are safe in the journal meanwhile).
///
/// It has a connection of its own whose commits do not wait for the disk (SQLite
/// `synchronous = NORMAL`, PostgreSQL `synchronous_commit = off`): the journal holds the records
/// until a commit that does wait (the first after a segment ended) has made them, and every
/// earlier one, durable; only then is the segment removed.
async fn ingester(catalog: Catalog, rx: sync_mpsc::Receiver<Ingest>) {
    let mut conn: Option<IngestConnection> = None;
    let mut gathered: Vec<Record> = Vec::with_capacity(INGEST_BATCH);
    let mut settles: Vec<Done<()>> = Vec::new();
    let mut ended: Vec<PathBuf> = Vec::new();
    loop {
        // Blocking here is fine: this runtime has nothing else to run.
        let idle = gathered.is_empty();
        let (message, stopped) = match if idle {
            rx.recv().map_err(Into::into)
        } else {
            rx.recv_timeout(INGEST_IDLE)
        } {
            Ok(message) => (Some(message), false),
            Err(sync_mpsc::RecvTimeoutError::Timeout) => (None, false),
            Err(sync_mpsc::RecvTimeoutError::Disconnected) => (None, true),
        };
        let paused = message.is_none();
        match message {
            Some(Ingest::Records(records)) => gathered.extend(records),
            Some(Ingest::Settle(done)) => settles.push(done),
            Some(Ingest::SegmentEnded(path)) => ended.push(path),
            None => {}
        }
        if paused || !settles.is_empty() || gathered.len() >= INGEST_BATCH {
            let durable = !ended.is_empty() && !gathered.is_empty();
            loop {
                let inserted = match conn.as_mut() {
                    Some(conn) => conn.insert(&gathered, durable).await,
                    None => match IngestConnection::open(&catalog).await {
                        Ok(opened) => {
                            conn = Some(opened);
                            continue;
                        }
                        Err(e) => Err(e),
                    },
                };
                let Err(e) = inserted else { break };
                tracing::error!(error = %e, "moving audit records into the DB failed; retrying in a second");
                conn = None;
                for done in settles.drain(..) {
                    let _ = done.send(Err(format!("moving audit records into the DB: {e}")));
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            gathered.clear();
            for done in settles.drain(..) {
                let _ = done.send(Ok(()));
            }
            if durable {
                for path in ended.drain(..) {
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::warn!(error = %e, path = %path.display(), "removing an ingested audit journal segment");
                    }
                }
            }
        }
        if stopped {
            return;
        }
    }
}

/// Gives the calling thread a lower scheduling priority, nice 10: the audit trail's
/// background work (moving records into the DB, making journal segments ahead) can wait while
/// calls are answered, so it does not take a core the calls need (measured for the ingester:
/// p99 at half load 6.4–6.9 ms before, 4.6–4.9 ms after).
fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::debug!(error = %e, "lowering an audit thread's priority");
    }
}

/// The ingester's connection, whose commits do not wait for the disk unless asked to.
enum IngestConnection {
    /// SQLite, driven directly on the ingester's thread, with its single-row statement.
    /// Through sqlx, converting each of a record's 20 values for its Any layer and handing
    /// statements to its worker thread cost more than SQLite's insert itself (measured: about
    /// 5 µs of CPU a record, against 2.4 µs for SQLite alone).
    Sqlite(rusqlite::Connection, String),
    /// PostgreSQL, through sqlx, with its full multi-row statement.
    Postgres(sqlx::AnyConnection, String),
}

impl IngestConnection {
    async fn open(catalog: &Catalog) -> Result<Self> {
        use sqlx::Executor;
        match catalog.backend() {
            catalog::Backend::Sqlite => {
                let path = catalog.sqlite_path().ok_or_else(|| {
                    Error::AuditUnavailable(
                        "the audit trail needs the metadata DB in a SQLite file, not in memory".into(),
                    )
                })?;
                let conn = rusqlite::Connection::open(&path).map_err(|e| sqlite_failed(&e))?;
                // As the pool's connections (WAL, busy timeout), but commits that do not sync,
                // and checkpoints every 256 pages (1 MiB) rather than SQLite's 1,000: a
                // checkpoint syncs the DB file, and the journal's sync waits behind it on the
                // disk. With the smaller checkpoints the lookup benchmark's p99 at half load
                // went from 4.1–4.9 ms to 2.7–3.9 ms (most runs), throughput unchanged.
                conn.execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; \
                     PRAGMA wal_autocheckpoint = 256;",
                )
                .map_err(|e| sqlite_failed(&e))?;
                Ok(Self::Sqlite(conn, insert_statement(catalog::Backend::Sqlite, 1)))
            }
            catalog::Backend::Postgres => {
                let mut conn = catalog.dedicated_connection().await?;
                conn.execute("SET synchronous_commit = off").await?;
                let statement = insert_statement(catalog::Backend::Postgres, ROWS_PER_STATEMENT);
                Ok(Self::Postgres(conn, statement))
            }
        }
    }

    /// Inserts `records` in one transaction; with `durable`, its commit waits for the disk,
    /// which makes every earlier commit of the connection durable too.
    async fn insert(&mut self, records: &[Record], durable: bool) -> Result<()> {
        match self {
            Self::Sqlite(conn, statement) => {
                insert_sqlite(conn, statement, records, durable).map_err(|e| sqlite_failed(&e))
            }
            Self::Postgres(conn, statement) => insert_postgres(conn, statement, records, durable).await,
        }
    }
}

fn sqlite_failed(e: &rusqlite::Error) -> Error {
    Error::AuditUnavailable(format!("metadata database: {e}"))
}

/// [`IngestConnection::insert`] on SQLite: `statement` (single-row) prepared once per
/// transaction and run per record.
fn insert_sqlite(
    conn: &mut rusqlite::Connection,
    statement: &str,
    records: &[Record],
    durable: bool,
) -> rusqlite::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    if durable {
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    let inserted = (|| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut statement = tx.prepare(statement)?;
            for record in records {
                let c = &record.canonical;
                statement.execute(rusqlite::params![
                    c.seq,
                    c.at,
                    c.request_id,
                    c.credential_id,
                    c.department,
                    c.resource_code,
                    c.endpoint,
                    c.subject_hash,
                    c.status,
                    c.outcome,
                    c.items_plain,
                    c.items_masked,
                    c.grant_id,
                    c.latency_us,
                    record.prev_hash,
                    record.hash,
                    c.row_count,
                    c.demand_id,
                    c.client_hash,
                    c.application_id,
                ])?;
            }
        }
        tx.commit()
    })();
    if durable {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    inserted
}

/// Columns of `audit_log`, in insert order.
const COLUMNS: &str = "seq, at, request_id, credential_id, department, resource_code, endpoint, subject_hash, \
    status, outcome, items_plain, items_masked, grant_id, latency_us, prev_hash, hash, row_count, demand_id, client_hash, application_id";
const COLUMN_COUNT: usize = 20;

/// Records per INSERT statement: one statement per record cost more than the fsync.
const ROWS_PER_STATEMENT: usize = 64;

/// `INSERT INTO audit_log (…) VALUES ($1, …), …` for `rows` records. SQLite gets anonymous
/// `?` placeholders: looking up a numbered one costs a scan of all of them, per value bound.
/// A record already there is left as it is (a batch retried after its commit was in doubt).
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
    sql.push_str(" ON CONFLICT (seq) DO NOTHING");
    sql
}

/// [`IngestConnection::insert`] on PostgreSQL: `full_statement` inserts a full chunk of
/// [`ROWS_PER_STATEMENT`]. With `durable`, the commit waits for the disk whatever the
/// connection's setting, which makes every earlier commit of the connection durable too.
async fn insert_postgres(
    conn: &mut sqlx::AnyConnection,
    full_statement: &str,
    records: &[Record],
    durable: bool,
) -> Result<()> {
    use sqlx::{Connection, Executor};
    if records.is_empty() {
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    if durable {
        tx.execute("SET LOCAL synchronous_commit = on").await?;
    }
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let partial;
        let sql = if chunk.len() == ROWS_PER_STATEMENT {
            full_statement
        } else {
            partial = insert_statement(catalog::Backend::Postgres, chunk.len());
            partial.as_str()
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for record in chunk {
            let c = &record.canonical;
            query = query
                .bind(c.seq)
                .bind(&c.at)
                .bind(&c.request_id)
                .bind(c.credential_id)
                .bind(c.department.as_deref())
                .bind(c.resource_code.as_deref())
                .bind(&c.endpoint)
                .bind(c.subject_hash.as_deref())
                .bind(c.status)
                .bind(&c.outcome)
                .bind(&c.items_plain)
                .bind(&c.items_masked)
                .bind(c.grant_id)
                .bind(c.latency_us)
                .bind(&record.prev_hash)
                .bind(&record.hash)
                .bind(c.row_count)
                .bind(c.demand_id)
                .bind(c.client_hash.as_deref())
                .bind(c.application_id);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
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

/// Where a check of the chain has got to.
struct Chain {
    next_seq: i64,
    prev_hash: String,
    records: u64,
}

impl Chain {
    /// A check that goes on after record `seq`, whose hash is `hash`.
    fn after(seq: i64, hash: String) -> Self {
        Self {
            next_seq: seq + 1,
            prev_hash: hash,
            records: 0,
        }
    }

    /// Checks the next record: `prev_hash` as stored (the journal stores none: it is the
    /// previous line's hash). Returns why it breaks the chain, if it does.
    fn check(&mut self, canonical: &Canonical<String>, prev_hash: Option<&str>, hash: &str) -> Option<BrokenLink> {
        self.records += 1;
        let seq = canonical.seq;
        let reason = if seq != self.next_seq {
            Some(format!(
                "expected record {} next, found {seq}: records were removed",
                self.next_seq
            ))
        } else if prev_hash.is_some_and(|p| p != self.prev_hash) {
            Some("prev_hash does not match the previous record's hash".into())
        } else if canonical.hash(&self.prev_hash) != hash {
            Some("the record's content does not match its hash: it was changed".into())
        } else {
            None
        };
        if reason.is_none() {
            self.next_seq += 1;
            hash.clone_into(&mut self.prev_hash);
        }
        reason.map(|reason| BrokenLink { seq, reason })
    }
}

/// Recomputes every record's hash in order; stops at the first that does not hold: a changed
/// record, a removed one (a gap in sequence numbers), or a `prev_hash` that does not match.
/// With `journal` (the audit journal's directory), the chain is followed on through the
/// records the journal holds beyond the DB, so a check while the server runs, or after it
/// stopped before moving them, covers every call answered.
pub async fn verify(catalog: &Catalog, journal: Option<&Path>) -> Result<ChainReport> {
    let mut chain = Chain::after(0, GENESIS_HASH.to_string());
    // The server moves records from the journal into the DB while this reads: when the
    // journal no longer holds where the DB ended, the DB has them now, so look there again.
    let first_broken = 'check: {
        for _ in 0..4 {
            if let Some(broken) = verify_table(catalog, &mut chain).await? {
                break 'check Some(broken);
            }
            let Some(dir) = journal else { break 'check None };
            match verify_journal(dir, &mut chain)? {
                JournalCheck::Done(broken) => break 'check broken,
                JournalCheck::Moved => {}
            }
        }
        Some(BrokenLink {
            seq: chain.next_seq,
            reason: format!(
                "expected record {} next, in neither the DB nor the journal: records were removed",
                chain.next_seq
            ),
        })
    };
    Ok(ChainReport {
        records: chain.records,
        first_broken,
    })
}

/// Checks the `audit_log` rows from `chain.next_seq` on.
async fn verify_table(catalog: &Catalog, chain: &mut Chain) -> Result<Option<BrokenLink>> {
    let mut rows = sqlx::query(
        "SELECT seq, at, request_id, credential_id, department, resource_code, endpoint, \
         subject_hash, status, outcome, items_plain, items_masked, grant_id, latency_us, \
         prev_hash, hash, row_count, demand_id, client_hash, application_id FROM audit_log \
         WHERE seq >= $1 ORDER BY seq",
    )
    .bind(chain.next_seq)
    .fetch(catalog.pool());
    while let Some(row) = rows.try_next().await? {
        let canonical = Canonical {
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
            items_plain: row.try_get("items_plain")?,
            items_masked: row.try_get("items_masked")?,
            grant_id: row.try_get("grant_id")?,
            latency_us: row.try_get("latency_us")?,
            row_count: row.try_get("row_count")?,
            demand_id: row.try_get("demand_id")?,
            client_hash: row.try_get("client_hash")?,
            application_id: row.try_get("application_id")?,
        };
        let prev_hash: String = row.try_get("prev_hash")?;
        let hash: String = row.try_get("hash")?;
        if let Some(broken) = chain.check(&canonical, Some(&prev_hash), &hash) {
            return Ok(Some(broken));
        }
    }
    Ok(None)
}

enum JournalCheck {
    /// Checked to the journal's end: the first broken link, if any.
    Done(Option<BrokenLink>),
    /// The journal starts beyond `chain.next_seq`, or a segment went away: look in the DB again.
    Moved,
}

/// Checks the journal's records from `chain.next_seq` on.
fn verify_journal(dir: &Path, chain: &mut Chain) -> Result<JournalCheck> {
    let unreadable = |what: String| Error::AuditUnavailable(format!("audit journal {}: {what}", dir.display()));
    let segments = journal::segments(dir).map_err(|e| unreadable(e.to_string()))?;
    let (mut broken, mut moved, mut checked_any) = (None, false, false);
    for (i, (_, path)) in segments.iter().enumerate() {
        let read = journal::read_segment(path, i + 1 == segments.len(), |line| {
            if line.record.seq < chain.next_seq {
                return std::ops::ControlFlow::Continue(());
            }
            // A gap before the first record checked here: the DB took them meanwhile.
            if line.record.seq > chain.next_seq && !checked_any {
                moved = true;
                return std::ops::ControlFlow::Break(());
            }
            checked_any = true;
            broken = chain.check(&line.record, None, &line.hash);
            if broken.is_some() {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        });
        match read {
            Ok(()) => {}
            Err(journal::ReadError::Gone) => return Ok(JournalCheck::Moved),
            Err(e) => {
                return Ok(JournalCheck::Done(Some(BrokenLink {
                    seq: chain.next_seq,
                    reason: format!("the audit journal {} is damaged at {e}", path.display()),
                })));
            }
        }
        if broken.is_some() {
            return Ok(JournalCheck::Done(broken));
        }
        if moved {
            return Ok(JournalCheck::Moved);
        }
    }
    Ok(JournalCheck::Done(None))
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    async fn catalog(dir: &Path) -> Catalog {
        Catalog::connect(&format!("sqlite://{}", dir.join("meta.db").display()))
            .await
            .unwrap()
    }

    fn entry(n: usize) -> AuditEntry {
        AuditEntry {
            request_id: format!("request-{n}"),
            endpoint: "GET /api/v1/exchange/{resource_code}/records/{key}".into(),
            resource_code: Some("1-01-001-000001".into()),
            status: 200,
            outcome: "allowed".into(),
            items_masked: vec!["name".into(), "姓名".into()],
            latency_us: n as i64,
            ..AuditEntry::default()
        }
    }

    /// Starts a log on `dir`, records `n` calls one after another and waits for the DB.
    async fn record_calls(catalog: &Catalog, journal: &Path, n: usize) -> AuditLog {
        let log = AuditLog::start(catalog.clone(), journal).await.unwrap();
        for i in 1..=n {
            assert_eq!(log.record(entry(i)).await.unwrap(), i as i64);
        }
        log.settle().await.unwrap();
        log
    }

    async fn db_records(catalog: &Catalog) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(catalog.pool())
            .await
            .unwrap()
    }

    /// A crash after the journal sync and before the DB insert, reproduced by removing the
    /// DB's newest rows: the journal still holds them.
    async fn lose_db_rows_after(catalog: &Catalog, seq: i64) {
        sqlx::query("DELETE FROM audit_log WHERE seq > $1")
            .bind(seq)
            .execute(catalog.pool())
            .await
            .unwrap();
    }

    /// A data dir whose journal holds `calls` records and whose DB only the first `kept`, as
    /// after a crash between the journal's sync and the DB insert; with the last segment.
    async fn journal_ahead_of_db(calls: usize, kept: i64) -> (tempfile::TempDir, Catalog, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, journal) = (catalog(dir.path()).await, dir.path().join("audit"));
        drop(record_calls(&catalog, &journal, calls).await);
        lose_db_rows_after(&catalog, kept).await;
        let (_, last) = journal::segments(&journal).unwrap().pop().unwrap();
        (dir, catalog, journal, last)
    }

    #[tokio::test]
    async fn settled_records_are_in_the_db_and_ended_segments_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, journal) = (catalog(dir.path()).await, dir.path().join("audit"));
        let log = record_calls(&catalog, &journal, 10).await;
        assert_eq!(db_records(&catalog).await, 10);
        let report = verify(&catalog, None).await.unwrap();
        assert_eq!((report.records, report.first_broken), (10, None));
        // Four records a segment under test: the first two segments ended, and were removed
        // after the first commit that waited for the disk, at the latest one with record 11.
        log.record(entry(11)).await.unwrap();
        log.settle().await.unwrap();
        let left: Vec<i64> = journal::segments(&journal)
            .unwrap()
            .into_iter()
            .map(|(first, _)| first)
            .collect();
        assert_eq!(left, [9]);
    }

    /// A large group (71 calls at once) reaches the DB with every value in its column: the
    /// chain, recomputed from the rows, is whole.
    #[tokio::test]
    async fn a_large_group_reaches_the_db_intact() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, journal) = (catalog(dir.path()).await, dir.path().join("audit"));
        let calls = 71;
        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        // All at once, so that the writer takes them as one group.
        let seqs = futures::future::join_all((1..=calls).map(|i| log.record(entry(i)))).await;
        assert!(seqs.into_iter().all(|seq| seq.is_ok()));
        log.settle().await.unwrap();
        assert_eq!(db_records(&catalog).await, calls as i64);
        let report = verify(&catalog, None).await.unwrap();
        assert_eq!((report.records, report.first_broken), (calls as u64, None));
        let mut latencies: Vec<i64> = sqlx::query_scalar("SELECT latency_us FROM audit_log ORDER BY seq")
            .fetch_all(catalog.pool())
            .await
            .unwrap();
        // Sequence numbers follow the order the writer took the calls in.
        latencies.sort_unstable();
        assert_eq!(latencies, (1..=calls as i64).collect::<Vec<_>>());
    }

    /// Calls waiting on threads that have their own answering task (as the server's workers
    /// do) and on a thread without one are answered, each with its own sequence number, and
    /// the chain holds every record.
    #[tokio::test]
    async fn calls_are_answered_through_their_threads_routes() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, journal) = (catalog(dir.path()).await, dir.path().join("audit"));
        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        let worker = |log: AuditLog, first: usize| {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                tokio::task::LocalSet::new().block_on(&runtime, async move {
                    AuditLog::answer_on_this_thread();
                    assert!(ROUTE.with(|route| route.borrow().is_some()));
                    let calls = (first..first + 50).map(|n| {
                        let log = log.clone();
                        tokio::task::spawn_local(async move { log.record(entry(n)).await.unwrap() })
                    });
                    let calls: Vec<_> = calls.collect();
                    let mut seqs = Vec::new();
                    for call in calls {
                        // A lost answer fails here rather than hanging the test.
                        let seq = tokio::time::timeout(std::time::Duration::from_secs(30), call).await;
                        seqs.push(seq.expect("answered").unwrap());
                    }
                    seqs
                })
            })
        };
        let (a, b) = (worker(log.clone(), 1), worker(log.clone(), 51));
        let mut seqs: Vec<i64> = futures::future::join_all((101..=120).map(|n| log.record(entry(n))))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        seqs.extend(a.join().unwrap());
        seqs.extend(b.join().unwrap());
        seqs.sort();
        assert_eq!(seqs, (1..=120).collect::<Vec<i64>>());
        log.settle().await.unwrap();
        let report = verify(&catalog, Some(&journal)).await.unwrap();
        assert_eq!((report.records, report.first_broken), (120, None));
    }

    fn any_canonical() -> impl Strategy<Value = Canonical<String>> {
        let text = || any::<String>();
        let maybe_text = || proptest::option::of(any::<String>());
        let maybe_int = || proptest::option::of(any::<i64>());
        (
            (any::<i64>(), text(), text(), maybe_int(), maybe_text(), maybe_text()),
            (text(), maybe_text(), any::<i64>(), text(), text(), text()),
            (
                maybe_int(),
                any::<i64>(),
                maybe_int(),
                maybe_int(),
                maybe_text(),
                maybe_int(),
            ),
        )
            .prop_map(|(a, b, c)| Canonical {
                seq: a.0,
                at: a.1,
                request_id: a.2,
                credential_id: a.3,
                department: a.4,
                resource_code: a.5,
                endpoint: b.0,
                subject_hash: b.1,
                status: b.2,
                outcome: b.3,
                items_plain: b.4,
                items_masked: b.5,
                grant_id: c.0,
                latency_us: c.1,
                row_count: c.2,
                demand_id: c.3,
                client_hash: c.4,
                application_id: c.5,
            })
    }

    proptest! {
        /// The hashed bytes are serde_json's, whatever the record holds.
        #[test]
        fn canonical_json_is_serde_json(record in any_canonical()) {
            let mut ours = Vec::new();
            record.write_json(&mut ours);
            prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&record).unwrap());
        }

        #[test]
        fn json_strings_are_escaped_as_serde_json_does(s in "[a-z\"\\\\\u{0}-\u{1f}\u{7f}中]{0,12}") {
            let mut ours = Vec::new();
            json_str(&mut ours, &s);
            prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn json_lists_are_serde_json(items in proptest::collection::vec("[a-z_\"\\\\\u{0}-\u{1f}中]{0,8}", 0..6)) {
            prop_assert_eq!(json_list(&items), serde_json::to_string(&items).unwrap());
        }
    }

    /// The ingester's SQLite connection checkpoints in small steps (see `IngestConnection::open`).
    #[tokio::test]
    async fn the_ingest_connection_checkpoints_every_256_pages() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog(dir.path()).await;
        let IngestConnection::Sqlite(conn, _) = IngestConnection::open(&catalog).await.unwrap() else {
            panic!("a SQLite catalog gets a SQLite ingest connection");
        };
        let pages: i64 = conn
            .pragma_query_value(None, "wal_autocheckpoint", |row| row.get(0))
            .unwrap();
        assert_eq!(pages, 256);
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0)).unwrap();
        assert_eq!(
            synchronous, 1,
            "NORMAL: the journal holds the records until a durable commit"
        );
    }

    #[tokio::test]
    async fn records_only_the_journal_holds_reach_the_db_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, journal) = (catalog(dir.path()).await, dir.path().join("audit"));
        drop(record_calls(&catalog, &journal, 11).await);
        lose_db_rows_after(&catalog, 9).await;
        // Checked through the journal, the chain is whole; the DB alone has nine.
        let report = verify(&catalog, Some(&journal)).await.unwrap();
        assert_eq!((report.records, report.first_broken), (11, None));
        assert_eq!(verify(&catalog, None).await.unwrap().records, 9);

        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        assert_eq!(db_records(&catalog).await, 11);
        assert_eq!(log.record(entry(12)).await.unwrap(), 12, "the chain goes on");
        log.settle().await.unwrap();
        let report = verify(&catalog, None).await.unwrap();
        assert_eq!((report.records, report.first_broken), (12, None));
    }

    #[tokio::test]
    async fn a_torn_last_line_is_dropped() {
        let (_dir, catalog, journal, last) = journal_ahead_of_db(6, 5).await;
        write_at(
            &last,
            records_end(&last),
            b"{\"hash\":\"00ab\",\"record\":{\"seq\":7,\"at\":",
        );
        assert_eq!(verify(&catalog, Some(&journal)).await.unwrap().records, 6);

        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        assert_eq!(db_records(&catalog).await, 6);
        assert_eq!(log.record(entry(7)).await.unwrap(), 7);
    }

    /// Where the records of a journal segment end: the zeros it was made with begin there.
    fn records_end(segment: &Path) -> u64 {
        let bytes = std::fs::read(segment).unwrap();
        bytes.iter().position(|&b| b == 0).expect("zeros after the records") as u64
    }

    fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(bytes, offset).unwrap();
    }

    #[tokio::test]
    async fn what_lies_past_the_zeros_is_dropped() {
        let (_dir, catalog, journal, last) = journal_ahead_of_db(7, 6).await;
        // A crash in the sync of a group can leave a later block of it on disk and zeros where
        // its first block did not get to: here record 7, chained to record 6 as written, moved
        // past the zeros. A reader that went on past them would take it in.
        let text = std::fs::read_to_string(&last).unwrap();
        let seventh = text.lines().find(|l| l.contains("request-7")).unwrap();
        let at = text.find(seventh).unwrap() as u64;
        write_at(&last, at, &vec![0; seventh.len() + 1]);
        assert_eq!(records_end(&last), at);
        write_at(
            &last,
            at + seventh.len() as u64 + 100,
            format!("{seventh}\n").as_bytes(),
        );
        let report = verify(&catalog, Some(&journal)).await.unwrap();
        assert_eq!((report.records, report.first_broken), (6, None));

        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        assert_eq!(db_records(&catalog).await, 6);
        assert_eq!(log.record(entry(7)).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_changed_journal_record_stops_the_start_and_fails_verify() {
        let (_dir, catalog, journal, last) = journal_ahead_of_db(7, 5).await;
        let text = std::fs::read_to_string(&last).unwrap();
        assert!(text.contains("request-6"));
        std::fs::write(&last, text.replace("request-6", "request-X")).unwrap();

        let broken = verify(&catalog, Some(&journal)).await.unwrap().first_broken.unwrap();
        assert_eq!(broken.seq, 6);
        assert!(broken.reason.contains("changed"), "{}", broken.reason);
        let Err(Error::AuditUnavailable(why)) = AuditLog::start(catalog.clone(), &journal).await else {
            panic!("a changed journal must not be taken in");
        };
        assert!(why.contains("record 6"), "{why}");
        assert_eq!(db_records(&catalog).await, 5, "nothing of it reached the DB");
    }

    #[tokio::test]
    async fn records_removed_from_the_journal_are_named() {
        let (_dir, catalog, journal, last) = journal_ahead_of_db(7, 4).await;
        let text = std::fs::read_to_string(&last).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| !l.contains("request-6"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&last, kept).unwrap();

        let broken = verify(&catalog, Some(&journal)).await.unwrap().first_broken.unwrap();
        assert_eq!(broken.seq, 7);
        assert!(broken.reason.contains("removed"), "{}", broken.reason);
        assert!(AuditLog::start(catalog.clone(), &journal).await.is_err());
    }

    #[tokio::test]
    async fn a_journal_line_that_is_not_a_record_is_damage() {
        let (_dir, catalog, journal, last) = journal_ahead_of_db(6, 0).await;
        let text = std::fs::read_to_string(&last).unwrap();
        std::fs::write(&last, format!("not json\n{text}")).unwrap();
        let broken = verify(&catalog, Some(&journal)).await.unwrap().first_broken.unwrap();
        assert!(broken.reason.contains("damaged at line 1"), "{}", broken.reason);
        assert!(AuditLog::start(catalog.clone(), &journal).await.is_err());
    }
}
