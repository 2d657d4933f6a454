//! Departments (部门): providers and consumers of data.

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Catalog, Error, Result, now_text};

/// A department of the city or province, identified by its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Department {
    /// Row id.
    pub id: i64,
    /// The department code (部门代码), unique.
    pub code: String,
    /// The name, e.g. 市公安局.
    pub name: String,
    /// The parent department in the hierarchy, if any.
    pub parent_id: Option<i64>,
    /// `province`, `city` or `district` (省级, 市级, 区县级).
    pub level: String,
}

/// The levels of the hierarchy, top down.
pub const LEVELS: &[&str] = &["province", "city", "district"];

/// A new department (or new name, parent or level for an existing code).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDepartment {
    /// The department code (部门代码).
    pub code: String,
    /// The name.
    pub name: String,
    /// The parent's code.
    #[serde(default)]
    pub parent_code: Option<String>,
    /// `province`, `city` or `district`.
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "city".into()
}

const COLUMNS: &str = "id, code, name, parent_id, level";

fn from_row(row: &AnyRow) -> Result<Department> {
    Ok(Department {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        parent_id: row.try_get("parent_id")?,
        level: row.try_get("level")?,
    })
}

impl Catalog {
    /// Registers a department (or updates the one with this code), checking the hierarchy:
    /// a parent exists and sits at a higher level.
    pub async fn save_department(&self, new: &NewDepartment) -> Result<Department> {
        let mut v = crate::error::Validator::default();
        v.check(
            !new.code.trim().is_empty() && new.code.len() <= 32,
            "code",
            "1 to 32 characters",
        );
        v.check(!new.name.trim().is_empty(), "name", "a department needs a name");
        let level = LEVELS.iter().position(|l| *l == new.level);
        v.check(level.is_some(), "level", format!("one of {}", LEVELS.join(", ")));
        let mut parent_id = None;
        if let Some(parent_code) = &new.parent_code {
            match self.department_by_code(parent_code).await {
                Ok(parent) => {
                    let parent_level = LEVELS.iter().position(|l| *l == parent.level);
                    v.check(
                        parent.code != new.code && parent_level <= level,
                        "parent_code",
                        format!(
                            "{} ({}) cannot be the parent of a {} department",
                            parent.code, parent.level, new.level
                        ),
                    );
                    parent_id = Some(parent.id);
                }
                Err(Error::NotFound { .. }) => {
                    v.error("parent_code", format!("no department has the code {parent_code}"))
                }
                Err(e) => return Err(e),
            }
        }
        v.finish()?;
        let department = self.upsert_department(&new.code, &new.name, parent_id).await?;
        sqlx::query("UPDATE departments SET level = $2 WHERE id = $1")
            .bind(department.id)
            .bind(&new.level)
            .execute(&self.pool)
            .await?;
        self.department(department.id).await
    }

    /// Creates the department, or renames it when the code exists; returns it.
    pub async fn upsert_department(&self, code: &str, name: &str, parent_id: Option<i64>) -> Result<Department> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO departments (code, name, parent_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, parent_id = excluded.parent_id \
             RETURNING {COLUMNS}"
        )))
        .bind(code)
        .bind(name)
        .bind(parent_id)
        .bind(now_text())
        .fetch_one(&self.pool)
        .await?;
        from_row(&row)
    }

    /// The department with this code.
    pub async fn department_by_code(&self, code: &str) -> Result<Department> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM departments WHERE code = $1"
        )))
        .bind(code)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            entity: "department",
            key: code.to_string(),
        })?;
        from_row(&row)
    }

    /// The department with this id.
    pub async fn department(&self, id: i64) -> Result<Department> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM departments WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            entity: "department",
            key: id.to_string(),
        })?;
        from_row(&row)
    }

    /// All departments by code.
    pub async fn departments(&self) -> Result<Vec<Department>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM departments ORDER BY code"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }
}
