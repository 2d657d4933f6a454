//! The demo's two themed libraries (主题库), declared over the base libraries and bound to
//! their catalog resources: 新生儿出生一件事 (population + birth-certificate e-licenses) and
//! 企业信用画像 (legal entities + credit records).

use catalog::{Catalog, Refresh};
use exchange_core::{FieldKind, LibrarySchema, Sensitivity, ThemeField};

use crate::libraries::Libraries;
use crate::themes::{ThemeDeclaration, declare_and_materialize};
use crate::{Failure, Result};

/// The newborn theme's resource: theme class (2), 01, 目 001.
pub const NEWBORN_CODE: &str = "2-01-001-000001";
/// The enterprise credit theme's resource.
pub const ENTERPRISE_CREDIT_CODE: &str = "2-03-001-000001";

fn field(name: &str, label_zh: &str, kind: FieldKind, sensitivity: Sensitivity) -> ThemeField {
    ThemeField {
        name: name.into(),
        label_zh: label_zh.into(),
        kind,
        sensitivity,
    }
}

/// The two declarations, with the resource each is served through.
pub fn declarations() -> Vec<(&'static str, ThemeDeclaration)> {
    use FieldKind as K;
    use Sensitivity::*;
    vec![
        (
            NEWBORN_CODE,
            ThemeDeclaration {
                name: "newborn".into(),
                label_zh: "新生儿出生一件事主题库".into(),
                description: "出生医学证明与户籍登记联办：出生医学证明（电子证照）关联人口基础库中的新生儿户籍信息。"
                    .into(),
                sql: "SELECT p.id_number, p.name, p.gender, p.birth_date, p.region_code, p.address, \
                      l.license_no AS birth_certificate_no, l.issuer AS hospital, l.issue_date AS certificate_date \
                      FROM population p JOIN license l ON l.holder_id = p.id_number \
                      WHERE l.license_type = 'CSYXZM'"
                    .into(),
                key: "id_number".into(),
                fields: vec![
                    field("id_number", "公民身份号码", K::IdNumber, L3),
                    field("name", "姓名", K::PersonName, L3),
                    field("gender", "性别", K::Gender, L2),
                    field("birth_date", "出生日期", K::Date, L2),
                    field("region_code", "户籍地行政区划代码", K::RegionCode, L1),
                    field("address", "户籍地址", K::Address, L3),
                    field("birth_certificate_no", "出生医学证明编号", K::Text, L2),
                    field("hospital", "签发机构", K::Text, L1),
                    field("certificate_date", "签发日期", K::Date, L1),
                ],
                refresh: Refresh::OnChange,
            },
        ),
        (
            ENTERPRISE_CREDIT_CODE,
            ThemeDeclaration {
                name: "enterprise_credit".into(),
                label_zh: "企业信用画像主题库".into(),
                description: "法人基础库的市场主体与社会信用记录汇总：行政许可、行政处罚次数与最近决定日期。".into(),
                sql: "SELECT e.uscc, e.name, e.status, e.region_code, e.industry_code, \
                      CAST(SUM(CASE WHEN c.record_type = '行政许可' THEN 1 ELSE 0 END) AS BIGINT) AS licences, \
                      CAST(SUM(CASE WHEN c.record_type = '行政处罚' THEN 1 ELSE 0 END) AS BIGINT) AS penalties, \
                      MAX(c.decision_date) AS last_decision \
                      FROM legal_entity e LEFT JOIN credit c ON c.subject_id = e.uscc \
                      GROUP BY e.uscc, e.name, e.status, e.region_code, e.industry_code"
                    .into(),
                key: "uscc".into(),
                fields: vec![
                    field("uscc", "统一社会信用代码", K::Uscc, L1),
                    field("name", "名称", K::Text, L1),
                    field("status", "登记状态", K::Text, L1),
                    field("region_code", "住所行政区划代码", K::RegionCode, L1),
                    field("industry_code", "行业代码", K::IndustryCode, L1),
                    field("licences", "行政许可次数", K::Decimal, L1),
                    field("penalties", "行政处罚次数", K::Decimal, L2),
                    field("last_decision", "最近决定日期", K::Date, L1),
                ],
                refresh: Refresh::OnChange,
            },
        ),
    ]
}

/// Declares and materializes both themes (a rerun keeps the declarations and refreshes the
/// data), binds each resource to its theme library, and returns up to five keys of each.
pub async fn build(
    catalog: &Catalog,
    libraries: &Libraries,
    data_dir: &std::path::Path,
) -> Result<Vec<(&'static str, &'static str, Vec<String>)>> {
    let mut out = Vec::new();
    for (code, declaration) in declarations() {
        let (theme, run) = declare_and_materialize(catalog, libraries, data_dir, &declaration, "DSJ")
            .await
            .map_err(|e| Failure::msg(format!("theme {}: {e}", declaration.name)))?;
        let library = libraries
            .get(&theme.name)
            .ok_or_else(|| Failure::msg(format!("theme {} is not open", theme.name)))?;
        let resource = catalog.resource_by_code(code).await?;
        if resource.meta.library.as_deref() != Some(theme.name.as_str()) {
            let mut input = resource.meta.clone();
            input.library = Some(theme.name.clone());
            input.items = super::seed::library_items(library.schema());
            catalog.update_resource("demo seed", code, &input).await?;
        }
        if let Err(e) = crate::quality::evaluate_library(catalog, libraries, &theme.name).await {
            tracing::warn!(theme = %theme.name, error = %e, "theme quality not scored");
        }
        let schema: &'static LibrarySchema = library.schema();
        println!(
            "  ✔ theme {} ({}): {} records, v{}",
            schema.name,
            schema.label_zh,
            library.len()?,
            run.library_version.unwrap_or_default()
        );
        let (first, _) = library.reader()?.changed_since(-1, None, 5, usize::MAX)?;
        let keys = first.into_iter().map(|(key, _)| key).collect();
        out.push((code, schema.name, keys));
    }
    Ok(out)
}
