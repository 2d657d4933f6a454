//! The demo catalog: a city's departments in their hierarchy, the five base resources, two
//! themes, department resources in every lifecycle state, demands in every state and the
//! responsibility lists — all made through the same catalog calls the API uses.

use catalog::{
    Catalog, Classification, DataItem, DemandDecision, NewDemand, NewDepartment, NewResponsibility, ResourceInput,
    ResponsibilityKind,
};
use exchange_core::schema::{CREDIT, LEGAL_ENTITY, LICENSE, POPULATION, SPATIAL};
use exchange_core::{FieldKind, LibrarySchema, OpenType, Sensitivity, ShareMethod, ShareType, UpdateCycle};

use crate::Result;

/// The population resource's code: base class (1), 人口 (01), 目 001, sequence 000001.
pub const POPULATION_CODE: &str = "1-01-001-000001";
/// The legal-entity resource (法人).
pub const LEGAL_ENTITY_CODE: &str = "1-02-001-000001";
/// The credit resource (社会信用).
pub const CREDIT_CODE: &str = "1-03-001-000001";
/// The e-license resource (电子证照).
pub const LICENSE_CODE: &str = "1-04-001-000001";
/// The spatial resource (空间地理).
pub const SPATIAL_CODE: &str = "1-05-001-000001";

/// The base resources and the libraries that serve them.
pub const BASE_RESOURCES: [(&str, &LibrarySchema); 5] = [
    (POPULATION_CODE, &POPULATION),
    (LEGAL_ENTITY_CODE, &LEGAL_ENTITY),
    (CREDIT_CODE, &CREDIT),
    (LICENSE_CODE, &LICENSE),
    (SPATIAL_CODE, &SPATIAL),
];

/// A base resource's data items: the library's fields, each authoritative for its provider.
pub(crate) fn library_items(schema: &LibrarySchema) -> Vec<DataItem> {
    let specs: Vec<ItemSpec> = schema
        .fields
        .iter()
        .map(|f| {
            let data_type = match f.kind {
                FieldKind::Date => "date",
                FieldKind::Decimal | FieldKind::Longitude | FieldKind::Latitude => "decimal",
                _ => "string",
            };
            (f.name, f.label_zh, data_type, f.sensitivity, f.name == schema.key)
        })
        .collect();
    items(&specs)
}

const ACTOR: &str = "demo seed";
const BASIS: &str = "《政务信息资源共享管理暂行办法》(国发〔2016〕51号)";

/// Departments: code, name, level, parent code.
const DEPARTMENTS: &[(&str, &str, &str, Option<&str>)] = &[
    ("ZJ-DSJ", "浙江省大数据发展管理局", "province", None),
    ("ZJ-GAT", "浙江省公安厅", "province", None),
    ("DSJ", "市大数据管理局", "city", Some("ZJ-DSJ")),
    ("GAJ", "市公安局", "city", Some("ZJ-GAT")),
    ("MZJ", "市民政局", "city", None),
    ("WJW", "市卫生健康委员会", "city", None),
    ("RSJ", "市人力资源和社会保障局", "city", None),
    ("SCJGJ", "市市场监督管理局", "city", None),
    ("FGW", "市发展和改革委员会", "city", None),
    ("ZRZYJ", "市规划和自然资源局", "city", None),
    ("JTJ", "市交通运输局", "city", None),
    ("XH-GA", "西湖区公安分局", "district", Some("GAJ")),
];

