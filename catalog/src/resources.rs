//! Resources (信息资源) and their data items (信息项), per GB/T 21063.

use exchange_core::{OpenType, Sensitivity, ShareMethod, ShareType, UpdateCycle};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::conflict_on_unique;
use crate::{Catalog, Error, Result, now_text};

/// A data item (信息项): one column of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataItem {
    /// Column name (English, snake_case), as in the library schema.
    pub name: String,
    /// The Chinese label (信息项名称).
    pub label_zh: String,
    /// Data type as catalogued (字符型, 日期型, … or string, date, …).
    pub data_type: String,
    /// Maximum length, where it applies.
    pub length: Option<i64>,
    /// Sensitivity grade L1-L4.
    pub sensitivity: Sensitivity,
    /// Whether this item is the resource's key.
    pub is_key: bool,
}

/// A catalogued resource with its data items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    /// Row id.
    pub id: i64,
    /// The resource code (资源代码), unique.
    pub code: String,
    /// The name (资源名称).
    pub name: String,
    /// The providing department's id.
    pub provider_id: i64,
    /// The providing department's code.
    pub provider_code: String,
    /// The library that holds its data, if it is served from one.
    pub library: Option<String>,
    /// The abstract (摘要).
    pub summary: String,
    /// 共享类型.
    pub share_type: ShareType,
    /// 共享条件, for conditional sharing.
    pub share_conditions: Option<String>,
    /// The legal or policy basis for conditional or no sharing.
    pub legal_basis: Option<String>,
    /// 共享方式.
    pub share_method: ShareMethod,
    /// 开放类型.
    pub open_type: OpenType,
    /// 更新周期.
    pub update_cycle: UpdateCycle,
    /// Lifecycle status.
    pub status: String,
    /// The data items, in order.
    pub items: Vec<DataItem>,
}

/// What it takes to register a resource.
#[derive(Debug, Clone, Deserialize)]
pub struct NewResource {
    /// The resource code.
    pub code: String,
    /// The name.
    pub name: String,
    /// The providing department's code.
    pub provider_code: String,
    /// The library that holds its data.
    pub library: Option<String>,
    /// The abstract.
    pub summary: String,
    /// 共享类型.
    pub share_type: ShareType,
    /// 共享条件.
    pub share_conditions: Option<String>,
    /// Legal basis; required unless the share type is unconditional.
    pub legal_basis: Option<String>,
    /// 共享方式.
    pub share_method: ShareMethod,
    /// 开放类型.
    pub open_type: OpenType,
    /// 更新周期.
    pub update_cycle: UpdateCycle,
    /// The data items; exactly one is the key.
    pub items: Vec<DataItem>,
}

impl Resource {
    /// The data item with this name.
    pub fn item(&self, name: &str) -> Option<&DataItem> {
        self.items.iter().find(|i| i.name == name)
    }
}

fn parse<T: std::str::FromStr<Err = exchange_core::Error>>(
    row: &AnyRow,
    column: &str,
) -> Result<T> {
    let text: String = row.try_get(column)?;
    Ok(text.parse()?)
}

const COLUMNS: &str = "r.id, r.code, r.name, r.provider_id, d.code AS provider_code, r.library, \
    r.summary, r.share_type, r.share_conditions, r.legal_basis, r.share_method, r.open_type, \
    r.update_cycle, r.status";

fn from_row(row: &AnyRow) -> Result<Resource> {
    Ok(Resource {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        name: row.try_get("name")?,
        provider_id: row.try_get("provider_id")?,
        provider_code: row.try_get("provider_code")?,
        library: row.try_get("library")?,
        summary: row.try_get("summary")?,
        share_type: parse(row, "share_type")?,
        share_conditions: row.try_get("share_conditions")?,
        legal_basis: row.try_get("legal_basis")?,
        share_method: parse(row, "share_method")?,
        open_type: parse(row, "open_type")?,
        update_cycle: parse(row, "update_cycle")?,
        status: row.try_get("status")?,
        items: Vec::new(),
    })
}

