//! The audit trail (全程留痕、可追溯): one record per call, allowed or denied, each holding the
//! hash of the one before, so changing, removing or inserting a record breaks the chain at that
//! point.
//!
//! Records are written by one thread in group commits to an append-only journal
//! ([`journal`]): callers queue their record and wait until the group holding it is written and
//! synced, so throughput is not capped by one sync per call and no response leaves unrecorded.
//! The journal is where the trail is kept: readers ([`AuditLog::scan`], [`verify`]) read its
//! segments, after the rows of the metadata DB's `audit_log`, where versions before this one
//! copied every record (the copy was half of the writing cost of an exchange call; see
//! docs/benchmarks.md). Nothing is copied now, and the table only holds those older records.

mod journal;

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

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
        link_hash(prev_hash, body)
    }

    /// Appends exactly what `serde_json::to_writer` writes for this record (a property test
    /// holds it to that: the bytes are hashed), without serde's per-byte escaping scan: the
    /// journal writer serializes every call's record, and that scan was 1.7 % of the CPU of an
    /// exchange lookup under load.
    fn write_json(&self, o: &mut Vec<u8>) {
        write_head(o, self.seq, self.at.as_ref());
        self.write_rest(o);
    }

    /// Appends the record's JSON after its `seq` and `at` ([`write_head`]): what a call knows
    /// before the writer numbers and dates it.
    fn write_rest(&self, o: &mut Vec<u8>) {
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

/// A record's hash: SHA-256 over the previous record's hash, a line end and the record's
/// canonical JSON (`record`). The one rule of the chain, for the writer and for the checks.
fn link_hash(prev_hash: &str, record: &[u8]) -> String {
    sha256_hex(&[prev_hash.as_bytes(), b"\n", record])
}

/// Appends a record's JSON up to its `seq` and `at`: `{"seq":…,"at":"…"`.
fn write_head(o: &mut Vec<u8>, seq: i64, at: &str) {
    o.push(b'{');
    int(o, "seq", Some(seq));
    text(o, "at", Some(&at));
}

/// Appends `"name":` after a `,` (or after the opening `{`).
fn key(o: &mut Vec<u8>, name: &str) {
    if o.last() != Some(&b'{') {
        o.push(b',');
    }
    o.push(b'"');
    o.extend_from_slice(name.as_bytes());
    o.extend_from_slice(b"\":");
}

/// Appends `"name":value`, `null` when none.
fn int(o: &mut Vec<u8>, name: &str, value: Option<i64>) {
    key(o, name);
    match value {
        Some(v) => o.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        None => o.extend_from_slice(b"null"),
    }
}

/// Appends `"name":"value"`, `null` when none.
fn text<S: AsRef<str>>(o: &mut Vec<u8>, name: &str, value: Option<&S>) {
    key(o, name);
    match value {
        Some(v) => json_str(o, v.as_ref()),
        None => o.extend_from_slice(b"null"),
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

#[cfg(test)]
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

impl AuditEntry {
    /// The JSON of this call's record after its `seq` and `at` (the writer's part,
    /// [`write_head`]), made by the call before it is queued: the writer, which every call
    /// waits on, then only numbers, dates, hashes and writes it, and the entry's texts are
    /// freed on the thread that made them.
    fn rest_json(&self) -> Vec<u8> {
        fn borrowed(s: &str) -> Cow<'_, str> {
            Cow::Borrowed(s)
        }
        let view = Canonical::<Cow<'_, str>> {
            seq: 0,
            at: Cow::Borrowed(""),
            request_id: borrowed(&self.request_id),
            credential_id: self.credential_id,
            department: self.department.as_deref().map(borrowed),
            resource_code: self.resource_code.as_deref().map(borrowed),
            endpoint: borrowed(&self.endpoint),
            subject_hash: self.subject_hash.as_deref().map(borrowed),
            status: i64::from(self.status),
            outcome: borrowed(&self.outcome),
            items_plain: Cow::Owned(json_list(&self.items_plain)),
            items_masked: Cow::Owned(json_list(&self.items_masked)),
            grant_id: self.grant_id,
            latency_us: self.latency_us,
            row_count: self.row_count,
            demand_id: self.demand_id,
            client_hash: self.client_hash.as_deref().map(borrowed),
            application_id: self.application_id,
        };
        let mut rest = Vec::with_capacity(640);
        view.write_rest(&mut rest);
        rest
    }
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

/// A call's record (its JSON after `seq` and `at`, [`AuditEntry::rest_json`]), where to say
/// its sequence number once it is durable, and the route of the thread the call waits on, if
/// it has one.
struct Message(Vec<u8>, Done<i64>, Option<Route>);

/// The handle to the audit writer.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
    dir: PathBuf,
    /// The newest record durable in the journal: readers list none beyond it.
    durable: Arc<AtomicI64>,
}

impl AuditLog {
    /// Finds the chain's head (cutting the journal's last segment to its complete records),
    /// then starts the writer on a new segment, continuing the chain.
    pub async fn start(catalog: Catalog, dir: &Path) -> Result<Self> {
        let head = head(&catalog, dir).await?;
        if let Some((seq, hash)) = anchor(&catalog).await? {
            let refused = |why: String| {
                Err(Error::AuditUnavailable(format!(
                    "the audit journal in {}: {why}; restore it, or look at it with `huitong audit verify` \
                     (docs/configuration.md says how to accept a loss)",
                    dir.display()
                )))
            };
            if seq > head.seq {
                return refused(format!(
                    "it ends at record {}, but record {seq} was recorded: the newest records were removed \
                     (a segment, or the directory)",
                    head.seq
                ));
            }
            if hash_of(&catalog, dir, seq).await?.as_deref() != Some(hash.as_str()) {
                return refused(format!(
                    "record {seq} is not the one recorded (its hash differs from the anchored one): \
                     the chain was rewritten"
                ));
            }
        }
        set_anchor(&catalog, head.seq, &head.hash).await?;
        if head.at > now_text() {
            tracing::warn!(
                last = %head.at,
                "the audit chain's last record is dated ahead of this clock: new records keep that time until the clock reaches it"
            );
        }
        let journal = journal::Journal::create(dir, head.seq + 1)
            .map_err(|e| Error::AuditUnavailable(format!("opening the audit journal in {}: {e}", dir.display())))?;
        let (tx, rx) = mpsc::channel(8 * MAX_GROUP);
        let durable = Arc::new(AtomicI64::new(head.seq));
        let written = durable.clone();
        let anchors = Anchors {
            catalog,
            runtime: tokio::runtime::Handle::current(),
        };
        // The writer is a plain thread: it blocks on the file, and waking it (a call queued)
        // or being woken by it (its group synced) costs one thread switch each.
        std::thread::Builder::new()
            .name("huitong-audit".into())
            .spawn(move || writer(rx, journal, head, &written, &anchors))
            .map_err(|e| Error::AuditUnavailable(format!("starting the audit writer: {e}")))?;
        Ok(Self {
            tx,
            dir: dir.to_path_buf(),
            durable,
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
        let rest = entry.rest_json();
        // Freed now, not held through the wait on the group's sync.
        drop(entry);
        let (done, wait) = oneshot::channel();
        let route = ROUTE.with(|route| route.borrow().clone());
        self.tx
            .send(Message(rest, done, route))
            .await
            .map_err(|_| Error::AuditUnavailable("writer stopped".into()))?;
        wait.await
            .map_err(|_| Error::AuditUnavailable("writer stopped".into()))?
            .map_err(Error::AuditUnavailable)
    }

    /// The records `query` selects, oldest first, at most `query.limit`: every call answered
    /// before this was called, and none whose record is not durable yet.
    pub async fn query(&self, catalog: &Catalog, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let limit = usize::try_from(query.limit).unwrap_or(0);
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.scan(catalog, query, Vec::new(), move |found, record| {
            found.push(record);
            if found.len() < limit {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .await
    }

    /// Folds the records `query` selects (its `limit` aside), oldest first, into `acc` with
    /// `each` until it breaks: the rows of the DB's `audit_log` (records kept there by
    /// versions before the journal kept them all), then the journal's, to the newest durable
    /// record. The journal is read on a blocking thread.
    pub async fn scan<T, F>(&self, catalog: &Catalog, query: &AuditQuery, acc: T, each: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut T, AuditRecord) -> ControlFlow<()> + Send + 'static,
    {
        let upto = self.durable.load(Ordering::Acquire);
        scan(catalog, &self.dir, Some(upto), query, acc, each).await
    }
}

/// The anchor: the newest record known durable, `(seq, hash)`, when one was set.
async fn anchor(catalog: &Catalog) -> Result<Option<(i64, String)>> {
    let row = sqlx::query("SELECT seq, hash FROM audit_anchor WHERE id = 1")
        .fetch_optional(catalog.pool())
        .await?;
    row.map(|row| Ok((row.try_get("seq")?, row.try_get("hash")?)))
        .transpose()
}

/// The hash of record `seq`, from the DB's older records or the journal.
async fn hash_of(catalog: &Catalog, dir: &Path, seq: i64) -> Result<Option<String>> {
    let in_table: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
        .bind(seq)
        .fetch_optional(catalog.pool())
        .await?;
    if in_table.is_some() {
        return Ok(in_table);
    }
    let unreadable = |what: String| Error::AuditUnavailable(format!("audit journal {}: {what}", dir.display()));
    let segments = journal::segments(dir).map_err(|e| unreadable(e.to_string()))?;
    let Some(i) = segments.iter().rposition(|(first, _)| *first <= seq) else {
        return Ok(None);
    };
    let mut found = None;
    journal::read_segment_at(&segments[i].1, i + 1 == segments.len(), seq, |line, _| {
        if line.record.seq == seq {
            found = Some(line.hash);
        }
        ControlFlow::Break(())
    })
    .map_err(|e| unreadable(format!("{}: {e}", segments[i].1.display())))?;
    Ok(found)
}

/// Moves the anchor to record `seq` (never back: anchors set out of order keep the newest).
async fn set_anchor(catalog: &Catalog, seq: i64, hash: &str) -> Result<()> {
    if seq == 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > audit_anchor.seq",
    )
    .bind(seq)
    .bind(hash)
    .execute(catalog.pool())
    .await?;
    Ok(())
}

/// Where the writer sets the anchor, off its thread: at each segment's end, to that segment's
/// last record (durable: the group after it is not written yet).
struct Anchors {
    catalog: Catalog,
    runtime: tokio::runtime::Handle,
}

impl Anchors {
    fn set(&self, seq: i64, hash: String) {
        let catalog = self.catalog.clone();
        self.runtime.spawn(async move {
            if let Err(e) = set_anchor(&catalog, seq, &hash).await {
                tracing::warn!(error = %e, seq, "setting the audit trail's anchor");
            }
        });
    }
}

/// The chain's head: its last record's sequence number, hash and time.
struct Head {
    seq: i64,
    hash: String,
    at: String,
}

/// The last record in the DB's `audit_log`, if any.
async fn table_head(catalog: &Catalog) -> Result<Option<Head>> {
    let row = sqlx::query("SELECT seq, hash, at FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(catalog.pool())
        .await?;
    row.map(|row| {
        Ok(Head {
            seq: row.try_get("seq")?,
            hash: row.try_get("hash")?,
            at: row.try_get("at")?,
        })
    })
    .transpose()
}

/// The chain's head at a start: the journal's last record, after its last segment is cut to
/// its complete records (a torn tail is a write no call was answered for); or the DB's, for
/// a data dir whose records are all in `audit_log` still.
async fn head(catalog: &Catalog, dir: &Path) -> Result<Head> {
    let unavailable = |what: String| Error::AuditUnavailable(format!("audit journal {}: {what}", dir.display()));
    let in_table = table_head(catalog).await?;
    let mut segments = journal::segments(dir).map_err(|e| unavailable(e.to_string()))?;
    let mut in_journal = None;
    // A segment left without records is removed and the one before looked at.
    while let Some((_, path)) = segments.pop() {
        match journal::seal(&path) {
            Ok(Some(line)) => {
                in_journal = Some(Head {
                    seq: line.record.seq,
                    at: line.record.at,
                    hash: line.hash,
                });
                break;
            }
            Ok(None) => continue,
            Err(e) => return Err(unavailable(format!("{}: {e}", path.display()))),
        }
    }
    Ok(match (in_table, in_journal) {
        (Some(table), Some(journal)) if table.seq > journal.seq => table,
        (_, Some(journal)) => journal,
        (Some(table), None) => table,
        (None, None) => Head {
            seq: 0,
            hash: GENESIS_HASH.into(),
            at: String::new(),
        },
    })
}

/// The writer thread: gathers queued records into groups, chains, journals and syncs each
/// group, answers its callers, and then says the group is durable (`durable`).
fn writer(
    mut rx: mpsc::Receiver<Message>,
    mut journal: journal::Journal,
    mut head: Head,
    durable: &AtomicI64,
    anchors: &Anchors,
) {
    let mut body = Vec::with_capacity(1024);
    // Kept across groups, so a group's calls are not moved again as it grows.
    let mut group = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(Message(rest, done, route)) = next.take() {
            group.push((rest, (done, route)));
            if group.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        // Times never go back along the chain (the clock may be set back): readers stop at
        // the first record past a query's end.
        let at = now_text().max(head.at.clone());
        let (first_seq, mut prev_hash) = (head.seq + 1, head.hash.clone());
        let mut waiting = Vec::with_capacity(group.len());
        for (i, (rest, done)) in group.drain(..).enumerate() {
            body.clear();
            write_head(&mut body, first_seq + i as i64, &at);
            body.extend_from_slice(&rest);
            prev_hash = link_hash(&prev_hash, &body);
            journal.push(&prev_hash, &body);
            waiting.push(done);
        }
        if journal.full() {
            match journal.rotate(first_seq) {
                // Every record of the segment it ended is durable.
                Ok(_) => anchors.set(head.seq, head.hash.clone()),
                Err(e) => {
                    tracing::error!(error = %e, "starting the next audit journal segment; the current one goes on")
                }
            }
        }
        match journal.commit() {
            Ok(()) => {
                head = Head {
                    seq: first_seq + waiting.len() as i64 - 1,
                    hash: prev_hash,
                    at,
                };
                durable.store(head.seq, Ordering::Release);
                answer(waiting, |i| Ok(first_seq + i as i64));
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

/// Gives the calling thread a lower scheduling priority, nice 10: the audit trail's
/// background work (making journal segments ahead) can wait while calls are answered, so it
/// does not take a core the calls need (measured for the DB copy of the records that earlier
/// versions made: p99 at half load 6.4–6.9 ms before, 4.6–4.9 ms after).
fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::debug!(error = %e, "lowering an audit thread's priority");
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

/// Where a check of the chain has got to.
struct Chain {
    next_seq: i64,
    prev_hash: String,
    records: u64,
    /// The anchored record `(seq, hash)`: the record of that number must have that hash.
    anchor: Option<(i64, String)>,
}

impl Chain {
    /// A check that goes on after record `seq`, whose hash is `hash`.
    fn after(seq: i64, hash: String) -> Self {
        Self {
            next_seq: seq + 1,
            prev_hash: hash,
            records: 0,
            anchor: None,
        }
    }

    /// Checks the next record: `prev_hash` as stored (the journal stores none: it is the
    /// previous line's hash). Returns why it breaks the chain, if it does.
    fn check(&mut self, canonical: &Canonical<String>, prev_hash: Option<&str>, hash: &str) -> Option<BrokenLink> {
        self.records += 1;
        let seq = canonical.seq;
        let reason = if seq > self.next_seq {
            Some(format!(
                "expected record {} next, found {seq}: records were removed",
                self.next_seq
            ))
        } else if seq < self.next_seq {
            Some(format!(
                "expected record {} next, found {seq}: a record was inserted or repeated",
                self.next_seq
            ))
        } else if prev_hash.is_some_and(|p| p != self.prev_hash) {
            Some("prev_hash does not match the previous record's hash".into())
        } else if canonical.hash(&self.prev_hash) != hash {
            Some("the record's content does not match its hash: it was changed".into())
        } else if self
            .anchor
            .as_ref()
            .is_some_and(|(at, anchored)| *at == seq && anchored != hash)
        {
            Some("the record's hash is not the one anchored for it: the chain was rewritten".into())
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
/// The chain is followed through the DB's `audit_log` (records kept there by versions before
/// the journal kept them all), then with `journal` (the audit journal's directory) through
/// the journal's records beyond them, read on a blocking thread.
pub async fn verify(catalog: &Catalog, journal: Option<&Path>) -> Result<ChainReport> {
    let mut chain = Chain::after(0, GENESIS_HASH.to_string());
    let anchor = anchor(catalog).await?;
    chain.anchor.clone_from(&anchor);
    let mut first_broken = verify_table(catalog, &mut chain).await?;
    if let (None, Some(dir)) = (&first_broken, journal) {
        let dir = dir.to_path_buf();
        let checked = tokio::task::spawn_blocking(move || {
            let broken = verify_journal(&dir, &mut chain);
            (chain, broken)
        })
        .await
        .map_err(|e| Error::AuditUnavailable(format!("checking the audit journal: {e}")))?;
        chain = checked.0;
        first_broken = checked.1?;
    }
    if let (None, Some((seq, _)), Some(_)) = (&first_broken, &anchor, journal)
        && chain.next_seq <= *seq
    {
        first_broken = Some(BrokenLink {
            seq: chain.next_seq,
            reason: format!(
                "the trail ends at record {}, but record {seq} was recorded: the newest records were removed",
                chain.next_seq - 1
            ),
        });
    }
    Ok(ChainReport {
        records: chain.records,
        first_broken,
    })
}

/// The columns of `audit_log` a record is read from (`prev_hash` aside).
const TABLE_COLUMNS: &str = "seq, at, request_id, credential_id, department, resource_code, endpoint, subject_hash, \
    status, outcome, items_plain, items_masked, grant_id, latency_us, row_count, demand_id, client_hash, \
    application_id, hash";

/// An `audit_log` row's record, as hashed.
fn row_canonical(row: &sqlx::any::AnyRow) -> Result<Canonical<String>> {
    Ok(Canonical {
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
    })
}

/// Checks the `audit_log` rows from `chain.next_seq` on.
async fn verify_table(catalog: &Catalog, chain: &mut Chain) -> Result<Option<BrokenLink>> {
    let sql = format!("SELECT {TABLE_COLUMNS}, prev_hash FROM audit_log WHERE seq >= $1 ORDER BY seq");
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(chain.next_seq)
        .fetch(catalog.pool());
    while let Some(row) = rows.try_next().await? {
        let canonical = row_canonical(&row)?;
        let prev_hash: String = row.try_get("prev_hash")?;
        let hash: String = row.try_get("hash")?;
        if let Some(broken) = chain.check(&canonical, Some(&prev_hash), &hash) {
            return Ok(Some(broken));
        }
    }
    Ok(None)
}

/// Checks the journal's records from `chain.next_seq` on; a damaged segment is a broken link.
fn verify_journal(dir: &Path, chain: &mut Chain) -> Result<Option<BrokenLink>> {
    let unreadable = |what: String| Error::AuditUnavailable(format!("audit journal {}: {what}", dir.display()));
    let segments = journal::segments(dir).map_err(|e| unreadable(e.to_string()))?;
    let mut broken = None;
    // Records the table holds too (a version that copied them crashed before removing their
    // segment) are skipped by the reader, in the segments read until the first record is
    // checked; from there on every record must continue the chain, and every segment must
    // start with the record it is named after (readers skip segments by their names).
    let mut skip_below = chain.next_seq;
    for (i, (first, path)) in segments.iter().enumerate() {
        let mut first_line = true;
        let read = journal::read_segment_at(path, i + 1 == segments.len(), skip_below, |line, _| {
            let seq = line.record.seq;
            skip_below = i64::MIN;
            if std::mem::take(&mut first_line) && seq != *first && *first >= chain.next_seq {
                broken = Some(BrokenLink {
                    seq,
                    reason: format!(
                        "the journal segment {} is named after record {first} but starts with record {seq}: \
                         segments were renamed",
                        path.display()
                    ),
                });
                return ControlFlow::Break(());
            }
            broken = chain.check(&line.record, None, &line.hash);
            if broken.is_some() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        if let Err(e) = read {
            return Ok(Some(BrokenLink {
                seq: chain.next_seq,
                reason: format!("the audit journal {} is damaged at {e}", path.display()),
            }));
        }
        if broken.is_some() {
            return Ok(broken);
        }
    }
    Ok(None)
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

impl AuditQuery {
    /// Whether a journal record passes the filters (the cursor and the provider's scope
    /// aside, which the reader applies).
    fn admits(&self, c: &Canonical<String>, provider: Option<&Provider>) -> bool {
        let same = |wanted: &Option<String>, value: &Option<String>| wanted.is_none() || wanted == value;
        same(&self.resource_code, &c.resource_code)
            && same(&self.caller_department, &c.department)
            && self.credential_id.is_none_or(|id| c.credential_id == Some(id))
            && self.from.as_ref().is_none_or(|from| c.at >= *from)
            && self.to.as_ref().is_none_or(|to| c.at < *to)
            && provider.is_none_or(|p| p.admits(c))
    }
}

/// A provider's scope: calls on the resources it provides, and calls made by it.
struct Provider {
    resources: std::collections::HashSet<String>,
    department: Option<String>,
}

impl Provider {
    async fn of(catalog: &Catalog, department_id: i64) -> Result<Self> {
        let resources = sqlx::query_scalar("SELECT code FROM resources WHERE provider_id = $1")
            .bind(department_id)
            .fetch_all(catalog.pool())
            .await?;
        let department = sqlx::query_scalar("SELECT code FROM departments WHERE id = $1")
            .bind(department_id)
            .fetch_optional(catalog.pool())
            .await?;
        Ok(Self {
            resources: resources.into_iter().collect(),
            department,
        })
    }

    fn admits(&self, c: &Canonical<String>) -> bool {
        c.resource_code
            .as_ref()
            .is_some_and(|code| self.resources.contains(code))
            || (self.department.is_some() && c.department == self.department)
    }
}

/// A record as listed.
fn listed(line: journal::Line) -> AuditRecord {
    let c = line.record;
    let list = |text: &str| serde_json::from_str::<Vec<String>>(text).unwrap_or_default();
    AuditRecord {
        seq: c.seq,
        items_plain: list(&c.items_plain),
        items_masked: list(&c.items_masked),
        at: c.at,
        request_id: c.request_id,
        credential_id: c.credential_id,
        department: c.department,
        resource_code: c.resource_code,
        endpoint: c.endpoint,
        subject_hash: c.subject_hash,
        status: c.status,
        outcome: c.outcome,
        row_count: c.row_count,
        grant_id: c.grant_id,
        demand_id: c.demand_id,
        client_hash: c.client_hash,
        application_id: c.application_id,
        latency_us: c.latency_us,
        hash: line.hash,
    }
}

/// [`AuditLog::scan`], with the journal in `dir` read to record `upto` (to its end when
/// `None`, as for a stopped server).
async fn scan<T, F>(
    catalog: &Catalog,
    dir: &Path,
    upto: Option<i64>,
    query: &AuditQuery,
    mut acc: T,
    mut each: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut T, AuditRecord) -> ControlFlow<()> + Send + 'static,
{
    let (mut after, stopped) = scan_table(catalog, query, &mut acc, &mut each).await?;
    if stopped {
        return Ok(acc);
    }
    after = after.max(query.after_seq);
    let provider = match query.provider_department_id {
        Some(id) => Some(Provider::of(catalog, id).await?),
        None => None,
    };
    let (dir, query) = (dir.to_path_buf(), query.clone());
    tokio::task::spawn_blocking(move || {
        scan_journal(&dir, after + 1, upto, &query, provider.as_ref(), &mut acc, &mut each).map(|()| acc)
    })
    .await
    .map_err(|e| Error::AuditUnavailable(format!("reading the audit journal: {e}")))?
}

/// The `audit_log` rows `query` selects, oldest first, into `each`. Returns the table's
/// newest sequence number (the journal's records beyond it are read next) and whether `each`
/// broke off.
async fn scan_table<T, F>(catalog: &Catalog, query: &AuditQuery, acc: &mut T, each: &mut F) -> Result<(i64, bool)>
where
    F: FnMut(&mut T, AuditRecord) -> ControlFlow<()>,
{
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
        .fetch_one(catalog.pool())
        .await?;
    let Some(newest) = newest.filter(|&newest| newest > query.after_seq) else {
        return Ok((0, false));
    };
    let mut conditions = vec!["seq > $1".to_string()];
    let mut texts: Vec<&str> = Vec::new();
    let mut numbers: Vec<i64> = Vec::new();
    // Placeholders are numbered: the cursor ($1), texts, then numbers.
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
    let sql = format!(
        "SELECT {TABLE_COLUMNS} FROM audit_log WHERE {} ORDER BY seq",
        conditions.join(" AND ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(query.after_seq);
    for text in texts {
        q = q.bind(text);
    }
    for number in numbers {
        q = q.bind(number);
    }
    let mut rows = q.fetch(catalog.pool());
    while let Some(row) = rows.try_next().await? {
        let record = listed(journal::Line {
            hash: row.try_get("hash")?,
            record: row_canonical(&row)?,
        });
        if each(acc, record).is_break() {
            return Ok((newest, true));
        }
    }
    Ok((newest, false))
}

/// The journal's records from `from_seq` to `upto` that `query` selects, oldest first, into
/// `each`. Segments wholly before `from_seq` or before `query.from` are skipped (times never go
/// back along the chain), and the reading stops at the first record at or past `query.to`.
fn scan_journal<T>(
    dir: &Path,
    from_seq: i64,
    upto: Option<i64>,
    query: &AuditQuery,
    provider: Option<&Provider>,
    acc: &mut T,
    each: &mut impl FnMut(&mut T, AuditRecord) -> ControlFlow<()>,
) -> Result<()> {
    let unreadable = |what: String| Error::AuditUnavailable(format!("audit journal {}: {what}", dir.display()));
    let segments = journal::segments(dir).map_err(|e| unreadable(e.to_string()))?;
    let mut stopped = false;
    for (i, (_, path)) in segments.iter().enumerate() {
        if let Some((next_first, next)) = segments.get(i + 1) {
            // Every record of this segment comes before the next one's first.
            if *next_first <= from_seq {
                continue;
            }
            if let Some(from) = &query.from {
                let first = journal::first_record(next).map_err(|e| unreadable(format!("{}: {e}", next.display())))?;
                if first.is_some_and(|line| line.record.at < *from) {
                    continue;
                }
            }
        }
        let last = i + 1 == segments.len();
        journal::read_segment_at(path, last, from_seq, |line, _| {
            let c = &line.record;
            if upto.is_some_and(|upto| c.seq > upto) || query.to.as_ref().is_some_and(|to| c.at >= *to) {
                stopped = true;
                return ControlFlow::Break(());
            }
            if !query.admits(c, provider) {
                return ControlFlow::Continue(());
            }
            let flow = each(acc, listed(line));
            stopped = flow.is_break();
            flow
        })
        .map_err(|e| unreadable(format!("{}: {e}", path.display())))?;
        if stopped {
            break;
        }
    }
    Ok(())
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

    /// Starts a log on `journal`, records `n` calls one after another.
    async fn record_calls(catalog: &Catalog, journal: &Path, n: usize) -> AuditLog {
        let log = AuditLog::start(catalog.clone(), journal).await.unwrap();
        for i in 1..=n {
            assert_eq!(log.record(entry(i)).await.unwrap(), i as i64);
        }
        log
    }

    /// A stopped server's data dir whose journal holds `calls` records; with its last segment.
    async fn journal_of(calls: usize) -> (tempfile::TempDir, Catalog, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, journal) = (catalog(dir.path()).await, dir.path().join("audit"));
        drop(record_calls(&catalog, &journal, calls).await);
        let (_, last) = journal::segments(&journal).unwrap().pop().unwrap();
        (dir, catalog, journal, last)
    }

    fn everything() -> AuditQuery {
        AuditQuery {
            limit: 1_000,
            ..AuditQuery::default()
        }
    }

    async fn seqs(log: &AuditLog, catalog: &Catalog, query: &AuditQuery) -> Vec<i64> {
        let records = log.query(catalog, query).await.unwrap();
        records.iter().map(|r| r.seq).collect()
    }

    async fn table_rows(catalog: &Catalog) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(catalog.pool())
            .await
            .unwrap()
    }

    fn first_seqs(journal: &Path) -> Vec<i64> {
        journal::segments(journal)
            .unwrap()
            .into_iter()
            .map(|(first, _)| first)
            .collect()
    }

    #[tokio::test]
    async fn answered_calls_are_listed_from_the_journal_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, journal) = (catalog(dir.path()).await, dir.path().join("audit"));
        let log = record_calls(&catalog, &journal, 10).await;
        let records = log.query(&catalog, &everything()).await.unwrap();
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        assert_eq!(
            (
                records[5].request_id.as_str(),
                records[5].latency_us,
                records[5].items_masked.as_slice()
            ),
            ("request-6", 6, ["name".to_string(), "姓名".to_string()].as_slice())
        );
        assert_eq!(table_rows(&catalog).await, 0, "nothing is copied into the DB");
        let report = verify(&catalog, Some(&journal)).await.unwrap();
        assert_eq!((report.records, report.first_broken), (10, None));
        // Four records a segment under test.
        assert_eq!(first_seqs(&journal), [1, 5, 9]);
        // Paging and limits.
        let page = AuditQuery {
            after_seq: 3,
            limit: 4,
            ..AuditQuery::default()
        };
        assert_eq!(seqs(&log, &catalog, &page).await, [4, 5, 6, 7]);
    }

    /// A large group (71 calls at once) is written whole: the chain is whole, and every call's
    /// record is there.
    #[tokio::test]
    async fn a_large_group_is_read_back_intact() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, journal) = (catalog(dir.path()).await, dir.path().join("audit"));
        let calls = 71;
        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        // All at once, so that the writer takes them as one group.
        let seqs = futures::future::join_all((1..=calls).map(|i| log.record(entry(i)))).await;
        assert!(seqs.into_iter().all(|seq| seq.is_ok()));
        let report = verify(&catalog, Some(&journal)).await.unwrap();
        assert_eq!((report.records, report.first_broken), (calls as u64, None));
        let records = log.query(&catalog, &everything()).await.unwrap();
        let mut latencies: Vec<i64> = records.iter().map(|r| r.latency_us).collect();
        // Sequence numbers follow the order the writer took the calls in.
        latencies.sort_unstable();
        assert_eq!(latencies, (1..=calls as i64).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_filters_select_by_resource_department_credential_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, journal) = (catalog(dir.path()).await, dir.path().join("audit"));
        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        for n in 1..=9 {
            let mut call = entry(n);
            call.resource_code = Some(format!("R{}", n % 3));
            call.department = Some(format!("D{}", n % 2));
            call.credential_id = Some((n % 4) as i64);
            log.record(call).await.unwrap();
        }
        let all = log.query(&catalog, &everything()).await.unwrap();
        let at_of = |seq: usize| all[seq - 1].at.clone();
        let cases = [
            (
                AuditQuery {
                    resource_code: Some("R1".into()),
                    ..everything()
                },
                vec![1, 4, 7],
            ),
            (
                AuditQuery {
                    caller_department: Some("D0".into()),
                    ..everything()
                },
                vec![2, 4, 6, 8],
            ),
            (
                AuditQuery {
                    credential_id: Some(1),
                    ..everything()
                },
                vec![1, 5, 9],
            ),
            (
                AuditQuery {
                    resource_code: Some("R2".into()),
                    caller_department: Some("D0".into()),
                    ..everything()
                },
                vec![2, 8],
            ),
            (
                AuditQuery {
                    from: Some(at_of(9)),
                    ..everything()
                },
                all.iter().filter(|r| r.at >= at_of(9)).map(|r| r.seq).collect(),
            ),
            (
                AuditQuery {
                    to: Some(at_of(1)),
                    ..everything()
                },
                vec![],
            ),
            (
                AuditQuery {
                    resource_code: Some("R9".into()),
                    ..everything()
                },
                vec![],
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(seqs(&log, &catalog, &query).await, expected, "{query:?}");
        }
    }

    #[tokio::test]
    async fn the_chain_goes_on_after_a_restart() {
        let (_dir, catalog, journal, _) = journal_of(11).await;
        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        assert_eq!(log.record(entry(12)).await.unwrap(), 12, "the chain goes on");
        let report = verify(&catalog, Some(&journal)).await.unwrap();
        assert_eq!((report.records, report.first_broken), (12, None));
        assert_eq!(seqs(&log, &catalog, &everything()).await, (1..=12).collect::<Vec<_>>());
    }

    /// Copies the journal's records up to `upto` into `audit_log`, as versions that copied
    /// them did (a copy whose segment was not removed yet holds them twice).
    async fn copy_into_table(catalog: &Catalog, journal: &Path, upto: i64) {
        let mut lines = Vec::new();
        for (_, path) in journal::segments(journal).unwrap() {
            journal::read_segment(&path, true, |line| {
                lines.push(line);
                ControlFlow::Continue(())
            })
            .unwrap();
        }
        let mut prev_hash = GENESIS_HASH.to_string();
        for line in lines.into_iter().filter(|l| l.record.seq <= upto) {
            let c = &line.record;
            sqlx::query(
                "INSERT INTO audit_log (seq, at, request_id, credential_id, department, resource_code, endpoint, \
                 subject_hash, status, outcome, items_plain, items_masked, grant_id, latency_us, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
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
            .bind(&prev_hash)
            .bind(&line.hash)
            .execute(catalog.pool())
            .await
            .unwrap();
            prev_hash = line.hash;
        }
    }

    #[tokio::test]
    async fn records_an_earlier_version_kept_in_the_db_come_first_and_are_not_listed_twice() {
        let (_dir, catalog, journal, _) = journal_of(7).await;
        // Records 1–5 in the table; the journal still holds 1–7, as after a crash of a
        // version that copied them before it removed their segments.
        copy_into_table(&catalog, &journal, 5).await;
        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        assert_eq!(log.record(entry(8)).await.unwrap(), 8);
        let report = verify(&catalog, Some(&journal)).await.unwrap();
        assert_eq!((report.records, report.first_broken), (8, None));
        assert_eq!(seqs(&log, &catalog, &everything()).await, (1..=8).collect::<Vec<_>>());
        let from_table_on = AuditQuery {
            after_seq: 4,
            limit: 2,
            ..AuditQuery::default()
        };
        assert_eq!(seqs(&log, &catalog, &from_table_on).await, [5, 6]);

        // A table ahead of the journal (its segments removed): the chain goes on from it,
        // and times never go back along it, whatever the clock says.
        let (_dir, catalog, journal, _) = journal_of(3).await;
        copy_into_table(&catalog, &journal, 3).await;
        sqlx::query("UPDATE audit_log SET at = '2999-01-01T00:00:00.000000Z' WHERE seq = 3")
            .execute(catalog.pool())
            .await
            .unwrap();
        std::fs::remove_dir_all(&journal).unwrap();
        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        assert_eq!(log.record(entry(4)).await.unwrap(), 4);
        let records = log.query(&catalog, &everything()).await.unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[3].at, "2999-01-01T00:00:00.000000Z");
        // Record 3 was changed in the table: the check names it.
        let broken = verify(&catalog, Some(&journal)).await.unwrap().first_broken.unwrap();
        assert_eq!(broken.seq, 3);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_dropped_and_cut_off_at_the_next_start() {
        let (_dir, catalog, journal, last) = journal_of(6).await;
        write_at(
            &last,
            records_end(&last),
            b"{\"hash\":\"00ab\",\"record\":{\"seq\":7,\"at\":",
        );
        assert_eq!(verify(&catalog, Some(&journal)).await.unwrap().records, 6);

        let log = AuditLog::start(catalog.clone(), &journal).await.unwrap();
        let bytes = std::fs::read(&last).unwrap();
        assert_eq!(bytes.last(), Some(&b'\n'), "the torn line and the zeros are cut off");
        assert_eq!(log.record(entry(7)).await.unwrap(), 7);
        // The cut segment is not the last any more, and reads whole.
        let report = verify(&catalog, Some(&journal)).await.unwrap();
        assert_eq!((report.records, report.first_broken), (7, None));
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
        let (_dir, catalog, journal, last) = journal_of(7).await;
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
        assert_eq!(log.record(entry(7)).await.unwrap(), 7);
        let report = verify(&catalog, Some(&journal)).await.unwrap();
        assert_eq!((report.records, report.first_broken), (7, None));
    }

    #[tokio::test]
    async fn a_changed_journal_record_fails_verify() {
        let (_dir, catalog, journal, last) = journal_of(7).await;
        let text = std::fs::read_to_string(&last).unwrap();
        assert!(text.contains("request-6"));
        std::fs::write(&last, text.replace("request-6", "request-X")).unwrap();

        let broken = verify(&catalog, Some(&journal)).await.unwrap().first_broken.unwrap();
        assert_eq!(broken.seq, 6);
        assert!(broken.reason.contains("changed"), "{}", broken.reason);
    }

    #[tokio::test]
    async fn records_or_segments_removed_from_the_journal_are_named() {
        let (_dir, catalog, journal, last) = journal_of(7).await;
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

        let (_dir, catalog, journal, _) = journal_of(9).await;
        let (_, first) = journal::segments(&journal).unwrap().remove(0);
        std::fs::remove_file(first).unwrap();
        let broken = verify(&catalog, Some(&journal)).await.unwrap().first_broken.unwrap();
        assert_eq!(broken.seq, 5);
        assert!(broken.reason.contains("expected record 1 next"), "{}", broken.reason);

        // A segment renamed: readers skip segments by their names, so the check names it.
        let (_dir, catalog, journal, _) = journal_of(9).await;
        let (_, second) = journal::segments(&journal).unwrap().remove(1);
        std::fs::rename(&second, journal.join("journal-00000000000000000006.jsonl")).unwrap();
        let broken = verify(&catalog, Some(&journal)).await.unwrap().first_broken.unwrap();
        assert_eq!(broken.seq, 5);
        assert!(broken.reason.contains("renamed"), "{}", broken.reason);
    }

    /// While the server runs, each segment's end moves the anchor to its last record.
    #[tokio::test]
    async fn a_segments_end_moves_the_anchor_to_its_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let (catalog, journal) = (catalog(dir.path()).await, dir.path().join("audit"));
        // Four records a segment under test: the segments from 1 and 5 end at records 4 and 8.
        let log = record_calls(&catalog, &journal, 9).await;
        let mut anchored = None;
        // The anchor is set by a task of the runtime: wait for it (a test that fails hangs
        // here at most five seconds, then says what it found).
        for _ in 0..500 {
            anchored = anchor(&catalog).await.unwrap();
            if anchored.as_ref().is_some_and(|(seq, _)| *seq == 8) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let records = log.query(&catalog, &everything()).await.unwrap();
        assert_eq!(anchored, Some((8, records[7].hash.clone())));
    }

    #[tokio::test]
    async fn the_newest_records_removed_are_named_by_the_anchor_and_stop_the_start() {
        let (_dir, catalog, journal, last) = journal_of(9).await;
        // A start anchors the head it continues from (record 9) in the metadata DB.
        drop(AuditLog::start(catalog.clone(), &journal).await.unwrap());
        let report = verify(&catalog, Some(&journal)).await.unwrap();
        assert_eq!((report.records, report.first_broken), (9, None));

        // Verify names record `seq` saying `broken`; a start refuses the journal saying `refused`.
        let named_and_refused = async |seq: i64, broken: &str, refused: &str| {
            let link = verify(&catalog, Some(&journal)).await.unwrap().first_broken.unwrap();
            assert_eq!(link.seq, seq);
            assert!(link.reason.contains(broken), "{}", link.reason);
            let Err(Error::AuditUnavailable(why)) = AuditLog::start(catalog.clone(), &journal).await else {
                panic!("a start must not continue this journal ({broken})");
            };
            assert!(why.contains(refused), "{why}");
        };

        // The last segment (record 9) deleted: the chain that is left verifies on its own.
        std::fs::remove_file(&last).unwrap();
        named_and_refused(9, "record 9 was recorded", "ends at record 8").await;

        // The whole directory deleted: the same.
        std::fs::remove_dir_all(&journal).unwrap();
        let broken = verify(&catalog, Some(&journal)).await.unwrap().first_broken.unwrap();
        assert_eq!(broken.seq, 1);
        assert!(AuditLog::start(catalog.clone(), &journal).await.is_err());

        // Replaced by another chain, longer than the anchor: its record 9 is not the one
        // anchored (other times, other hashes).
        let (_other, _, other_journal, _) = journal_of(12).await;
        std::fs::rename(&other_journal, &journal).unwrap();
        named_and_refused(9, "rewritten", "rewritten").await;
    }

    #[tokio::test]
    async fn a_journal_line_that_is_not_a_record_is_damage() {
        let (_dir, catalog, journal, last) = journal_of(6).await;
        let text = std::fs::read_to_string(&last).unwrap();
        std::fs::write(&last, format!("not json\n{text}")).unwrap();
        let broken = verify(&catalog, Some(&journal)).await.unwrap().first_broken.unwrap();
        assert!(broken.reason.contains("damaged at line 1"), "{}", broken.reason);
        assert!(AuditLog::start(catalog.clone(), &journal).await.is_err());
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

        /// What the writer hashes, the head it writes then the JSON the call made, is the
        /// serde_json form of the record the readers check, whatever the call's entry holds.
        #[test]
        fn the_writers_bytes_are_the_canonical_records(
            seq in any::<i64>(),
            at in any::<String>(),
            texts in proptest::collection::vec(any::<String>(), 3),
            maybe_texts in proptest::collection::vec(proptest::option::of("[a-z\"\\\\\u{0}-\u{1f}中]{0,8}"), 4),
            items in proptest::collection::vec(proptest::collection::vec("[a-z_\"\\\\\u{0}-\u{1f}中]{0,8}", 0..4), 2),
            ints in proptest::collection::vec(proptest::option::of(any::<i64>()), 6),
            status in any::<u16>(),
        ) {
            let entry = AuditEntry {
                request_id: texts[0].clone(),
                credential_id: ints[0],
                department: maybe_texts[0].clone(),
                resource_code: maybe_texts[1].clone(),
                endpoint: texts[1].clone(),
                subject_hash: maybe_texts[2].clone(),
                status,
                outcome: texts[2].clone(),
                items_plain: items[0].clone(),
                items_masked: items[1].clone(),
                grant_id: ints[1],
                latency_us: ints[2].unwrap_or_default(),
                row_count: ints[3],
                demand_id: ints[4],
                client_hash: maybe_texts[3].clone(),
                application_id: ints[5],
            };
            let mut written = Vec::new();
            write_head(&mut written, seq, &at);
            written.extend_from_slice(&entry.rest_json());
            let record = Canonical::new(seq, at, entry);
            prop_assert_eq!(String::from_utf8(written).unwrap(), serde_json::to_string(&record).unwrap());
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

        /// The cursor's skip reads a line's sequence number without parsing the line: it is
        /// the one the line holds, for every record.
        #[test]
        fn a_lines_sequence_number_is_read_where_the_format_puts_it(record in any_canonical(), hash in "[0-9a-f]{64}") {
            let mut body = Vec::new();
            record.write_json(&mut body);
            let line = [b"{\"hash\":\"", hash.as_bytes(), b"\",\"record\":", &body, b"}\n"].concat();
            prop_assert_eq!(journal::line_seq(&line), Some(record.seq));
            let parsed: journal::Line = serde_json::from_slice(&line).unwrap();
            prop_assert_eq!(parsed.record.seq, record.seq);
        }
    }
}