/// (name, label, type, sensitivity, key)
type ItemSpec = (&'static str, &'static str, &'static str, Sensitivity, bool);

fn items(specs: &[ItemSpec]) -> Vec<DataItem> {
    specs
        .iter()
        .map(|(name, label, data_type, sensitivity, key)| DataItem {
            name: (*name).into(),
            label_zh: (*label).into(),
            data_type: (*data_type).into(),
            length: (*data_type == "string").then_some(if *key { 18 } else { 200 }),
            sensitivity: *sensitivity,
            is_key: *key,
            authoritative: true,
        })
        .collect()
}

struct Spec {
    code: &'static str,
    name: &'static str,
    provider: &'static str,
    summary: &'static str,
    share: ShareType,
    method: ShareMethod,
    open: OpenType,
    cycle: UpdateCycle,
    items: Vec<DataItem>,
}

impl Spec {
    fn input(&self) -> ResourceInput {
        let class_code = self
            .code
            .rsplit_once('-')
            .map(|(c, _)| c)
            .unwrap_or_default()
            .to_string();
        let classification = match self.code.as_bytes()[0] {
            b'1' => Classification::Base,
            b'2' => Classification::Theme,
            _ => Classification::Department,
        };
        ResourceInput {
            code: Some(self.code.into()),
            name: self.name.into(),
            provider_code: self.provider.into(),
            classification,
            class_code,
            library: BASE_RESOURCES
                .iter()
                .find(|(code, _)| *code == self.code)
                .map(|(_, schema)| schema.name.to_string()),
            summary: self.summary.into(),
            format: if self.method == ShareMethod::File {
                "file"
            } else {
                "database"
            }
            .into(),
            share_type: self.share,
            share_conditions: (self.share == ShareType::Conditional)
                .then(|| "用于履行法定职责的政务服务和监管，不得挪作他用".into()),
            legal_basis: (self.share != ShareType::Unconditional).then(|| BASIS.into()),
            share_method: self.method,
            open_type: self.open,
            update_cycle: self.cycle,
            publish_date: None,
            related_codes: Vec::new(),
            connector: None,
            items: self.items.clone(),
        }
    }
}

fn specs() -> Vec<Spec> {
    use OpenType as O;
    use Sensitivity::*;
    use ShareMethod as M;
    use ShareType as S;
    use UpdateCycle as C;

    vec![
        Spec {
            code: POPULATION_CODE,
            name: "全员人口基础信息",
            provider: "GAJ",
            summary: "全市户籍人口基础信息，由市公安局提供，市民政局补充联系方式。",
            share: S::Conditional,
            method: M::Api,
            open: O::NotOpen,
            cycle: C::Daily,
            items: library_items(&POPULATION),
        },
        Spec {
            code: "1-02-001-000001",
            name: "法人单位基础信息",
            provider: "SCJGJ",
            summary: "企业、个体工商户、农民专业合作社等市场主体的登记信息。",
            share: S::Unconditional,
            method: M::Api,
            open: O::Unconditional,
            cycle: C::Daily,
            items: library_items(&LEGAL_ENTITY),
        },
        Spec {
            code: "1-03-001-000001",
            name: "社会信用信息",
            provider: "FGW",
            summary: "行政许可、行政处罚、守信红名单和失信黑名单信息。",
            share: S::Unconditional,
            method: M::Api,
            open: O::Conditional,
            cycle: C::Daily,
            items: library_items(&CREDIT),
        },
        Spec {
            code: "1-04-001-000001",
            name: "电子证照信息",
            provider: "DSJ",
            summary: "全市各部门签发的电子证照目录与照面信息。",
            share: S::Conditional,
            method: M::Api,
            open: O::NotOpen,
            cycle: C::RealTime,
            items: library_items(&LICENSE),
        },
        Spec {
            code: "1-05-001-000001",
            name: "自然资源和空间地理信息",
            provider: "ZRZYJ",
            summary: "标准地址、门牌与地块空间信息（CGCS2000）。",
            share: S::Unconditional,
            method: M::Bulk,
            open: O::Unconditional,
            cycle: C::Monthly,
            items: library_items(&SPATIAL),
        },
        Spec {
            code: "2-01-001-000001",
            name: "新生儿出生一件事主题信息",
            provider: "WJW",
            summary: "出生医学证明、户籍登记、医保参保联办所需信息。",
            share: S::Conditional,
            method: M::Api,
            open: O::NotOpen,
            cycle: C::RealTime,
            items: items(&[
                ("birth_certificate_no", "出生医学证明编号", "string", L2, true),
                ("newborn_name", "新生儿姓名", "string", L3, false),
                ("gender", "性别", "string", L2, false),
                ("birth_date", "出生日期", "date", L2, false),
                ("mother_id_number", "母亲身份证件号码", "string", L3, false),
                ("father_id_number", "父亲身份证件号码", "string", L3, false),
                ("hospital", "助产机构", "string", L1, false),
            ]),
        },
        Spec {
            code: "2-02-001-000001",
            name: "人才落户主题信息",
            provider: "RSJ",
            summary: "人才认定、落户审批与就业单位信息。",
            share: S::Conditional,
            method: M::Api,
            open: O::NotOpen,
            cycle: C::Weekly,
            items: items(&[
                ("id_number", "公民身份号码", "string", L3, true),
                ("name", "姓名", "string", L3, false),
                ("education", "学历", "string", L2, false),
                ("talent_category", "人才类别", "string", L2, false),
                ("employer_uscc", "就业单位统一社会信用代码", "string", L1, false),
                ("settle_date", "落户日期", "date", L2, false),
            ]),
        },
        Spec {
            code: "2-03-001-000001",
            name: "企业信用画像主题信息",
            provider: "FGW",
            summary: "市场主体登记信息与行政许可、行政处罚等信用记录的汇总画像。",
            share: S::Unconditional,
            method: M::Api,
            open: O::NotOpen,
            cycle: C::Daily,
            items: items(&[
                ("uscc", "统一社会信用代码", "string", L1, true),
                ("name", "名称", "string", L1, false),
            ]),
        },
        Spec {
            code: "3-06-001-000001",
            name: "最低生活保障对象信息",
            provider: "MZJ",
            summary: "城乡低保对象及保障金发放信息。",
            share: S::Conditional,
            method: M::Api,
            open: O::NotOpen,
            cycle: C::Monthly,
            items: items(&[
                ("id_number", "公民身份号码", "string", L3, true),
                ("name", "姓名", "string", L3, false),
                ("family_size", "家庭人口数", "integer", L2, false),
                ("monthly_amount", "月保障金额", "decimal", L2, false),
                ("start_date", "享受起始日期", "date", L2, false),
            ]),
        },
        Spec {
            code: "3-07-001-000001",
            name: "社会保险参保信息",
            provider: "RSJ",
            summary: "养老、医疗、失业、工伤保险参保及缴费状态。",
            share: S::Conditional,
            method: M::Api,
            open: O::NotOpen,
            cycle: C::Daily,
            items: items(&[
                ("id_number", "公民身份号码", "string", L3, true),
                ("name", "姓名", "string", L3, false),
                ("insurance_type", "险种", "string", L2, false),
                ("status", "参保状态", "string", L2, false),
                ("employer_uscc", "参保单位统一社会信用代码", "string", L1, false),
            ]),
        },
        Spec {
            code: "3-08-001-000001",
            name: "医疗机构执业登记信息",
            provider: "WJW",
            summary: "医疗机构名称、类别、地址与执业许可证信息。",
            share: S::Unconditional,
            method: M::Api,
            open: O::Unconditional,
            cycle: C::Monthly,
            items: items(&[
                ("license_no", "执业许可证登记号", "string", L1, true),
                ("name", "机构名称", "string", L1, false),
                ("category", "机构类别", "string", L1, false),
                ("address", "地址", "string", L1, false),
                ("valid_until", "有效期至", "date", L1, false),
            ]),
        },
        Spec {
            code: "3-06-002-000001",
            name: "婚姻登记信息",
            provider: "MZJ",
            summary: "结婚、离婚登记信息。",
            share: S::Conditional,
            method: M::Api,
            open: O::NotOpen,
            cycle: C::Daily,
            items: items(&[
                ("certificate_no", "登记证字号", "string", L2, true),
                ("male_id_number", "男方身份证件号码", "string", L3, false),
                ("female_id_number", "女方身份证件号码", "string", L3, false),
                ("registration_type", "登记类型", "string", L2, false),
                ("registration_date", "登记日期", "date", L2, false),
            ]),
        },
        Spec {
            code: "3-07-002-000001",
            name: "就业登记信息",
            provider: "RSJ",
            summary: "劳动者就业、失业登记信息。",
            share: S::Conditional,
            method: M::Api,
            open: O::NotOpen,
            cycle: C::Monthly,
            items: items(&[
                ("id_number", "公民身份号码", "string", L3, true),
                ("employer_uscc", "用人单位统一社会信用代码", "string", L1, false),
                ("start_date", "就业日期", "date", L2, false),
            ]),
        },
        Spec {
            code: "3-09-001-000001",
            name: "公交线路信息（旧版）",
            provider: "JTJ",
            summary: "已由新版公交线路与站点信息取代。",
            share: S::Unconditional,
            method: M::File,
            open: O::Unconditional,
            cycle: C::Irregular,
            items: items(&[
                ("line_id", "线路编号", "string", L1, true),
                ("line_name", "线路名称", "string", L1, false),
            ]),
        },
        Spec {
            code: "3-09-001-000002",
            name: "公交线路与站点信息",
            provider: "JTJ",
            summary: "公交线路、站点位置与首末班时间。",
            share: S::Unconditional,
            method: M::Bulk,
            open: O::Unconditional,
            cycle: C::Weekly,
            items: items(&[
                ("line_id", "线路编号", "string", L1, true),
                ("line_name", "线路名称", "string", L1, false),
                ("stops", "站点", "string", L1, false),
                ("first_bus", "首班时间", "string", L1, false),
                ("last_bus", "末班时间", "string", L1, false),
            ]),
        },
    ]
}

/// Lifecycle end state of each seeded resource that is not simply published.
fn target_state(code: &str) -> &'static [&'static str] {
    match code {
        "3-06-002-000001" => &["submit"],
        "3-07-002-000001" => &[],
        "3-09-001-000001" => &["submit", "publish", "retire"],
        _ => &["submit", "publish"],
    }
}

