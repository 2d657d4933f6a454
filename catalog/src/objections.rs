//! Objections (异议处理): a consumer that reads a record through a resource disputes the
//! record, or one field of it, with a reason. The objection is routed to the field's
//! authoritative department (一数一源), or to the resource's provider when it names no field or
//! the field has no authority, which answers within a deadline of working days: the data is
//! right (confirm, with its answer), or it was wrong and is corrected — by hand, through an
//! audited manual correction, or at the source and brought in by a normal connector run. Every
//! step is an [`ObjectionEvent`] with its time and actor.
//!
//! ```text
//! open ──confirm──────────────────────► confirmed (final: the data is right)
//!   ├──correct (manual correction)────► corrected (final, with the library version)
//!   └──resolve (a connector run)──────► corrected (final, with the library version)
//! ```
//!
//! An objection past its deadline and still open is overdue. The value the consumer saw is not
//! stored (it may be sensitive); the value it claims is right is, when it gives one.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::error::Validator;
use crate::{Catalog, Error, Result, add_working_days, now_text, timestamp_text};

/// Where an objection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectionStatus {
    /// 待处理: waiting for the routed department.
    Open,
    /// 已确认: the department says the data is right.
    Confirmed,
    /// 已更正: the record was corrected (by hand or by a connector run).
    Corrected,
}

impl ObjectionStatus {
    /// The stored and serialized code.
    pub fn code(self) -> &'static str {
        match self {
            ObjectionStatus::Open => "open",
            ObjectionStatus::Confirmed => "confirmed",
            ObjectionStatus::Corrected => "corrected",
        }
    }

    /// Parses a code (`field` names the parameter in the error).
    pub fn parse(s: &str, field: &str) -> Result<Self> {
        [
            ObjectionStatus::Open,
            ObjectionStatus::Confirmed,
            ObjectionStatus::Corrected,
        ]
        .into_iter()
        .find(|d| d.code() == s)
        .ok_or_else(|| Error::Invalid {
            field: field.into(),
            message: format!("{s:?} is not one of open, confirmed, corrected"),
        })
    }
}

/// Why an objection went to the department it went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// The department is the authoritative source of the disputed field (一数一源).
    FieldAuthority,
    /// The department provides the resource (no field named, or the field has no authority).
    ResourceProvider,
}

impl Routing {
    fn code(self) -> &'static str {
        match self {
            Routing::FieldAuthority => "field_authority",
            Routing::ResourceProvider => "resource_provider",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "field_authority" {
            Routing::FieldAuthority
        } else {
            Routing::ResourceProvider
        }
    }
}

/// How a corrected objection was corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// 人工更正: new values written by the department through the API (audited).
    Manual,
    /// Fixed at the source and brought in by a normal connector run.
    Run,
}

impl Resolution {
    fn code(self) -> &'static str {
        match self {
            Resolution::Manual => "manual",
            Resolution::Run => "run",
        }
    }
}

/// One step of an objection's life.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ObjectionEvent {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// `raised`, `routed`, `viewed` (first opened by the routed department), `confirmed`,
    /// `corrected` (manual correction) or `resolved` (by a connector run).
    pub kind: String,
    /// The department acting (for `routed`: the department routed to).
    pub department: Option<String>,
    /// Who: `credential 12 (name)`, or `platform` for routing.
    pub actor: String,
    /// What the step carried: the routing rule, the answer, the corrected fields and version.
    pub detail: Option<serde_json::Value>,
}

/// An objection to a record or a field, with its answer and its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Objection {
    /// Row id.
    pub id: i64,
    /// The resource through which the consumer saw the record.
    pub resource_code: String,
    /// The library holding the record.
    pub library: String,
    /// The record's key (e.g. a citizen ID number), normalized.
    pub record_key: String,
    /// The disputed field; `None`: the whole record.
    pub field: Option<String>,
    /// The value the consumer says is right, normalized, when it gave one.
    pub claimed_value: Option<String>,
    /// Why the consumer disputes the record (异议理由).
    pub reason: String,
    /// The department that raised it.
    pub raised_by_department: String,
    /// The credential that raised it.
    pub raised_by_credential: i64,
    /// The department that must answer.
    pub routed_to_department: String,
    /// Why it was routed there.
    pub routing: Routing,
    /// The library version of the record when the objection was raised.
    pub record_version: i64,
    /// Status.
    pub status: ObjectionStatus,
    /// Raised at.
    pub created_at: String,
    /// The answer is due by.
    pub due_at: String,
    /// Open past its due time.
    pub overdue: bool,
    /// Confirmed or corrected at.
    pub answered_at: Option<String>,
    /// The department's answer (confirm) or note (correct).
    pub answer: Option<String>,
    /// How it was corrected.
    pub resolution: Option<Resolution>,
    /// The library version that carries the correction.
    pub corrected_version: Option<i64>,
    /// Every step, oldest first.
    pub events: Vec<ObjectionEvent>,
    /// The raising department's id.
    #[serde(skip)]
    pub raised_by_department_id: i64,
    /// The routed department's id.
    #[serde(skip)]
    pub routed_department_id: i64,
}

