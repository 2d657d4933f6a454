//! Demands (供需对接): a consumer department asks for a resource — or for data not yet in the
//! catalog — and the responsible department answers within a deadline: approve (which creates
//! the [`Grant`] policy enforces) or reject with a reason. The consumer may object once; the
//! platform arbitrates, and its decision is final.
//!
//! ```text
//! pending ──approve──► approved ──object──► objected ──arbitrate: approve──► approved (final)
//!    └────reject────► rejected ──object──┘            └─arbitrate: reject──► rejected (final)
//! ```

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::error::Validator;
use crate::grants::{Grant, NewGrant, insert_grant};
use crate::resources::ResourceStatus;
use crate::{Catalog, Error, Result, now_text, timestamp_text};

/// Where a demand stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DemandStatus {
    /// 待答复: waiting for the responsible department.
    Pending,
    /// 已同意: a grant was created.
    Approved,
    /// 已拒绝.
    Rejected,
    /// 异议中: the consumer objected; the platform arbitrates.
    Objected,
}

impl DemandStatus {
    fn code(self) -> &'static str {
        match self {
            DemandStatus::Pending => "pending",
            DemandStatus::Approved => "approved",
            DemandStatus::Rejected => "rejected",
            DemandStatus::Objected => "objected",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        [
            DemandStatus::Pending,
            DemandStatus::Approved,
            DemandStatus::Rejected,
            DemandStatus::Objected,
        ]
        .into_iter()
        .find(|d| d.code() == s)
        .ok_or_else(|| Error::Invalid {
            field: "status".into(),
            message: s.into(),
        })
    }
}

/// A demand, with its answer, objection and arbitration.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Demand {
    /// Row id.
    pub id: i64,
    /// The department asking.
    pub consumer_department: String,
    /// The resource asked for; `None` for data not yet in the catalog.
    pub resource_code: Option<String>,
    /// The department that must answer.
    pub responsible_department: String,
    /// A short title.
    pub title: String,
    /// What is needed, in words (for data not yet in the catalog).
    pub description: String,
    /// 用途.
    pub purpose: String,
    /// 依据: the legal or policy basis of the use.
    pub legal_basis: String,
    /// Data items asked for.
    pub requested_items: Vec<String>,
    /// Expected calls per day.
    pub expected_daily_calls: i64,
    /// Needed until.
    pub period_until: Option<String>,
    /// Status.
    pub status: DemandStatus,
    /// Raised at.
    pub created_at: String,
    /// The answer is due by.
    pub due_at: String,
    /// Pending past its due time.
    pub overdue: bool,
    /// Answered at.
    pub decided_at: Option<String>,
    /// The approval's terms, or the rejection.
    pub decision: Option<serde_json::Value>,
    /// Why it was rejected.
    pub reject_reason: Option<String>,
    /// The consumer's objection.
    pub objection: Option<String>,
    /// Objected at.
    pub objected_at: Option<String>,
    /// The platform's arbitration, with its reason.
    pub arbitration: Option<serde_json::Value>,
    /// Arbitrated at (the demand is final from then on).
    pub arbitrated_at: Option<String>,
    /// The grant an approval created.
    pub grant_id: Option<i64>,
}

/// A new demand. Either `resource_code`, or `responsible_department_code` and `title` for data
/// not yet in the catalog.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDemand {
    /// The resource asked for.
    #[serde(default)]
    pub resource_code: Option<String>,
    /// For data not in the catalog: the department thought to hold it.
    #[serde(default)]
    pub responsible_department_code: Option<String>,
    /// A short title (defaults to the resource's name).
    #[serde(default)]
    pub title: Option<String>,
    /// What is needed.
    #[serde(default)]
    pub description: String,
    /// 用途.
    pub purpose: String,
    /// 依据.
    pub legal_basis: String,
    /// Items asked for (default: all of the resource's).
    #[serde(default)]
    pub requested_items: Vec<String>,
    /// Expected calls per day.
    #[serde(default)]
    pub expected_daily_calls: i64,
    /// Needed until.
    #[serde(default)]
    pub period_until: Option<NaiveDate>,
}

