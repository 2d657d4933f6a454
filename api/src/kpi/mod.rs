//! The assessment KPIs (考核指标) provinces score cities on, computed from the catalog and the
//! audit trail, per department and per month: 按需共享率 on-demand sharing rate, 开放率 opening
//! rate, 使用率 usage rate, 电子证照利用率 e-license utilisation, and calls per resource. The
//! definitions are in docs/console.md; [`compute`] is the one place that applies them, for the
//! JSON API ([`route`]) and the console's charts alike.
//!
//! Times are UTC. Figures that the catalog holds only as they are now (a resource's status, a
//! demand's answer, a library's records) are taken as they are now and placed in time by their
//! dates: a resource counts from its registration (created) or publication date, a demand in the
//! month it was raised.

pub mod route;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;

use catalog::{Demand, DemandStatus, Resource, ResourceStatus};
use chrono::{Datelike, Months, NaiveDate};
use exchange_core::{OpenType, ShareType};
use serde::Serialize;

use crate::startup::AppState;

/// The library whose resources are the e-license library (电子证照库).
pub const LICENSE_LIBRARY: &str = "license";

/// The most months a period may span (ten years).
pub const MAX_MONTHS: usize = 120;

/// Audit endpoints that count as exchange calls (共享调用): every `/api/v1/exchange/…` call
/// (an endpoint is the method, a space, and the route).
const EXCHANGE_ENDPOINTS: &str = " /api/v1/exchange/";

/// Audit endpoints whose subject is one record's key: a looked-up license.
const ONE_KEY_ENDPOINTS: [&str; 3] = [
    "GET /api/v1/exchange/{resource_code}/records/{key}",
    "GET /api/v1/exchange/{resource_code}/records/{key}/history",
    "POST /api/v1/exchange/{resource_code}/verify",
];

/// A period of whole UTC days, `from` and `to` included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

impl Period {
    /// The default period: the twelve months up to and including `today`'s month.
    pub fn default_until(today: NaiveDate) -> Self {
        let first_of_month = today.with_day(1).expect("day 1 exists");
        Self {
            from: first_of_month - Months::new(11),
            to: today,
        }
    }

    /// The months the period touches, oldest first.
    pub fn months(&self) -> Vec<Month> {
        let mut months = Vec::new();
        let mut first = self.from.with_day(1).expect("day 1 exists");
        while first <= self.to {
            months.push(Month { first });
            first = first + Months::new(1);
        }
        months
    }

    fn start(&self) -> String {
        day_start(self.from)
    }

    /// The first instant after the period.
    fn end(&self) -> String {
        day_start(self.to.succ_opt().unwrap_or(self.to))
    }
}

/// One calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    first: NaiveDate,
}

impl Month {
    /// `YYYY-MM`.
    pub fn label(&self) -> String {
        self.first.format("%Y-%m").to_string()
    }

    fn start(&self) -> String {
        day_start(self.first)
    }

    fn end(&self) -> String {
        day_start(self.first + Months::new(1))
    }
}

fn day_start(day: NaiveDate) -> String {
    format!("{}T00:00:00.000000Z", day.format("%Y-%m-%d"))
}

/// A rate: numerator over denominator; `rate` is absent when nothing is to be counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Ratio {
    /// What was achieved (e.g. demands satisfied).
    pub numerator: i64,
    /// What was due (e.g. demands raised).
    pub denominator: i64,
    /// `numerator / denominator`, 0–1; `null` when the denominator is 0.
    pub rate: Option<f64>,
}

impl Ratio {
    fn new(numerator: i64, denominator: i64) -> Self {
        Self {
            numerator,
            denominator,
            rate: (denominator > 0).then(|| numerator as f64 / denominator as f64),
        }
    }
}

/// A rate as the console shows it: a percentage with one decimal, or a dash.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_string(), |r| format!("{:.1}%", r * 100.0))
}

/// One month of a KPI's series.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MonthPoint {
    /// `YYYY-MM`.
    pub month: String,
    /// The month's figures.
    #[serde(flatten)]
    pub ratio: Ratio,
}

/// Which KPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KpiCode {
    /// 按需共享率.
    OnDemandSharing,
    /// 开放率.
    Opening,
    /// 使用率.
    Usage,
    /// 电子证照利用率.
    LicenseUtilisation,
}

