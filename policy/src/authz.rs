//! The authorization decision for one exchange call, from the catalog alone.
//!
//! | caller | share type | grant | outcome |
//! |---|---|---|---|
//! | the providing department | any | — | all items, plain |
//! | consumer | unconditional | — | all items; L1/L2 plain, L3/L4 masked |
//! | consumer | conditional | active | granted items; plain where granted plain or L1/L2 |
//! | consumer | conditional | expired | denied: `grant_expired` |
//! | consumer | conditional | none or revoked | denied: `no_grant` |
//! | consumer | not shared | — | denied: `not_shared` |
//! | platform admin, reviewer, open-data developer | any | — | denied: `role_forbidden` |

use catalog::{Grant, Resource};
use exchange_core::ShareType;
use serde::Serialize;

use crate::{Credential, Role};

/// How one data item is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemAccess {
    /// The item name.
    pub name: String,
    /// Unmasked when true.
    pub plain: bool,
}

/// What an allowed call may return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// The grant that allowed it, if one was needed.
    pub grant_id: Option<i64>,
    /// The demand (供需对接) that grant answers.
    pub demand_id: Option<i64>,
    /// The items returned, in resource order.
    pub items: Vec<ItemAccess>,
    /// The grant's row filter (a DataFusion SQL expression over the items): only rows for
    /// which it holds may be returned.
    pub row_filter: Option<String>,
}

/// Why a call is refused. Each has a stable code for problem+json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Denial {
    /// The resource is 不予共享.
    NotShared,
    /// Conditional sharing and the caller's department holds no active grant.
    NoGrant,
    /// Conditional sharing and the caller's department's grant has expired.
    GrantExpired,
    /// The call names a data item the caller may not read.
    ItemNotGranted,
    /// The caller's role does not consume exchange data.
    RoleForbidden,
    /// The caller acts for no department.
    NoDepartment,
}

impl Denial {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Denial::NotShared => "not_shared",
            Denial::NoGrant => "no_grant",
            Denial::GrantExpired => "grant_expired",
            Denial::ItemNotGranted => "item_not_granted",
            Denial::RoleForbidden => "role_forbidden",
            Denial::NoDepartment => "no_department",
        }
    }

    /// A sentence for the caller.
    pub fn message(self) -> &'static str {
        match self {
            Denial::NotShared => "this resource is not shared (不予共享)",
            Denial::NoGrant => {
                "this resource is shared on conditions (有条件共享) and your department holds no active grant; raise a demand (供需对接) first"
            }
            Denial::GrantExpired => {
                "your department's grant on this resource has expired; raise a new demand (供需对接) to renew it"
            }
            Denial::ItemNotGranted => "a data item named in this call is not among the items you may read",
            Denial::RoleForbidden => "this credential's role does not call the exchange API",
            Denial::NoDepartment => "this credential acts for no department",
        }
    }
}

/// Allowed with what, or refused with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow(Access),
    /// Refused.
    Deny(Denial),
}