/// A new objection, checked by the caller against the exchange policy and the library: the
/// caller may read the record, the field is a data item of the resource, the key and the
/// claimed value are normalized.
#[derive(Debug, Clone)]
pub struct NewObjection {
    /// The resource code.
    pub resource_code: String,
    /// The library holding the record.
    pub library: String,
    /// The normalized key.
    pub record_key: String,
    /// The disputed field, if one.
    pub field: Option<String>,
    /// The normalized claimed value, if given.
    pub claimed_value: Option<String>,
    /// Why.
    pub reason: String,
    /// The raising department.
    pub department_id: i64,
    /// The raising credential.
    pub credential_id: i64,
    /// Actor label for the timeline.
    pub actor: String,
    /// The record's library version as the consumer saw it.
    pub record_version: i64,
}

/// How an objection was corrected, for [`Catalog::correct_objection`].
#[derive(Debug, Clone)]
pub struct Correction {
    /// By hand or by a run.
    pub resolution: Resolution,
    /// The library version that carries the correction.
    pub version: i64,
    /// The department's note.
    pub note: Option<String>,
    /// For the timeline: the corrected fields, the version named.
    pub detail: serde_json::Value,
}

/// Which objections to list.
#[derive(Debug, Clone, Default)]
pub struct ObjectionQuery {
    /// Raised by or routed to this department; `None`: all (platform staff).
    pub department_id: Option<i64>,
    /// Only this status.
    pub status: Option<ObjectionStatus>,
    /// Only open objections past their deadline.
    pub overdue: bool,
    /// Only objections on this resource.
    pub resource_code: Option<String>,
}

const COLUMNS: &str = "o.id, r.code AS resource_code, o.library, o.record_key, o.field, o.claimed_value, \
    o.reason, rd.code AS raised_by_department, o.raised_by_credential_id, td.code AS routed_to_department, \
    o.routing, o.record_version, o.status, o.created_at, o.due_at, o.answered_at, o.answer, o.resolution, \
    o.corrected_version, o.raised_by_department_id, o.routed_department_id";
const FROM: &str = "FROM objections o JOIN resources r ON r.id = o.resource_id \
    JOIN departments rd ON rd.id = o.raised_by_department_id \
    JOIN departments td ON td.id = o.routed_department_id";

fn from_row(row: &AnyRow) -> Result<Objection> {
    let status = ObjectionStatus::parse(&row.try_get::<String, _>("status")?, "status")?;
    let due_at: String = row.try_get("due_at")?;
    let resolution: Option<String> = row.try_get("resolution")?;
    Ok(Objection {
        id: row.try_get("id")?,
        resource_code: row.try_get("resource_code")?,
        library: row.try_get("library")?,
        record_key: row.try_get("record_key")?,
        field: row.try_get("field")?,
        claimed_value: row.try_get("claimed_value")?,
        reason: row.try_get("reason")?,
        raised_by_department: row.try_get("raised_by_department")?,
        raised_by_credential: row.try_get("raised_by_credential_id")?,
        routed_to_department: row.try_get("routed_to_department")?,
        routing: Routing::parse(&row.try_get::<String, _>("routing")?),
        record_version: row.try_get("record_version")?,
        overdue: status == ObjectionStatus::Open && due_at < now_text(),
        status,
        created_at: row.try_get("created_at")?,
        due_at,
        answered_at: row.try_get("answered_at")?,
        answer: row.try_get("answer")?,
        resolution: resolution.map(|r| {
            if r == "run" {
                Resolution::Run
            } else {
                Resolution::Manual
            }
        }),
        corrected_version: row.try_get("corrected_version")?,
        events: Vec::new(),
        raised_by_department_id: row.try_get("raised_by_department_id")?,
        routed_department_id: row.try_get("routed_department_id")?,
    })
}

