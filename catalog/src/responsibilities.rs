//! Responsibility lists (共享责任清单, 开放责任清单): which department must share or open which
//! data by when. Status is derived from the catalog, never kept by hand: a share duty is met
//! when its resource is published and shared (and no demand on it is overdue), an open duty
//! when its resource is published and opened.

use chrono::NaiveDate;
use exchange_core::{OpenType, ShareType};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::error::Validator;
use crate::resources::ResourceStatus;
use crate::{Catalog, Error, Result, now_text};

/// Share or open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponsibilityKind {
    /// 共享责任.
    Share,
    /// 开放责任.
    Open,
}

impl ResponsibilityKind {
    fn code(self) -> &'static str {
        match self {
            ResponsibilityKind::Share => "share",
            ResponsibilityKind::Open => "open",
        }
    }
}

/// One duty with its derived status.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Responsibility {
    /// Row id.
    pub id: i64,
    /// Share or open.
    pub kind: ResponsibilityKind,
    /// The department responsible.
    pub department: String,
    /// The resource that fulfils it, once registered.
    pub resource_code: Option<String>,
    /// What must be shared or opened.
    pub subject: String,
    /// By when.
    pub due_date: String,
    /// `fulfilled`, `pending` or `overdue`.
    pub status: &'static str,
    /// Why it has that status.
    pub detail: String,
}

/// A new duty.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResponsibility {
    /// Share or open.
    pub kind: ResponsibilityKind,
    /// The responsible department's code.
    pub department_code: String,
    /// The resource, when it is catalogued already.
    #[serde(default)]
    pub resource_code: Option<String>,
    /// What must be shared or opened.
    pub subject: String,
    /// By when.
    pub due_date: NaiveDate,
}

impl Catalog {
    /// Adds a duty to a list.
    pub async fn create_responsibility(&self, new: &NewResponsibility) -> Result<Responsibility> {
        let mut v = Validator::default();
        v.check(
            !new.subject.trim().is_empty(),
            "subject",
            "say what must be shared or opened",
        );
        let department = match self.department_by_code(&new.department_code).await {
            Ok(d) => Some(d),
            Err(Error::NotFound { .. }) => {
                v.error(
                    "department_code",
                    format!("no department has the code {}", new.department_code),
                );
                None
            }
            Err(e) => return Err(e),
        };
        let mut resource_id = None;
        if let Some(code) = &new.resource_code {
            match self.resource_by_code(code).await {
                Ok(r) if department.as_ref().is_none_or(|d| d.id == r.provider_id) => resource_id = Some(r.id),
                Ok(_) => v.error(
                    "resource_code",
                    format!("{code} is not provided by {}", new.department_code),
                ),
                Err(Error::NotFound { .. }) => v.error("resource_code", format!("no resource has the code {code}")),
                Err(e) => return Err(e),
            }
        }
        v.finish()?;
        let row = sqlx::query(
            "INSERT INTO responsibilities (kind, department_id, resource_id, subject, due_date, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(new.kind.code())
        .bind(department.expect("validated").id)
        .bind(resource_id)
        .bind(&new.subject)
        .bind(new.due_date.to_string())
        .bind(now_text())
        .fetch_one(&self.pool)
        .await?;
        let id: i64 = row.try_get("id")?;
        self.responsibilities(None)
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::NotFound {
                entity: "responsibility",
                key: id.to_string(),
            })
    }

    /// The duties of one kind (or both), by department and due date, with derived status.
    pub async fn responsibilities(&self, kind: Option<ResponsibilityKind>) -> Result<Vec<Responsibility>> {
        let rows = sqlx::query(
            "SELECT t.id, t.kind, d.code AS department, r.code AS resource_code, t.subject, t.due_date \
             FROM responsibilities t JOIN departments d ON d.id = t.department_id \
             LEFT JOIN resources r ON r.id = t.resource_id \
             WHERE $1 IS NULL OR t.kind = $1 ORDER BY d.code, t.due_date, t.id",
        )
        .bind(kind.map(|k| k.code()))
        .fetch_all(&self.pool)
        .await?;
        let today = chrono::Utc::now().date_naive().to_string();
        let overdue_demands = self.demands(crate::DemandView::Overdue(None)).await?;
        // One read of the catalog for every duty, not one per duty.
        let resources: std::collections::HashMap<String, crate::Resource> = self
            .resources()
            .await?
            .into_iter()
            .map(|r| (r.code.clone(), r))
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let kind_text: String = row.try_get("kind")?;
            let kind = if kind_text == "open" {
                ResponsibilityKind::Open
            } else {
                ResponsibilityKind::Share
            };
            let resource_code: Option<String> = row.try_get("resource_code")?;
            let due_date: String = row.try_get("due_date")?;
            let (met, detail) = match &resource_code {
                None => (false, "no resource registered for it yet".to_string()),
                Some(code) => {
                    let r = resources.get(code).ok_or_else(|| Error::NotFound {
                        entity: "resource",
                        key: code.clone(),
                    })?;
                    if r.status != ResourceStatus::Published {
                        (false, format!("{code} is {}", r.status.code()))
                    } else {
                        match kind {
                            ResponsibilityKind::Share if r.meta.share_type == ShareType::NotShared => {
                                (false, format!("{code} is 不予共享"))
                            }
                            ResponsibilityKind::Share => {
                                let late = overdue_demands
                                    .iter()
                                    .filter(|d| d.resource_code.as_deref() == Some(code))
                                    .count();
                                if late > 0 {
                                    (false, format!("{late} demand(s) on {code} are overdue"))
                                } else {
                                    (true, format!("{code} is published, {}", r.meta.share_type.label_zh()))
                                }
                            }
                            ResponsibilityKind::Open if r.meta.open_type == OpenType::NotOpen => {
                                (false, format!("{code} is 不予开放"))
                            }
                            ResponsibilityKind::Open => {
                                (true, format!("{code} is published, {}", r.meta.open_type.label_zh()))
                            }
                        }
                    }
                }
            };
            let status = if met {
                "fulfilled"
            } else if due_date < today {
                "overdue"
            } else {
                "pending"
            };
            out.push(Responsibility {
                id: row.try_get("id")?,
                kind,
                department: row.try_get("department")?,
                resource_code,
                subject: row.try_get("subject")?,
                due_date,
                status,
                detail,
            });
        }
        Ok(out)
    }
}