/// An answer to a demand, by the responsible department or, after an objection, the platform.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case", deny_unknown_fields)]
pub enum DemandDecision {
    /// Grant access on these terms.
    Approve {
        /// For a demand of data not yet in the catalog: the (now published) resource granted.
        #[serde(default)]
        resource_code: Option<String>,
        /// Items granted (default: those requested).
        #[serde(default)]
        items: Vec<String>,
        /// Of those, items returned unmasked.
        #[serde(default)]
        plain_items: Vec<String>,
        /// A row filter (DataFusion SQL expression), e.g. `region_code LIKE '3301%'`.
        #[serde(default)]
        row_filter: Option<String>,
        /// Calls per second.
        #[serde(default)]
        quota_per_second: Option<f64>,
        /// Calls per day.
        #[serde(default)]
        quota_per_day: Option<i64>,
        /// When access ends.
        #[serde(default)]
        expires_at: Option<DateTime<Utc>>,
        /// A note to the consumer (and, in arbitration, the reason).
        #[serde(default)]
        comment: Option<String>,
    },
    /// Refuse, saying why.
    Reject {
        /// Why.
        reason: String,
    },
}

/// Which demands to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemandView {
    /// Raised by this department.
    Mine(i64),
    /// For this department to answer.
    Incoming(i64),
    /// Pending past their deadline (of this department, or all).
    Overdue(Option<i64>),
    /// Every demand (platform staff).
    All,
}