/// Every KPI, in the order pages show them.
pub const KPIS: [KpiCode; 4] = [
    KpiCode::OnDemandSharing,
    KpiCode::Opening,
    KpiCode::Usage,
    KpiCode::LicenseUtilisation,
];

impl KpiCode {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            KpiCode::OnDemandSharing => "on_demand_sharing",
            KpiCode::Opening => "opening",
            KpiCode::Usage => "usage",
            KpiCode::LicenseUtilisation => "license_utilisation",
        }
    }

    /// The Chinese name.
    pub fn label_zh(self) -> &'static str {
        match self {
            KpiCode::OnDemandSharing => "按需共享率",
            KpiCode::Opening => "开放率",
            KpiCode::Usage => "使用率",
            KpiCode::LicenseUtilisation => "电子证照利用率",
        }
    }

    /// The English name.
    pub fn label_en(self) -> &'static str {
        match self {
            KpiCode::OnDemandSharing => "On-demand sharing rate",
            KpiCode::Opening => "Opening rate",
            KpiCode::Usage => "Usage rate",
            KpiCode::LicenseUtilisation => "E-license utilisation",
        }
    }

    /// What the numerator and denominator count, in Chinese.
    pub fn rule_zh(self) -> &'static str {
        match self {
            KpiCode::OnDemandSharing => "期内提出的需求中已满足（同意，含仲裁后同意）的 / 期内提出的需求（按答复部门）",
            KpiCode::Opening => {
                "已开放（已发布且所绑定的库至少有一条记录）的 / 开放类型为无条件或有条件开放的资源（未下线），截至期末"
            }
            KpiCode::Usage => "期内至少被成功调用一次的 / 已发布的可共享资源（共享类型非不予共享），截至期末",
            KpiCode::LicenseUtilisation => "期内至少被成功查询或核验一次的电子证照 / 电子证照库现有证照数",
        }
    }

    /// What the numerator and denominator count, in English.
    pub fn rule_en(self) -> &'static str {
        match self {
            KpiCode::OnDemandSharing => {
                "demands raised in the period now satisfied (approved, including after arbitration) / demands raised in the period (by answering department)"
            }
            KpiCode::Opening => {
                "resources opened (published and bound to a library holding at least one record) / resources whose open type is unconditional or conditional (not retired), at the period's end"
            }
            KpiCode::Usage => {
                "shared resources called successfully at least once in the period / published resources whose share type is not not_shared, at the period's end"
            }
            KpiCode::LicenseUtilisation => {
                "licenses looked up or verified successfully at least once in the period / licenses the e-license library holds"
            }
        }
    }
}

/// One KPI over the period, with its monthly series.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Kpi {
    /// The KPI.
    pub code: KpiCode,
    /// Its Chinese name.
    pub label_zh: &'static str,
    /// Its English name.
    pub label_en: &'static str,
    /// What it counts.
    pub definition: &'static str,
    /// Over the whole period.
    #[serde(flatten)]
    pub ratio: Ratio,
    /// Month by month, oldest first.
    pub series: Vec<MonthPoint>,
}

/// One department's KPIs over the period.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DepartmentKpis {
    /// Department code.
    pub code: String,
    /// Department name.
    pub name: String,
    /// 按需共享率.
    pub on_demand_sharing: Ratio,
    /// 开放率.
    pub opening: Ratio,
    /// 使用率.
    pub usage: Ratio,
    /// 电子证照利用率.
    pub license_utilisation: Ratio,
}

impl DepartmentKpis {
    /// The figures of one KPI.
    pub fn get(&self, kpi: KpiCode) -> Ratio {
        match kpi {
            KpiCode::OnDemandSharing => self.on_demand_sharing,
            KpiCode::Opening => self.opening,
            KpiCode::Usage => self.usage,
            KpiCode::LicenseUtilisation => self.license_utilisation,
        }
    }
}

/// Calls of one resource in the period.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResourceCalls {
    /// Resource code.
    pub resource_code: String,
    /// Resource name.
    pub name: String,
    /// Its provider's code.
    pub department: String,
    /// Calls policy allowed.
    pub allowed: i64,
    /// Calls refused (any other outcome).
    pub denied: i64,
}