/// Seeds the catalog once; a catalog that holds the population resource is left as it is.
/// Returns whether it seeded.
pub async fn seed_catalog(catalog: &Catalog) -> Result<bool> {
    if catalog.resource_by_code(POPULATION_CODE).await.is_ok() {
        return Ok(false);
    }
    for (code, name, level, parent) in DEPARTMENTS {
        catalog
            .save_department(&NewDepartment {
                code: (*code).into(),
                name: (*name).into(),
                parent_code: parent.map(str::to_string),
                level: (*level).into(),
            })
            .await?;
    }
    for spec in specs() {
        catalog.create_resource(ACTOR, &spec.input()).await?;
        for action in target_state(spec.code) {
            let comment = (*action == "retire").then_some("由 3-09-001-000002 取代");
            catalog.transition(ACTOR, spec.code, action, comment).await?;
        }
    }
    seed_demands(catalog).await?;
    seed_responsibilities(catalog).await?;
    Ok(true)
}

async fn department(catalog: &Catalog, code: &str) -> Result<i64> {
    Ok(catalog.department_by_code(code).await?.id)
}

fn demand(resource: &str, purpose: &str) -> NewDemand {
    NewDemand {
        resource_code: Some(resource.into()),
        responsible_department_code: None,
        title: None,
        description: String::new(),
        purpose: purpose.into(),
        legal_basis: BASIS.into(),
        requested_items: Vec::new(),
        expected_daily_calls: 5000,
        period_until: None,
    }
}