/// `start` plus `days` working days (Monday to Friday; public holidays are not modelled).
pub fn add_working_days(start: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let mut at = start;
    let mut left = days;
    while left > 0 {
        at += Duration::days(1);
        if !matches!(at.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    at
}

const COLUMNS: &str = "m.id, c.code AS consumer_department, r.code AS resource_code, \
    p.code AS responsible_department, m.title, m.description, m.purpose, m.legal_basis, \
    m.requested_items, m.expected_daily_calls, m.period_until, m.status, m.created_at, m.due_at, \
    m.decided_at, m.decision, m.reject_reason, m.objection, m.objected_at, m.arbitration, \
    m.arbitrated_at, m.grant_id, m.consumer_department_id, m.responsible_department_id, m.resource_id";
const FROM: &str = "FROM demands m JOIN departments c ON c.id = m.consumer_department_id \
    JOIN departments p ON p.id = m.responsible_department_id \
    LEFT JOIN resources r ON r.id = m.resource_id";

struct Row_ {
    demand: Demand,
    consumer_id: i64,
    responsible_id: i64,
    resource_id: Option<i64>,
}

fn from_row(row: &AnyRow) -> Result<Row_> {
    let json = |column: &str| -> Result<Option<serde_json::Value>> {
        let text: Option<String> = row.try_get(column)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    };
    let requested: String = row.try_get("requested_items")?;
    let status = DemandStatus::parse(&row.try_get::<String, _>("status")?)?;
    let due_at: String = row.try_get("due_at")?;
    Ok(Row_ {
        consumer_id: row.try_get("consumer_department_id")?,
        responsible_id: row.try_get("responsible_department_id")?,
        resource_id: row.try_get("resource_id")?,
        demand: Demand {
            id: row.try_get("id")?,
            consumer_department: row.try_get("consumer_department")?,
            resource_code: row.try_get("resource_code")?,
            responsible_department: row.try_get("responsible_department")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            purpose: row.try_get("purpose")?,
            legal_basis: row.try_get("legal_basis")?,
            requested_items: serde_json::from_str(&requested).unwrap_or_default(),
            expected_daily_calls: row.try_get("expected_daily_calls")?,
            period_until: row.try_get("period_until")?,
            overdue: status == DemandStatus::Pending && due_at < now_text(),
            status,
            created_at: row.try_get("created_at")?,
            due_at,
            decided_at: row.try_get("decided_at")?,
            decision: json("decision")?,
            reject_reason: row.try_get("reject_reason")?,
            objection: row.try_get("objection")?,
            objected_at: row.try_get("objected_at")?,
            arbitration: json("arbitration")?,
            arbitrated_at: row.try_get("arbitrated_at")?,
            grant_id: row.try_get("grant_id")?,
        },
    })
}

impl Catalog {
    /// Raises a demand for `consumer_department_id`, due in `deadline_working_days`.
    pub async fn create_demand(
        &self,
        consumer_department_id: i64,
        new: &NewDemand,
        deadline_working_days: u32,
    ) -> Result<Demand> {
        let mut v = Validator::default();
        v.check(
            !new.purpose.trim().is_empty(),
            "purpose",
            "say what the data is for (用途)",
        );
        v.check(
            !new.legal_basis.trim().is_empty(),
            "legal_basis",
            "state the legal or policy basis (依据)",
        );
        v.check(new.expected_daily_calls >= 0, "expected_daily_calls", "not negative");
        let mut resource_id = None;
        let mut responsible = None;
        let mut title = new.title.clone().unwrap_or_default();
        let mut requested = new.requested_items.clone();
        match (&new.resource_code, &new.responsible_department_code) {
            (Some(code), None) => match self.resource_by_code(code).await {
                Ok(resource) if resource.status == ResourceStatus::Published => {
                    for (i, item) in requested.iter().enumerate() {
                        v.check(
                            resource.item(item).is_some(),
                            format!("requested_items[{i}]"),
                            format!("{code} has no data item {item}"),
                        );
                    }
                    if requested.is_empty() {
                        requested = resource.meta.items.iter().map(|i| i.name.clone()).collect();
                    }
                    if title.trim().is_empty() {
                        title = resource.meta.name.clone();
                    }
                    v.check(
                        resource.provider_id != consumer_department_id,
                        "resource_code",
                        "a department does not demand its own data",
                    );
                    resource_id = Some(resource.id);
                    responsible = Some(resource.provider_id);
                }
                Ok(resource) => v.error(
                    "resource_code",
                    format!(
                        "resource {code} is {}; only published resources can be demanded",
                        resource.status.code()
                    ),
                ),
                Err(Error::NotFound { .. }) => v.error("resource_code", format!("no resource has the code {code}")),
                Err(e) => return Err(e),
            },
            (None, Some(department)) => {
                match self.department_by_code(department).await {
                    Ok(d) => responsible = Some(d.id),
                    Err(Error::NotFound { .. }) => v.error(
                        "responsible_department_code",
                        format!("no department has the code {department}"),
                    ),
                    Err(e) => return Err(e),
                }
                v.check(!title.trim().is_empty(), "title", "name the data needed");
                v.check(
                    !new.description.trim().is_empty(),
                    "description",
                    "describe the data needed",
                );
            }
            _ => v.error(
                "resource_code",
                "give either resource_code, or responsible_department_code with a title for data not in the catalog",
            ),
        }
        v.finish()?;
        let now = Utc::now();
        let row = sqlx::query(
            "INSERT INTO demands (consumer_department_id, resource_id, responsible_department_id, \
             title, description, purpose, legal_basis, requested_items, expected_daily_calls, \
             period_until, status, created_at, due_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12) RETURNING id",
        )
        .bind(consumer_department_id)
        .bind(resource_id)
        .bind(responsible.expect("validated"))
        .bind(&title)
        .bind(&new.description)
        .bind(&new.purpose)
        .bind(&new.legal_basis)
        .bind(serde_json::to_string(&requested).unwrap_or_default())
        .bind(new.expected_daily_calls)
        .bind(new.period_until.map(|d| d.to_string()))
        .bind(timestamp_text(now))
        .bind(timestamp_text(add_working_days(now, deadline_working_days)))
        .fetch_one(&self.pool)
        .await?;
        self.demand(row.try_get("id")?).await
    }

    async fn demand_row(&self, id: i64) -> Result<Row_> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} {FROM} WHERE m.id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: "demand",
                key: id.to_string(),
            })?;
        from_row(&row)
    }

    /// One demand.
    pub async fn demand(&self, id: i64) -> Result<Demand> {
        Ok(self.demand_row(id).await?.demand)
    }

    /// Whether `department_id` raised or must answer demand `id` (who may see it).
    pub async fn demand_involves(&self, id: i64, department_id: i64) -> Result<bool> {
        let row = self.demand_row(id).await?;
        Ok(row.consumer_id == department_id || row.responsible_id == department_id)
    }

    /// Demands in `view`, newest first.
    pub async fn demands(&self, view: DemandView) -> Result<Vec<Demand>> {
        let (condition, department) = match view {
            DemandView::Mine(d) => ("m.consumer_department_id = $1", Some(d)),
            DemandView::Incoming(d) => ("m.responsible_department_id = $1", Some(d)),
            DemandView::Overdue(Some(d)) => (
                "m.status = 'pending' AND m.due_at < $2 AND m.responsible_department_id = $1",
                Some(d),
            ),
            DemandView::Overdue(None) => ("m.status = 'pending' AND m.due_at < $2 AND $1 IS NULL", None),
            DemandView::All => ("$1 IS NULL", None),
        };
        let sql = format!("SELECT {COLUMNS} {FROM} WHERE {condition} ORDER BY m.id DESC");
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(department);
        if matches!(view, DemandView::Overdue(_)) {
            query = query.bind(now_text());
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(from_row(r)?.demand))
            .collect()
    }

    /// The responsible department answers a pending demand.
    pub async fn decide_demand(
        &self,
        id: i64,
        decider_department_id: i64,
        decision: &DemandDecision,
    ) -> Result<Demand> {
        let row = self.demand_row(id).await?;
        if row.responsible_id != decider_department_id {
            return Err(Error::Forbidden(format!(
                "demand {id} is for {} to answer",
                row.demand.responsible_department
            )));
        }
        if row.demand.status != DemandStatus::Pending {
            return Err(Error::State(format!(
                "demand {id} is {}; only pending demands are answered",
                row.demand.status.code()
            )));
        }
        self.apply_decision(&row, decision, false).await
    }

    /// The consumer objects to the answer (once).
    pub async fn object_demand(&self, id: i64, consumer_department_id: i64, reason: &str) -> Result<Demand> {
        let row = self.demand_row(id).await?;
        if row.consumer_id != consumer_department_id {
            return Err(Error::Forbidden(format!(
                "only {} may object to demand {id}",
                row.demand.consumer_department
            )));
        }
        if !matches!(row.demand.status, DemandStatus::Approved | DemandStatus::Rejected)
            || row.demand.arbitrated_at.is_some()
        {
            return Err(Error::State(format!(
                "demand {id} is {}; only an answered, unarbitrated demand can be objected to",
                row.demand.status.code()
            )));
        }
        if row.demand.objected_at.is_some() {
            return Err(Error::State(format!("demand {id} was objected to already")));
        }
        if reason.trim().is_empty() {
            return Err(Error::Validation(vec![crate::FieldError {
                field: "reason".into(),
                message: "say why (异议理由)".into(),
            }]));
        }
        sqlx::query("UPDATE demands SET status = 'objected', objection = $2, objected_at = $3 WHERE id = $1")
            .bind(id)
            .bind(reason)
            .bind(now_text())
            .execute(&self.pool)
            .await?;
        self.demand(id).await
    }

    /// The platform arbitrates an objected demand; its decision is final.
    pub async fn arbitrate_demand(&self, id: i64, decision: &DemandDecision) -> Result<Demand> {
        let row = self.demand_row(id).await?;
        if row.demand.status != DemandStatus::Objected {
            return Err(Error::State(format!(
                "demand {id} is {}; only objected demands are arbitrated",
                row.demand.status.code()
            )));
        }
        self.apply_decision(&row, decision, true).await
    }

    async fn apply_decision(&self, row: &Row_, decision: &DemandDecision, arbitration: bool) -> Result<Demand> {
        let id = row.demand.id;
        let now = now_text();
        let mut v = Validator::default();
        let mut tx = self.pool.begin().await?;
        match decision {
            DemandDecision::Reject { reason } => {
                v.check(!reason.trim().is_empty(), "reason", "a rejection says why");
                v.finish()?;
                if arbitration {
                    revoke_demand_grant(&mut tx, row.demand.grant_id).await?;
                }
                let sql = if arbitration {
                    "UPDATE demands SET status = 'rejected', arbitration = $2, arbitrated_at = $3, grant_id = NULL WHERE id = $1"
                } else {
                    "UPDATE demands SET status = 'rejected', decision = $2, decided_at = $3, reject_reason = $4 WHERE id = $1"
                };
                sqlx::query(sql)
                    .bind(id)
                    .bind(serde_json::to_string(decision).unwrap_or_default())
                    .bind(&now)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
            }
            DemandDecision::Approve {
                resource_code,
                items,
                plain_items,
                row_filter,
                quota_per_second,
                quota_per_day,
                expires_at,
                ..
            } => {
                let resource = match (row.resource_id, resource_code) {
                    (Some(_), Some(_)) => {
                        v.error("resource_code", "the demand names its resource already");
                        None
                    }
                    (Some(_), None) => Some(
                        self.resource_by_code(row.demand.resource_code.as_deref().unwrap_or_default())
                            .await?,
                    ),
                    (None, Some(code)) => match self.resource_by_code(code).await {
                        Ok(r) if r.provider_id == row.responsible_id && r.status == ResourceStatus::Published => {
                            Some(r)
                        }
                        Ok(_) => {
                            v.error(
                                "resource_code",
                                format!(
                                    "{code} is not a published resource of {}",
                                    row.demand.responsible_department
                                ),
                            );
                            None
                        }
                        Err(Error::NotFound { .. }) => {
                            v.error("resource_code", format!("no resource has the code {code}"));
                            None
                        }
                        Err(e) => return Err(e),
                    },
                    (None, None) => {
                        v.error(
                            "resource_code",
                            "approving a demand for data not in the catalog names the resource registered for it",
                        );
                        None
                    }
                };
                let items = if items.is_empty() {
                    row.demand.requested_items.clone()
                } else {
                    items.clone()
                };
                if let Some(resource) = &resource {
                    for (i, item) in items.iter().enumerate() {
                        v.check(
                            resource.item(item).is_some(),
                            format!("items[{i}]"),
                            format!("{} has no data item {item}", resource.code),
                        );
                    }
                    v.check(!items.is_empty(), "items", "grant at least one data item");
                }
                for (i, item) in plain_items.iter().enumerate() {
                    v.check(
                        items.contains(item),
                        format!("plain_items[{i}]"),
                        format!("{item} is not among the granted items"),
                    );
                }
                v.check(
                    expires_at.is_none_or(|at| at > Utc::now()),
                    "expires_at",
                    "an expiry lies in the future",
                );
                v.check(
                    quota_per_second.is_none_or(|q| q > 0.0),
                    "quota_per_second",
                    "a quota is positive",
                );
                v.check(
                    quota_per_day.is_none_or(|q| q > 0),
                    "quota_per_day",
                    "a quota is positive",
                );
                v.check(
                    row_filter.as_deref().is_none_or(|f| !f.trim().is_empty()),
                    "row_filter",
                    "empty filter",
                );
                v.finish()?;
                let resource = resource.expect("validated");
                if arbitration {
                    revoke_demand_grant(&mut tx, row.demand.grant_id).await?;
                }
                let grant: Grant = insert_grant(
                    &mut tx,
                    &NewGrant {
                        resource_id: resource.id,
                        consumer_department_id: row.consumer_id,
                        items,
                        plain_items: plain_items.clone(),
                        expires_at: *expires_at,
                        demand_id: Some(id),
                        row_filter: row_filter.clone(),
                        quota_per_second: *quota_per_second,
                        quota_per_day: *quota_per_day,
                    },
                )
                .await?;
                let sql = if arbitration {
                    "UPDATE demands SET status = 'approved', arbitration = $2, arbitrated_at = $3, grant_id = $4, resource_id = $5 WHERE id = $1"
                } else {
                    "UPDATE demands SET status = 'approved', decision = $2, decided_at = $3, grant_id = $4, resource_id = $5 WHERE id = $1"
                };
                sqlx::query(sql)
                    .bind(id)
                    .bind(serde_json::to_string(decision).unwrap_or_default())
                    .bind(&now)
                    .bind(grant.id)
                    .bind(resource.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.demand(id).await
    }
}

async fn revoke_demand_grant(tx: &mut sqlx::Transaction<'_, sqlx::Any>, grant_id: Option<i64>) -> Result<()> {
    if let Some(grant_id) = grant_id {
        sqlx::query("UPDATE grants SET status = 'revoked' WHERE id = $1")
            .bind(grant_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn deadlines_skip_weekends() {
        // Friday 2026-11-20 + 1 working day = Monday 2026-11-23; + 10 = Friday 2026-12-04.
        let friday = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
        assert_eq!(
            add_working_days(friday, 1).date_naive(),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        );
        assert_eq!(
            add_working_days(friday, 10).date_naive(),
            NaiveDate::from_ymd_opt(2026, 12, 4).unwrap()
        );
        assert_eq!(add_working_days(friday, 0), friday);
    }
}
