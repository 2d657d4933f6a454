//! The decision for one open-data call (数据开放), from the catalog alone: which datasets a
//! caller may read, and which items, plain or masked.
//!
//! | dataset (open type) | caller | outcome |
//! |---|---|---|
//! | not open, or not published | anyone | denied: `dataset_not_found` (indistinguishable from a missing one) |
//! | unconditional (无条件开放) | anyone, anonymous included | L1 plain, L2 masked, L3/L4 withheld |
//! | conditional (有条件开放) | anonymous | denied: `developer_key_required` |
//! | conditional | a developer without an application in force | denied: `application_required` |
//! | conditional | a developer with an approved, unexpired application | L1 and L2 plain, L3/L4 withheld |
//!
//! Personal information (L3 sensitive, L4 highly sensitive) is never opened: open data serves
//! the public, and an approved application widens what is plain, never what is served.

use catalog::{OpenApplication, Resource};
use exchange_core::OpenType;

use crate::authz::{Access, ItemAccess};

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub enum OpenCaller<'a> {
    /// No credential: the public.
    Anonymous,
    /// A credential, with its application in force on this dataset, if any.
    Developer(Option<&'a OpenApplication>),
}

/// Why an open call is refused. Each has a stable code for problem+json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenDenial {
    /// Not an open dataset (or no such resource).
    NotOpen,
    /// A conditionally open dataset called without a developer key.
    DeveloperKeyRequired,
    /// A conditionally open dataset, and the developer holds no approved application.
    ApplicationRequired,
}

impl OpenDenial {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            OpenDenial::NotOpen => "dataset_not_found",
            OpenDenial::DeveloperKeyRequired => "developer_key_required",
            OpenDenial::ApplicationRequired => "application_required",
        }
    }

    /// A sentence for the caller.
    pub fn message(self) -> &'static str {
        match self {
            OpenDenial::NotOpen => "no open dataset has this id",
            OpenDenial::DeveloperKeyRequired => {
                "this dataset is opened on conditions (有条件开放): sign up as a developer, apply for it, and call with your developer key"
            }
            OpenDenial::ApplicationRequired => {
                "this dataset is opened on conditions (有条件开放) and you hold no approved application for it; apply first"
            }
        }
    }
}

pub use catalog::is_open;