fn approve(items: &[&str], plain: &[&str]) -> DemandDecision {
    DemandDecision::Approve {
        resource_code: None,
        items: items.iter().map(|s| s.to_string()).collect(),
        plain_items: plain.iter().map(|s| s.to_string()).collect(),
        row_filter: None,
        quota_per_second: Some(50.0),
        quota_per_day: Some(100_000),
        expires_at: None,
        comment: Some("同意，按最小必要原则提供".into()),
    }
}

fn reject(reason: &str) -> DemandDecision {
    DemandDecision::Reject { reason: reason.into() }
}

async fn seed_demands(catalog: &Catalog) -> Result<()> {
    let (wjw, rsj, mzj, gaj, jtj) = (
        department(catalog, "WJW").await?,
        department(catalog, "RSJ").await?,
        department(catalog, "MZJ").await?,
        department(catalog, "GAJ").await?,
        department(catalog, "JTJ").await?,
    );
    // Approved: the health commission's grant on population (the demo's consumer_granted key).
    let d = catalog
        .create_demand(
            wjw,
            &demand(POPULATION_CODE, "出生医学证明签发、预防接种建档时核验父母身份"),
            10,
        )
        .await?;
    let items = [
        "id_number",
        "name",
        "gender",
        "birth_date",
        "region_code",
        "address",
        "phone",
    ];
    catalog
        .decide_demand(d.id, gaj, &approve(&items, &["id_number"]))
        .await?;
    // Pending, within its deadline: human resources asks for population.
    catalog
        .create_demand(rsj, &demand(POPULATION_CODE, "社保参保登记时核验参保人身份"), 10)
        .await?;
    // Pending past its deadline (given none).
    catalog
        .create_demand(rsj, &demand("3-06-001-000001", "就业困难人员认定时核查低保身份"), 0)
        .await?;
    // Rejected.
    let d = catalog
        .create_demand(mzj, &demand("2-02-001-000001", "掌握人才落户情况"), 10)
        .await?;
    catalog
        .decide_demand(d.id, rsj, &reject("用途不明确，未说明具体业务事项"))
        .await?;
    // Rejected, then objected: waiting for arbitration.
    let d = catalog
        .create_demand(gaj, &demand("2-01-001-000001", "新生儿户口登记联办"), 10)
        .await?;
    catalog
        .decide_demand(d.id, wjw, &reject("出生医学证明信息已通过电子证照共享"))
        .await?;
    catalog
        .object_demand(d.id, gaj, "电子证照未包含父母身份信息，户口登记需要")
        .await?;
    // Rejected, objected and arbitrated: approved by the platform (final).
    let d = catalog
        .create_demand(jtj, &demand("3-07-001-000001", "公交从业人员参保核查"), 10)
        .await?;
    catalog
        .decide_demand(d.id, rsj, &reject("非本部门法定共享对象"))
        .await?;
    catalog
        .object_demand(d.id, jtj, "《安全生产法》要求核查从业人员参保情况")
        .await?;
    catalog
        .arbitrate_demand(d.id, &approve(&["id_number", "status"], &[]))
        .await?;
    // For data not in the catalog yet: routed to civil affairs.
    catalog
        .create_demand(
            wjw,
            &NewDemand {
                resource_code: None,
                responsible_department_code: Some("MZJ".into()),
                title: Some("残疾人两项补贴发放信息".into()),
                description: "康复救助需核对残疾人生活补贴和护理补贴发放情况".into(),
                ..demand("", "残疾儿童康复救助资格核查")
            },
            10,
        )
        .await?;
    Ok(())
}

