//! Departments (部门): providers and consumers of data.

use serde::Serialize;
use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Catalog, Error, Result, now_text};

/// A department of the city or province, identified by its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Department {
    /// Row id.
    pub id: i64,
    /// The department code (部门代码), unique.
    pub code: String,
    /// The name, e.g. 市公安局.
    pub name: String,
    /// The parent department in the hierarchy, if any.
    pub parent_id: Option<i64>,
}

const COLUMNS: &str = "id, code, name, parent_id";

fn from_row(row: &AnyRow) -> Result<Department> {
    Ok(Department {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        parent_id: row.try_get("parent_id")?,
    })
}

impl Catalog {
    /// Creates the department, or renames it when the code exists; returns it.
    pub async fn upsert_department(
        &self,
        code: &str,
        name: &str,
        parent_id: Option<i64>,
    ) -> Result<Department> {
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