/// Decides one open call by `caller` on `resource`.
pub fn decide_open(resource: &Resource, caller: OpenCaller<'_>) -> Result<Access, OpenDenial> {
    if !is_open(resource) {
        return Err(OpenDenial::NotOpen);
    }
    let application = match (resource.meta.open_type, caller) {
        (OpenType::Conditional, OpenCaller::Anonymous) => return Err(OpenDenial::DeveloperKeyRequired),
        (OpenType::Conditional, OpenCaller::Developer(None)) => return Err(OpenDenial::ApplicationRequired),
        (OpenType::Conditional, OpenCaller::Developer(Some(application))) => {
            if !application.in_force() || application.resource_id != resource.id {
                return Err(OpenDenial::ApplicationRequired);
            }
            Some(application)
        }
        _ => None,
    };
    let items = resource
        .meta
        .items
        .iter()
        .filter_map(|item| {
            let served = catalog::served(item.sensitivity)?;
            Some(ItemAccess {
                name: item.name.clone(),
                plain: served == catalog::Served::Plain || application.is_some(),
            })
        })
        .collect();
    Ok(Access {
        grant_id: None,
        demand_id: None,
        items,
        row_filter: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::ResourceStatus;
    use exchange_core::Sensitivity;

    fn resource(open_type: OpenType, status: ResourceStatus) -> Resource {
        let item = |name: &str, sensitivity| catalog::DataItem {
            name: name.into(),
            label_zh: name.into(),
            data_type: "string".into(),
            length: None,
            sensitivity,
            is_key: name == "uscc",
            authoritative: true,
        };
        Resource {
            id: 7,
            code: "1-02-001-000001".into(),
            provider_id: 1,
            provider_name: "市场监管局".into(),
            status,
            version: 1,
            review_comment: None,
            created_at: String::new(),
            updated_at: String::new(),
            meta: catalog::ResourceInput {
                code: None,
                name: "法人单位基础信息".into(),
                provider_code: "SCJGJ".into(),
                classification: catalog::Classification::Base,
                class_code: "1-02-001".into(),
                library: Some("legal_entity".into()),
                summary: String::new(),
                format: "database".into(),
                share_type: exchange_core::ShareType::Unconditional,
                share_conditions: None,
                legal_basis: None,
                share_method: exchange_core::ShareMethod::Api,
                open_type,
                update_cycle: exchange_core::UpdateCycle::Daily,
                publish_date: None,
                related_codes: vec![],
                connector: None,
                items: vec![
                    item("uscc", Sensitivity::L1),
                    item("phone", Sensitivity::L2),
                    item("legal_rep_id", Sensitivity::L3),
                    item("secret", Sensitivity::L4),
                ],
            },
        }
    }

    fn application(status: &str, resource_id: i64) -> OpenApplication {
        OpenApplication {
            id: 1,
            resource_id,
            dataset: "1-02-001-000001".into(),
            dataset_name: String::new(),
            credential_id: 3,
            applicant: None,
            purpose: "研究".into(),
            status: status.into(),
            created_at: String::new(),
            decided_at: None,
            decided_by: None,
            reason: None,
            expires_at: None,
        }
    }

    /// `plain` and `masked` item names, or the denial code.
    type Outcome = Result<(Vec<String>, Vec<String>), &'static str>;

    fn outcome(result: Result<Access, OpenDenial>) -> Outcome {
        let access = result.map_err(OpenDenial::code)?;
        let (plain, masked): (Vec<_>, Vec<_>) = access.items.into_iter().partition(|i| i.plain);
        Ok((
            plain.into_iter().map(|i| i.name).collect(),
            masked.into_iter().map(|i| i.name).collect(),
        ))
    }

    #[test]
    fn the_open_policy_matrix() {
        use OpenType::{Conditional, NotOpen, Unconditional};
        use ResourceStatus::{Draft, Published};
        let approved = application("approved", 7);
        let pending = application("pending", 7);
        let expired = application("expired", 7);
        let elsewhere = application("approved", 8);
        let public = Ok((vec!["uscc".to_string()], vec!["phone".to_string()]));
        let applicant = Ok((vec!["uscc".to_string(), "phone".to_string()], vec![]));
        let cases: Vec<(OpenType, ResourceStatus, OpenCaller<'_>, Outcome)> = vec![
            (NotOpen, Published, OpenCaller::Anonymous, Err("dataset_not_found")),
            (
                NotOpen,
                Published,
                OpenCaller::Developer(Some(&approved)),
                Err("dataset_not_found"),
            ),
            (Unconditional, Draft, OpenCaller::Anonymous, Err("dataset_not_found")),
            (Unconditional, Published, OpenCaller::Anonymous, public.clone()),
            (Unconditional, Published, OpenCaller::Developer(None), public.clone()),
            (
                Unconditional,
                Published,
                OpenCaller::Developer(Some(&pending)),
                public.clone(),
            ),
            (
                Conditional,
                Published,
                OpenCaller::Anonymous,
                Err("developer_key_required"),
            ),
            (
                Conditional,
                Published,
                OpenCaller::Developer(None),
                Err("application_required"),
            ),
            (
                Conditional,
                Published,
                OpenCaller::Developer(Some(&pending)),
                Err("application_required"),
            ),
            (
                Conditional,
                Published,
                OpenCaller::Developer(Some(&expired)),
                Err("application_required"),
            ),
            (
                Conditional,
                Published,
                OpenCaller::Developer(Some(&elsewhere)),
                Err("application_required"),
            ),
            (
                Conditional,
                Published,
                OpenCaller::Developer(Some(&approved)),
                applicant,
            ),
            (
                Conditional,
                Draft,
                OpenCaller::Developer(Some(&approved)),
                Err("dataset_not_found"),
            ),
        ];
        for (open, status, caller, expected) in cases {
            let got = outcome(decide_open(&resource(open, status), caller));
            assert_eq!(got, expected, "{open:?} {status:?} {caller:?}");
        }
    }
}