/// An event to append.
struct Event<'a> {
    kind: &'a str,
    department_id: Option<i64>,
    actor: &'a str,
    detail: Option<serde_json::Value>,
}

async fn append_event<'e, E>(executor: E, objection_id: i64, at: &str, event: Event<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO objection_events (objection_id, at, kind, department_id, actor, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(objection_id)
    .bind(at)
    .bind(event.kind)
    .bind(event.department_id)
    .bind(event.actor)
    .bind(event.detail.map(|d| d.to_string()))
    .execute(executor)
    .await?;
    Ok(())
}

impl Catalog {
    /// Raises an objection, routes it (the field's authoritative department, else the
    /// resource's provider) and sets its deadline `deadline_working_days` ahead.
    pub async fn create_objection(&self, new: &NewObjection, deadline_working_days: u32) -> Result<Objection> {
        let mut v = Validator::default();
        v.check(!new.reason.trim().is_empty(), "reason", "say what is wrong (异议理由)");
        v.check(
            new.claimed_value.is_none() || new.field.is_some(),
            "claimed_value",
            "a claimed value belongs to a field: name the field",
        );
        v.finish()?;
        let resource = self.resource_by_code(&new.resource_code).await?;
        let authority = match &new.field {
            Some(field) => self.field_authority(&new.library, field).await?,
            None => None,
        };
        let (routed, routing) = match &authority {
            Some(a) => (a.department_id, Routing::FieldAuthority),
            None => (resource.provider_id, Routing::ResourceProvider),
        };
        let now = Utc::now();
        let at = timestamp_text(now);
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO objections (resource_id, library, record_key, field, claimed_value, reason, \
             raised_by_department_id, raised_by_credential_id, routed_department_id, routing, record_version, \
             status, created_at, due_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', $12, $13) RETURNING id",
        )
        .bind(resource.id)
        .bind(&new.library)
        .bind(&new.record_key)
        .bind(&new.field)
        .bind(&new.claimed_value)
        .bind(new.reason.trim())
        .bind(new.department_id)
        .bind(new.credential_id)
        .bind(routed)
        .bind(routing.code())
        .bind(new.record_version)
        .bind(&at)
        .bind(timestamp_text(add_working_days(now, deadline_working_days)))
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        append_event(
            &mut *tx,
            id,
            &at,
            Event {
                kind: "raised",
                department_id: Some(new.department_id),
                actor: &new.actor,
                detail: Some(serde_json::json!({"field": new.field, "reason": new.reason.trim()})),
            },
        )
        .await?;
        let detail = match &authority {
            Some(a) => {
                serde_json::json!({"routing": routing.code(), "field": a.field, "authority_resource": a.resource_code})
            }
            None => serde_json::json!({"routing": routing.code(), "resource": resource.code}),
        };
        append_event(
            &mut *tx,
            id,
            &at,
            Event {
                kind: "routed",
                department_id: Some(routed),
                actor: "platform",
                detail: Some(detail),
            },
        )
        .await?;
        tx.commit().await?;
        self.objection(id).await
    }