/// The KPIs of a period.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KpiReport {
    /// First day (UTC).
    pub from: String,
    /// Last day (UTC), included.
    pub to: String,
    /// The department the figures are limited to; `null`: every department.
    pub department: Option<String>,
    /// Each KPI over the period, with its monthly series.
    pub kpis: Vec<Kpi>,
    /// Each department's KPIs over the period (departments with anything to count).
    pub departments: Vec<DepartmentKpis>,
    /// Exchange calls per resource in the period, most called first (resources called at least once).
    pub calls: Vec<ResourceCalls>,
}

impl KpiReport {
    /// One KPI.
    pub fn kpi(&self, code: KpiCode) -> &Kpi {
        self.kpis
            .iter()
            .find(|k| k.code == code)
            .expect("every KPI is computed")
    }
}

/// Exchange calls by resource, month and whether allowed.
#[derive(Default)]
struct CallCounts {
    /// (resource code, month label) → (allowed, denied).
    by_month: HashMap<(String, String), (i64, i64)>,
}

impl CallCounts {
    fn allowed_in(&self, code: &str, months: &[String]) -> i64 {
        months
            .iter()
            .filter_map(|m| self.by_month.get(&(code.to_string(), m.clone())))
            .map(|(allowed, _)| allowed)
            .sum()
    }
}

/// What the KPIs read from the audit trail, in one pass over it.
#[derive(Default)]
struct AuditCounts {
    /// Exchange calls in the period.
    calls: CallCounts,
    /// (resource code, UTC day `YYYY-MM-DD`) → the keyed hashes of the keys looked up
    /// successfully through it that day: a looked-up license, counted once per range.
    keys_by_day: HashMap<(String, String), HashSet<String>>,
}

impl AuditCounts {
    /// Distinct keys looked up through `codes` between `start` and `end` (day starts).
    fn distinct_keys(&self, codes: &[&str], start: &str, end: &str) -> i64 {
        let (start, end) = (&start[..10], &end[..10]);
        let mut keys: HashSet<&str> = HashSet::new();
        for ((code, day), hashes) in &self.keys_by_day {
            if codes.contains(&code.as_str()) && day.as_str() >= start && day.as_str() < end {
                keys.extend(hashes.iter().map(String::as_str));
            }
        }
        keys.len() as i64
    }
}