async fn seed_responsibilities(catalog: &Catalog) -> Result<()> {
    let today = chrono::Utc::now().date_naive();
    let duties: &[(ResponsibilityKind, &str, Option<&str>, &str, i64)] = &[
        (
            ResponsibilityKind::Share,
            "GAJ",
            Some(POPULATION_CODE),
            "全员人口基础信息",
            -30,
        ),
        (
            ResponsibilityKind::Share,
            "SCJGJ",
            Some("1-02-001-000001"),
            "法人单位基础信息",
            -30,
        ),
        (
            ResponsibilityKind::Share,
            "MZJ",
            Some("3-06-002-000001"),
            "婚姻登记信息",
            60,
        ),
        (
            ResponsibilityKind::Share,
            "RSJ",
            Some("3-07-002-000001"),
            "就业登记信息",
            -10,
        ),
        (ResponsibilityKind::Share, "MZJ", None, "残疾人两项补贴发放信息", 90),
        (
            ResponsibilityKind::Open,
            "ZRZYJ",
            Some("1-05-001-000001"),
            "标准地址信息",
            -15,
        ),
        (
            ResponsibilityKind::Open,
            "WJW",
            Some("3-08-001-000001"),
            "医疗机构执业登记信息",
            -15,
        ),
        (
            ResponsibilityKind::Open,
            "JTJ",
            Some("3-09-001-000002"),
            "公交线路与站点信息",
            30,
        ),
        (
            ResponsibilityKind::Open,
            "FGW",
            Some("1-03-001-000001"),
            "行政许可和行政处罚信息",
            -5,
        ),
    ];
    for (kind, department, resource, subject, days) in duties {
        catalog
            .create_responsibility(&NewResponsibility {
                kind: *kind,
                department_code: (*department).into(),
                resource_code: resource.map(str::to_string),
                subject: (*subject).into(),
                due_date: today + chrono::Duration::days(*days),
            })
            .await?;
    }
    Ok(())
}