    /// One objection, with its timeline.
    pub async fn objection(&self, id: i64) -> Result<Objection> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} {FROM} WHERE o.id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: "objection",
                key: id.to_string(),
            })?;
        let mut objection = from_row(&row)?;
        objection.events = self.objection_events(id).await?;
        Ok(objection)
    }

    async fn objection_events(&self, id: i64) -> Result<Vec<ObjectionEvent>> {
        let rows = sqlx::query(
            "SELECT e.at, e.kind, d.code AS department, e.actor, e.detail FROM objection_events e \
             LEFT JOIN departments d ON d.id = e.department_id WHERE e.objection_id = $1 ORDER BY e.id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let detail: Option<String> = row.try_get("detail")?;
                Ok(ObjectionEvent {
                    at: row.try_get("at")?,
                    kind: row.try_get("kind")?,
                    department: row.try_get("department")?,
                    actor: row.try_get("actor")?,
                    detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                })
            })
            .collect()
    }

    /// Objections matching `query`, newest first, each with its timeline.
    pub async fn objections(&self, query: &ObjectionQuery) -> Result<Vec<Objection>> {
        let mut conditions = vec!["1 = 1".to_string()];
        let mut texts: Vec<String> = Vec::new();
        // Parameters are numbered in the order they are bound: the department id first.
        let mut next = 1;
        if query.department_id.is_some() {
            conditions.push(format!(
                "(o.raised_by_department_id = ${next} OR o.routed_department_id = ${next})"
            ));
            next += 1;
        }
        if let Some(status) = query.status {
            conditions.push(format!("o.status = ${next}"));
            texts.push(status.code().to_string());
            next += 1;
        }
        if query.overdue {
            conditions.push(format!("o.status = 'open' AND o.due_at < ${next}"));
            texts.push(now_text());
            next += 1;
        }
        if let Some(code) = &query.resource_code {
            conditions.push(format!("r.code = ${next}"));
            texts.push(code.clone());
        }
        let sql = format!(
            "SELECT {COLUMNS} {FROM} WHERE {} ORDER BY o.id DESC",
            conditions.join(" AND ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(department) = query.department_id {
            q = q.bind(department);
        }
        for text in texts {
            q = q.bind(text);
        }
        let mut out = Vec::new();
        for row in q.fetch_all(&self.pool).await? {
            let mut objection = from_row(&row)?;
            objection.events = self.objection_events(objection.id).await?;
            out.push(objection);
        }
        Ok(out)
    }

    /// Records that the routed department opened the objection, the first time it does.
    pub async fn objection_viewed(&self, id: i64, department_id: i64, actor: &str) -> Result<()> {
        let seen =
            sqlx::query("SELECT COUNT(*) AS n FROM objection_events WHERE objection_id = $1 AND kind = 'viewed'")
                .bind(id)
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>("n")?;
        if seen == 0 {
            append_event(
                &self.pool,
                id,
                &now_text(),
                Event {
                    kind: "viewed",
                    department_id: Some(department_id),
                    actor,
                    detail: None,
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Refuses unless `department_id` is the one objection `id` is routed to and it is open.
    pub async fn check_objection_answerable(&self, id: i64, department_id: i64) -> Result<Objection> {
        let objection = self.objection(id).await?;
        if objection.routed_department_id != department_id {
            return Err(Error::Forbidden(format!(
                "objection {id} is for {} to answer",
                objection.routed_to_department
            )));
        }
        if objection.status != ObjectionStatus::Open {
            return Err(Error::State(format!(
                "objection {id} is {}; only open objections are answered",
                objection.status.code()
            )));
        }
        Ok(objection)
    }

    /// The routed department says the data is right, with its answer.
    pub async fn confirm_objection(&self, id: i64, department_id: i64, actor: &str, answer: &str) -> Result<Objection> {
        self.check_objection_answerable(id, department_id).await?;
        let mut v = Validator::default();
        v.check(!answer.trim().is_empty(), "answer", "say why the data is right (答复)");
        v.finish()?;
        let at = now_text();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE objections SET status = 'confirmed', answered_at = $2, answer = $3 \
             WHERE id = $1 AND status = 'open'",
        )
        .bind(id)
        .bind(&at)
        .bind(answer.trim())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(Error::State(format!("objection {id} was answered meanwhile")));
        }
        append_event(
            &mut *tx,
            id,
            &at,
            Event {
                kind: "confirmed",
                department_id: Some(department_id),
                actor,
                detail: Some(serde_json::json!({"answer": answer.trim()})),
            },
        )
        .await?;
        tx.commit().await?;
        self.objection(id).await
    }

    /// Marks an open objection corrected, as `correction` says.
    pub async fn correct_objection(
        &self,
        id: i64,
        department_id: i64,
        actor: &str,
        correction: Correction,
    ) -> Result<Objection> {
        let Correction {
            resolution,
            version,
            note,
            detail,
        } = correction;
        let at = now_text();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE objections SET status = 'corrected', answered_at = $2, answer = $3, resolution = $4, \
             corrected_version = $5 WHERE id = $1 AND status = 'open' AND routed_department_id = $6",
        )
        .bind(id)
        .bind(&at)
        .bind(note.as_deref().map(str::trim).filter(|n| !n.is_empty()))
        .bind(resolution.code())
        .bind(version)
        .bind(department_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(Error::State(format!(
                "objection {id} is no longer open for this department"
            )));
        }
        append_event(
            &mut *tx,
            id,
            &at,
            Event {
                kind: match resolution {
                    Resolution::Manual => "corrected",
                    Resolution::Run => "resolved",
                },
                department_id: Some(department_id),
                actor,
                detail: Some(detail),
            },
        )
        .await?;
        tx.commit().await?;
        self.objection(id).await
    }
}