/// Reads the audit trail from `start` to `end` once: the exchange calls of `period` by
/// resource and month, and the keys looked up per resource and day (for the e-license
/// utilisation of the period and of each month it touches, which may reach past it).
async fn audit_counts(
    state: &AppState,
    period: &Period,
    start: String,
    end: String,
) -> Result<AuditCounts, policy::Error> {
    let query = policy::audit::AuditQuery {
        from: Some(start),
        to: Some(end),
        ..Default::default()
    };
    let (in_start, in_end) = (period.start(), period.end());
    state
        .audit
        .scan(&state.catalog, &query, AuditCounts::default(), move |counts, record| {
            // Times are stored as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
            let (Some(code), Some(month), Some(day)) = (record.resource_code, record.at.get(..7), record.at.get(..10))
            else {
                return ControlFlow::Continue(());
            };
            let allowed = record.outcome == "allowed";
            if record.at >= in_start && record.at < in_end && record.endpoint.contains(EXCHANGE_ENDPOINTS) {
                let entry = counts
                    .calls
                    .by_month
                    .entry((code.clone(), month.to_string()))
                    .or_default();
                if allowed {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
            }
            if allowed
                && ONE_KEY_ENDPOINTS.contains(&record.endpoint.as_str())
                && let Some(hash) = record.subject_hash
            {
                counts
                    .keys_by_day
                    .entry((code, day.to_string()))
                    .or_default()
                    .insert(hash);
            }
            ControlFlow::Continue(())
        })
        .await
}

/// Whether a resource was in the catalog (published) by `end` (exclusive, stored-time text).
fn published_by(resource: &Resource, end: &str) -> bool {
    resource.status == ResourceStatus::Published
        && match resource.meta.publish_date {
            Some(day) => day_start(day).as_str() < end,
            None => resource.created_at.as_str() < end,
        }
}

fn should_open(resource: &Resource, end: &str) -> bool {
    resource.status != ResourceStatus::Retired
        && resource.meta.open_type != OpenType::NotOpen
        && resource.created_at.as_str() < end
}

fn is_shared(resource: &Resource, end: &str) -> bool {
    resource.meta.share_type != ShareType::NotShared && published_by(resource, end)
}

/// What the KPIs are computed from.
struct Inputs {
    resources: Vec<Resource>,
    demands: Vec<Demand>,
    /// Library name → records held.
    library_records: HashMap<String, u64>,
    audit: AuditCounts,
}

impl Inputs {
    fn opened(&self, resource: &Resource, end: &str) -> bool {
        published_by(resource, end)
            && resource
                .meta
                .library
                .as_ref()
                .and_then(|l| self.library_records.get(l))
                .is_some_and(|n| *n > 0)
    }

    fn demands_of<'a>(&'a self, department: Option<&'a str>) -> impl Iterator<Item = &'a Demand> + 'a {
        self.demands
            .iter()
            .filter(move |d| department.is_none_or(|code| d.responsible_department == code))
    }

    fn resources_of<'a>(&'a self, department: Option<&'a str>) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources
            .iter()
            .filter(move |r| department.is_none_or(|code| r.meta.provider_code == code))
    }

    fn on_demand_sharing(&self, department: Option<&str>, start: &str, end: &str) -> Ratio {
        let raised: Vec<&Demand> = self
            .demands_of(department)
            .filter(|d| d.created_at.as_str() >= start && d.created_at.as_str() < end)
            .collect();
        let satisfied = raised.iter().filter(|d| d.status == DemandStatus::Approved).count();
        Ratio::new(satisfied as i64, raised.len() as i64)
    }

    fn opening(&self, department: Option<&str>, end: &str) -> Ratio {
        let due: Vec<&Resource> = self.resources_of(department).filter(|r| should_open(r, end)).collect();
        let opened = due.iter().filter(|r| self.opened(r, end)).count();
        Ratio::new(opened as i64, due.len() as i64)
    }

    fn usage(&self, department: Option<&str>, months: &[String], end: &str) -> Ratio {
        let shared: Vec<&Resource> = self.resources_of(department).filter(|r| is_shared(r, end)).collect();
        let used = shared
            .iter()
            .filter(|r| self.audit.calls.allowed_in(&r.code, months) > 0)
            .count();
        Ratio::new(used as i64, shared.len() as i64)
    }

    fn license_codes<'a>(&'a self, department: Option<&'a str>) -> Vec<&'a str> {
        self.resources_of(department)
            .filter(|r| r.meta.library.as_deref() == Some(LICENSE_LIBRARY))
            .map(|r| r.code.as_str())
            .collect()
    }

    fn license_utilisation(&self, department: Option<&str>, start: &str, end: &str) -> Ratio {
        let codes = self.license_codes(department);
        if codes.is_empty() {
            return Ratio::new(0, 0);
        }
        let held = self.library_records.get(LICENSE_LIBRARY).copied().unwrap_or(0);
        let used = self.audit.distinct_keys(&codes, start, end);
        Ratio::new(used, i64::try_from(held).unwrap_or(i64::MAX))
    }
}

