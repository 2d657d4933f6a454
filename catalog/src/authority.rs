//! One authoritative source per field (一数一源): which department's values win for each field
//! of a library, read from the catalog. A resource bound to a library names, item by item,
//! whether its provider is the authoritative source of that field; the first resource (by code)
//! claiming a field owns it. Retired resources claim nothing.

use serde::Serialize;

use crate::{Catalog, Resource, ResourceStatus, Result};

/// The authoritative department of one library field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldAuthority {
    /// The library field (data item name).
    pub field: String,
    /// The department's code.
    pub department_code: String,
    /// The department's id.
    pub department_id: i64,
    /// The resource whose item makes the claim.
    pub resource_code: String,
}

impl Catalog {
    /// The authoritative department of each field of `library` that has one, in field-name order.
    pub async fn field_authorities(&self, library: &str) -> Result<Vec<FieldAuthority>> {
        Ok(field_authorities_in(&self.resources().await?, library))
    }

    /// The authoritative department of one field, if the catalog names one.
    pub async fn field_authority(&self, library: &str, field: &str) -> Result<Option<FieldAuthority>> {
        Ok(self
            .field_authorities(library)
            .await?
            .into_iter()
            .find(|c| c.field == field))
    }
}

/// [`Catalog::field_authorities`] over resources already read (by code, as
/// [`Catalog::resources`] returns them), for callers that need several libraries' at once.
pub fn field_authorities_in(resources: &[Resource], library: &str) -> Vec<FieldAuthority> {
    let mut claims: Vec<FieldAuthority> = Vec::new();
    for resource in resources {
        if resource.meta.library.as_deref() != Some(library) || resource.status == ResourceStatus::Retired {
            continue;
        }
        for item in resource.meta.items.iter().filter(|i| i.authoritative) {
            if claims.iter().all(|c| c.field != item.name) {
                claims.push(FieldAuthority {
                    field: item.name.clone(),
                    department_code: resource.meta.provider_code.clone(),
                    department_id: resource.provider_id,
                    resource_code: resource.code.clone(),
                });
            }
        }
    }
    claims.sort_by(|a, b| a.field.cmp(&b.field));
    claims
}
