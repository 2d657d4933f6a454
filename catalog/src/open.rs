//! The open-data catalog (开放数据目录): the resources the public may find and download.
//!
//! A dataset (开放数据集) is a published resource whose open type is unconditional (无条件开放)
//! or conditional (有条件开放); its id is the resource code. Of its data items, L1 items are
//! served plain, L2 items masked, and L3/L4 items are withheld from everybody: they are not
//! listed, not searched, not served. A resource that is not open is, to the open catalog,
//! indistinguishable from one that does not exist.

use exchange_core::{OpenType, Sensitivity};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use crate::resources::{COLUMNS, from_row, item_from_row};
use crate::{Catalog, DataItem, Error, Resource, Result};

/// The open types that make a published resource a dataset.
pub const OPEN_TYPES: [OpenType; 2] = [OpenType::Unconditional, OpenType::Conditional];

/// How an open data item is served to the public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Served {
    /// As stored (L1).
    Plain,
    /// Masked (脱敏) by its sensitivity rule (L2).
    Masked,
}

/// How an item of this sensitivity is served anonymously: L1 plain, L2 masked, L3/L4 never
/// (`None`: withheld).
pub fn served(sensitivity: Sensitivity) -> Option<Served> {
    match sensitivity {
        Sensitivity::L1 => Some(Served::Plain),
        Sensitivity::L2 => Some(Served::Masked),
        Sensitivity::L3 | Sensitivity::L4 => None,
    }
}

/// The items of a dataset the public may see, each with how it is served, in catalog order.
pub fn open_items(resource: &Resource) -> impl Iterator<Item = (&DataItem, Served)> {
    resource
        .meta
        .items
        .iter()
        .filter_map(|item| served(item.sensitivity).map(|s| (item, s)))
}

/// Whether `resource` is a dataset of the open catalog.
pub fn is_open(resource: &Resource) -> bool {
    resource.status == crate::ResourceStatus::Published && OPEN_TYPES.contains(&resource.meta.open_type)
}

/// The relevance of `resource` to the search words (lower-cased), 0 when a word matches
/// nowhere. The weights are the catalog search's: name (exact 100, prefix 80, anywhere 60),
/// code (prefix 50, anywhere 40), summary 30, an open item's label or name 20, the provider's
/// name 10; a word counts where it matches best and every word must match. Withheld items are
/// not searched: a search must not reveal what is not listed.
pub fn relevance(resource: &Resource, words: &[String]) -> i64 {
    let name = resource.meta.name.to_lowercase();
    let code = resource.code.to_lowercase();
    let summary = resource.meta.summary.to_lowercase();
    let provider = resource.provider_name.to_lowercase();
    let mut total = 0;
    for word in words {
        let score = if name == *word {
            100
        } else if name.starts_with(word.as_str()) {
            80
        } else if name.contains(word.as_str()) {
            60
        } else if code.starts_with(word.as_str()) {
            50
        } else if code.contains(word.as_str()) {
            40
        } else if summary.contains(word.as_str()) {
            30
        } else if open_items(resource)
            .any(|(item, _)| item.label_zh.to_lowercase().contains(word.as_str()) || item.name.contains(word.as_str()))
        {
            20
        } else if provider.contains(word.as_str()) {
            10
        } else {
            return 0;
        };
        total += score;
    }
    total
}

/// The words of a search text: split on white space, lower-cased.
pub fn search_words(q: &str) -> Vec<String> {
    q.split_whitespace().map(str::to_lowercase).collect()
}

impl Catalog {
    /// Every dataset of the open catalog, with its data items (all of them: the caller decides
    /// what to show with [`open_items`]), by code.
    pub async fn open_datasets(&self) -> Result<Vec<Resource>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM resources r JOIN departments d ON d.id = r.provider_id \
             WHERE r.status = 'published' AND r.open_type IN ($1, $2) ORDER BY r.code"
        )))
        .bind(OPEN_TYPES[0].code())
        .bind(OPEN_TYPES[1].code())
        .fetch_all(&self.pool)
        .await?;
        let item_rows = sqlx::query(
            "SELECT i.resource_id, i.name, i.label_zh, i.data_type, i.length, i.sensitivity, i.is_key, \
             i.authoritative FROM data_items i JOIN resources r ON r.id = i.resource_id \
             WHERE r.status = 'published' AND r.open_type IN ($1, $2) ORDER BY i.resource_id, i.position",
        )
        .bind(OPEN_TYPES[0].code())
        .bind(OPEN_TYPES[1].code())
        .fetch_all(&self.pool)
        .await?;
        let mut items: std::collections::HashMap<i64, Vec<DataItem>> = std::collections::HashMap::new();
        for row in &item_rows {
            items
                .entry(row.try_get("resource_id")?)
                .or_default()
                .push(item_from_row(row)?);
        }
        rows.iter()
            .map(|row| {
                let mut resource = from_row(row)?;
                resource.meta.items = items.remove(&resource.id).unwrap_or_default();
                Ok(resource)
            })
            .collect()
    }

    /// The dataset with this code; `NotFound` (entity `dataset`) when no resource has the code
    /// or the resource is not open — the two are not told apart.
    pub async fn open_dataset(&self, code: &str) -> Result<Resource> {
        let not_found = || Error::NotFound {
            entity: "dataset",
            key: code.to_string(),
        };
        match self.resource_by_code(code).await {
            Ok(resource) if is_open(&resource) => Ok(resource),
            Ok(_) | Err(Error::NotFound { .. }) => Err(not_found()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_l1_and_l2_items_are_served() {
        assert_eq!(served(Sensitivity::L1), Some(Served::Plain));
        assert_eq!(served(Sensitivity::L2), Some(Served::Masked));
        assert_eq!(served(Sensitivity::L3), None);
        assert_eq!(served(Sensitivity::L4), None);
    }

    #[test]
    fn search_words_are_lower_cased() {
        assert_eq!(
            search_words("  Foo  法人 "),
            vec!["foo".to_string(), "法人".to_string()]
        );
    }
}