/// Computes the KPIs of `period`, limited to `department` (a code) when given.
pub async fn compute(state: &AppState, period: &Period, department: Option<&str>) -> Result<KpiReport, ComputeError> {
    let resources = state.catalog.resources().await?;
    let demands = state.catalog.demands(catalog::DemandView::All).await?;
    let departments = state.catalog.departments().await?;
    let mut library_records = HashMap::new();
    for (name, library) in state.libraries.all() {
        library_records.insert(name.to_string(), library.len().map_err(ComputeError::Library)?);
    }
    let months = period.months();
    let first_month = months.first().map_or_else(|| period.start(), Month::start);
    let last_month = months.last().map_or_else(|| period.end(), Month::end);
    let audit = audit_counts(
        state,
        period,
        first_month.min(period.start()),
        last_month.max(period.end()),
    )
    .await
    .map_err(ComputeError::Audit)?;
    let inputs = Inputs {
        resources,
        demands,
        library_records,
        audit,
    };
    let month_labels: Vec<String> = months.iter().map(Month::label).collect();
    let (start, end) = (period.start(), period.end());

    let mut kpis = Vec::new();
    for code in KPIS {
        let mut series = Vec::new();
        for month in &months {
            let (m_start, m_end) = (month.start(), month.end());
            let ratio = match code {
                KpiCode::OnDemandSharing => inputs.on_demand_sharing(department, &m_start, &m_end),
                KpiCode::Opening => inputs.opening(department, &m_end),
                KpiCode::Usage => inputs.usage(department, std::slice::from_ref(&month.label()), &m_end),
                KpiCode::LicenseUtilisation => inputs.license_utilisation(department, &m_start, &m_end),
            };
            series.push(MonthPoint {
                month: month.label(),
                ratio,
            });
        }
        let ratio = match code {
            KpiCode::OnDemandSharing => inputs.on_demand_sharing(department, &start, &end),
            KpiCode::Opening => inputs.opening(department, &end),
            KpiCode::Usage => inputs.usage(department, &month_labels, &end),
            KpiCode::LicenseUtilisation => inputs.license_utilisation(department, &start, &end),
        };
        kpis.push(Kpi {
            code,
            label_zh: code.label_zh(),
            label_en: code.label_en(),
            definition: code.rule_en(),
            ratio,
            series,
        });
    }

    let mut per_department = Vec::new();
    for d in departments
        .iter()
        .filter(|d| department.is_none_or(|code| d.code == code))
    {
        let code = Some(d.code.as_str());
        let row = DepartmentKpis {
            code: d.code.clone(),
            name: d.name.clone(),
            on_demand_sharing: inputs.on_demand_sharing(code, &start, &end),
            opening: inputs.opening(code, &end),
            usage: inputs.usage(code, &month_labels, &end),
            license_utilisation: inputs.license_utilisation(code, &start, &end),
        };
        if KPIS.iter().any(|k| row.get(*k).denominator > 0) {
            per_department.push(row);
        }
    }

    let names: BTreeMap<&str, &Resource> = inputs.resources.iter().map(|r| (r.code.as_str(), r)).collect();
    let mut totals: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for ((code, _), (allowed, denied)) in &inputs.audit.calls.by_month {
        let entry = totals.entry(code.as_str()).or_default();
        entry.0 += allowed;
        entry.1 += denied;
    }
    let mut calls: Vec<ResourceCalls> = totals
        .into_iter()
        .filter_map(|(code, (allowed, denied))| {
            let resource = names.get(code)?;
            department
                .is_none_or(|d| resource.meta.provider_code == d)
                .then(|| ResourceCalls {
                    resource_code: code.to_string(),
                    name: resource.meta.name.clone(),
                    department: resource.meta.provider_code.clone(),
                    allowed,
                    denied,
                })
        })
        .collect();
    calls.sort_by(|a, b| {
        (b.allowed + b.denied)
            .cmp(&(a.allowed + a.denied))
            .then_with(|| a.resource_code.cmp(&b.resource_code))
    });

    Ok(KpiReport {
        from: period.from.to_string(),
        to: period.to.to_string(),
        department: department.map(str::to_string),
        kpis,
        departments: per_department,
        calls,
    })
}

/// Why the KPIs could not be computed: a fault of ours.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The metadata DB failed.
    #[error("reading the catalog: {0}")]
    Catalog(#[from] catalog::Error),
    /// The audit trail could not be read.
    #[error("reading the audit trail: {0}")]
    Audit(policy::Error),
    /// A library's record count could not be read.
    #[error("counting a library's records: {0}")]
    Library(exchange_core::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_cover_whole_months_and_days() {
        let period = Period {
            from: day("2025-12-15"),
            to: day("2026-02-03"),
        };
        let months: Vec<String> = period.months().iter().map(Month::label).collect();
        assert_eq!(months, ["2025-12", "2026-01", "2026-02"]);
        assert_eq!(period.start(), "2025-12-15T00:00:00.000000Z");
        assert_eq!(period.end(), "2026-02-04T00:00:00.000000Z");
        assert_eq!(period.months()[0].end(), "2026-01-01T00:00:00.000000Z");
        let default = Period::default_until(day("2026-11-23"));
        assert_eq!(default.from, day("2025-12-01"));
        assert_eq!(default.months().len(), 12);
    }

    #[test]
    fn rates_are_absent_without_a_denominator() {
        assert_eq!(Ratio::new(0, 0).rate, None);
        assert_eq!(Ratio::new(1, 3).rate, Some(1.0 / 3.0));
        assert_eq!(percent(Some(1.0 / 3.0)), "33.3%");
        assert_eq!(percent(None), "—");
    }
}