/// Decides one call by `caller` on `resource`, given the caller department's grant on it (see
/// [`catalog::Catalog::grant_for`]: an expired one makes the denial say so).
pub fn decide(resource: &Resource, caller: &Credential, grant: Option<&Grant>) -> Decision {
    if matches!(
        caller.role,
        Role::PlatformAdmin | Role::Reviewer | Role::OpenDataDeveloper
    ) {
        return Decision::Deny(Denial::RoleForbidden);
    }
    let Some(department) = caller.department_id else {
        return Decision::Deny(Denial::NoDepartment);
    };
    let all_items = |plain: &dyn Fn(&catalog::DataItem) -> bool| {
        resource
            .meta
            .items
            .iter()
            .map(|item| ItemAccess {
                name: item.name.clone(),
                plain: plain(item),
            })
            .collect()
    };
    match caller.role {
        Role::ProviderAdmin | Role::Consumer if department == resource.provider_id => Decision::Allow(Access {
            grant_id: None,
            demand_id: None,
            items: all_items(&|_| true),
            row_filter: None,
        }),
        Role::Consumer => match resource.meta.share_type {
            ShareType::NotShared => Decision::Deny(Denial::NotShared),
            ShareType::Unconditional => Decision::Allow(Access {
                grant_id: None,
                demand_id: None,
                items: all_items(&|item| !item.sensitivity.masked_by_default()),
                row_filter: None,
            }),
            ShareType::Conditional => match grant.map(|g| (g, g.state())) {
                Some((_, "expired")) => Decision::Deny(Denial::GrantExpired),
                Some((grant, "active")) => Decision::Allow(Access {
                    grant_id: Some(grant.id),
                    demand_id: grant.demand_id,
                    items: resource
                        .meta
                        .items
                        .iter()
                        .filter(|item| grant.items.contains(&item.name))
                        .map(|item| ItemAccess {
                            name: item.name.clone(),
                            plain: grant.plain_items.contains(&item.name) || !item.sensitivity.masked_by_default(),
                        })
                        .collect(),
                    row_filter: grant.row_filter.clone(),
                }),
                Some(_) | None => Decision::Deny(Denial::NoGrant),
            },
        },
        _ => Decision::Deny(Denial::RoleForbidden),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::DataItem;
    use exchange_core::{OpenType, Sensitivity, ShareMethod, UpdateCycle};

    const PROVIDER: i64 = 1;
    const CONSUMER: i64 = 2;

    fn resource(share_type: ShareType) -> Resource {
        let item = |name: &str, sensitivity| DataItem {
            name: name.into(),
            label_zh: name.into(),
            data_type: "string".into(),
            length: None,
            sensitivity,
            is_key: name == "id_number",
            authoritative: true,
        };
        Resource {
            id: 10,
            code: "R".into(),
            provider_id: PROVIDER,
            provider_name: "市公安局".into(),
            status: catalog::ResourceStatus::Published,
            version: 1,
            review_comment: None,
            created_at: String::new(),
            updated_at: String::new(),
            meta: catalog::ResourceInput {
                code: None,
                name: "人口".into(),
                provider_code: "GA".into(),
                classification: catalog::Classification::Base,
                class_code: "1-01-001".into(),
                library: Some("population".into()),
                summary: String::new(),
                format: "database".into(),
                share_type,
                share_conditions: None,
                legal_basis: None,
                share_method: ShareMethod::Api,
                open_type: OpenType::NotOpen,
                update_cycle: UpdateCycle::Daily,
                publish_date: None,
                related_codes: vec![],
                connector: None,
                items: vec![
                    item("id_number", Sensitivity::L3),
                    item("gender", Sensitivity::L2),
                    item("phone", Sensitivity::L4),
                ],
            },
        }
    }

    fn caller(role: Role, department: Option<i64>) -> Credential {
        Credential {
            id: 1,
            name: "k".into(),
            role,
            department_id: department,
            department_code: None,
            key_prefix: "ht_".into(),
        }
    }

    fn grant() -> Grant {
        Grant {
            id: 7,
            resource_id: 10,
            consumer_department_id: CONSUMER,
            items: vec!["id_number".into(), "gender".into()],
            plain_items: vec!["id_number".into()],
            expires_at: None,
            status: "active".into(),
            demand_id: None,
            row_filter: None,
            quota_per_second: None,
            quota_per_day: None,
        }
    }

    /// The outcome as a compact string: `deny:<code>` or `allow:<item>=<plain|masked>,…`.
    fn outcome(d: Decision) -> String {
        match d {
            Decision::Deny(denial) => format!("deny:{}", denial.code()),
            Decision::Allow(access) => format!(
                "allow:{}",
                access
                    .items
                    .iter()
                    .map(|i| format!("{}={}", i.name, if i.plain { "plain" } else { "masked" }))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    /// caller role, caller department, share type, grant, expected outcome.
    type Case<'a> = (Role, Option<i64>, ShareType, Option<&'a Grant>, &'a str);

    #[test]
    fn policy_matrix() {
        use Role::*;
        use ShareType::*;
        let g = grant();
        let expired = Grant {
            expires_at: Some("2020-01-01T00:00:00.000000Z".into()),
            ..grant()
        };
        let revoked = Grant {
            status: "revoked".into(),
            ..grant()
        };
        let cases: &[Case<'_>] = &[
            (
                Consumer,
                Some(CONSUMER),
                Unconditional,
                None,
                "allow:id_number=masked,gender=plain,phone=masked",
            ),
            (
                Consumer,
                Some(CONSUMER),
                Conditional,
                Some(&g),
                "allow:id_number=plain,gender=plain",
            ),
            (Consumer, Some(CONSUMER), Conditional, None, "deny:no_grant"),
            (
                Consumer,
                Some(CONSUMER),
                Conditional,
                Some(&expired),
                "deny:grant_expired",
            ),
            (Consumer, Some(CONSUMER), Conditional, Some(&revoked), "deny:no_grant"),
            (
                Consumer,
                Some(CONSUMER),
                Unconditional,
                Some(&expired),
                "allow:id_number=masked,gender=plain,phone=masked",
            ),
            (Consumer, Some(CONSUMER), NotShared, None, "deny:not_shared"),
            (Consumer, Some(CONSUMER), NotShared, Some(&g), "deny:not_shared"),
            (
                Consumer,
                Some(PROVIDER),
                NotShared,
                None,
                "allow:id_number=plain,gender=plain,phone=plain",
            ),
            (
                ProviderAdmin,
                Some(PROVIDER),
                Conditional,
                None,
                "allow:id_number=plain,gender=plain,phone=plain",
            ),
            (
                ProviderAdmin,
                Some(CONSUMER),
                Unconditional,
                None,
                "deny:role_forbidden",
            ),
            (
                PlatformAdmin,
                Some(CONSUMER),
                Unconditional,
                None,
                "deny:role_forbidden",
            ),
            (OpenDataDeveloper, None, Unconditional, None, "deny:role_forbidden"),
            (Consumer, None, Unconditional, None, "deny:no_department"),
        ];
        for (role, department, share_type, grant, want) in cases {
            let got = outcome(decide(&resource(*share_type), &caller(*role, *department), *grant));
            assert_eq!(
                &got,
                want,
                "{role:?} dept={department:?} {share_type:?} grant={}",
                grant.is_some()
            );
        }
    }
}