impl NewResource {
    fn validate(&self) -> Result<()> {
        let invalid = |field: &str, message: &str| {
            Err(Error::Invalid {
                field: field.to_string(),
                message: message.to_string(),
            })
        };
        if self.code.trim().is_empty() || self.code.contains('/') {
            return invalid("code", "a resource code is non-empty and has no '/'");
        }
        if self.name.trim().is_empty() {
            return invalid("name", "a resource needs a name");
        }
        if self.share_type != ShareType::Unconditional
            && self
                .legal_basis
                .as_deref()
                .is_none_or(|b| b.trim().is_empty())
        {
            return invalid(
                "legal_basis",
                "conditional and not-shared resources must state their legal or policy basis",
            );
        }
        if self.items.iter().filter(|i| i.is_key).count() != 1 {
            return invalid("items", "exactly one data item must be the key");
        }
        Ok(())
    }
}

impl Catalog {
    /// Registers a resource with its data items, all or nothing.
    pub async fn create_resource(&self, new: &NewResource) -> Result<Resource> {
        new.validate()?;
        let provider = self.department_by_code(&new.provider_code).await?;
        let now = now_text();
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO resources (code, name, provider_id, library, summary, share_type, \
             share_conditions, legal_basis, share_method, open_type, update_cycle, status, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'published', $12, $12) \
             RETURNING id",
        )
        .bind(&new.code)
        .bind(&new.name)
        .bind(provider.id)
        .bind(new.library.as_deref())
        .bind(&new.summary)
        .bind(new.share_type.code())
        .bind(new.share_conditions.as_deref())
        .bind(new.legal_basis.as_deref())
        .bind(new.share_method.code())
        .bind(new.open_type.code())
        .bind(new.update_cycle.code())
        .bind(&now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_on_unique("resource", &new.code))?
        .try_get("id")?;
        for (position, item) in new.items.iter().enumerate() {
            sqlx::query(
                "INSERT INTO data_items (resource_id, position, name, label_zh, data_type, \
                 length, sensitivity, is_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(&item.name)
            .bind(&item.label_zh)
            .bind(&item.data_type)
            .bind(item.length)
            .bind(item.sensitivity.code())
            .bind(i64::from(item.is_key))
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_unique("data item", &item.name))?;
        }
        tx.commit().await?;
        self.resource_by_code(&new.code).await
    }

    /// The resource with this code, with its data items.
    pub async fn resource_by_code(&self, code: &str) -> Result<Resource> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM resources r JOIN departments d ON d.id = r.provider_id \
             WHERE r.code = $1"
        )))
        .bind(code)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            entity: "resource",
            key: code.to_string(),
        })?;
        let mut resource = from_row(&row)?;
        resource.items = self.data_items(resource.id).await?;
        Ok(resource)
    }

    /// All resources by code, with their items.
    pub async fn resources(&self) -> Result<Vec<Resource>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM resources r JOIN departments d ON d.id = r.provider_id \
             ORDER BY r.code"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut resource = from_row(row)?;
            resource.items = self.data_items(resource.id).await?;
            out.push(resource);
        }
        Ok(out)
    }

    async fn data_items(&self, resource_id: i64) -> Result<Vec<DataItem>> {
        let rows = sqlx::query(
            "SELECT name, label_zh, data_type, length, sensitivity, is_key FROM data_items \
             WHERE resource_id = $1 ORDER BY position",
        )
        .bind(resource_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DataItem {
                    name: row.try_get("name")?,
                    label_zh: row.try_get("label_zh")?,
                    data_type: row.try_get("data_type")?,
                    length: row.try_get("length")?,
                    sensitivity: parse(row, "sensitivity")?,
                    is_key: row.try_get::<i64, _>("is_key")? != 0,
                })
            })
            .collect()
    }
}
