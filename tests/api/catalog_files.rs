use std::path::Path;
use std::process::ExitCode;

use catalog::{ImportError, ImportOutcome};
use clap::Parser;
use huitong::cli::{Cli, run};
use huitong_tests::{MetaDb, TestApp, spawn_app};

const HEADER: [&str; 14] = [
    "资源名称",
    "资源提供方代码",
    "资源分类",
    "类目编码",
    "资源摘要",
    "共享类型",
    "共享依据",
    "共享条件",
    "共享方式",
    "开放类型",
    "更新周期",
    "信息项英文名",
    "信息项名称",
    "数据类型",
];
const TAIL: [&str; 2] = ["敏感级别", "是否主键"];

/// A row of the template: resource columns, then one data item.
fn row(resource: [&str; 11], item: [&str; 3], sensitivity: &str, key: &str) -> Vec<String> {
    resource
        .iter()
        .chain(item.iter())
        .chain([sensitivity, key].iter())
        .map(|s| s.to_string())
        .collect()
}

const TAXI: [&str; 11] = [
    "出租车运营许可信息",
    "JTJ",
    "部门信息资源",
    "3-09-002",
    "巡游出租车经营许可",
    "有条件共享",
    "《巡游出租汽车经营服务管理规定》",
    "仅用于交通执法",
    "接口",
    "不予开放",
    "每日",
];
const PARKING: [&str; 11] = [
    "公共停车场信息",
    "JTJ",
    "部门信息资源",
    "3-09-003",
    "公共停车场位置与泊位",
    "无条件共享",
    "",
    "",
    "库表",
    "无条件开放",
    "每月",
];

fn valid_rows() -> Vec<Vec<String>> {
    vec![
        row(TAXI, ["permit_no", "许可证号", "字符型"], "L1", "是"),
        row(TAXI, ["plate_no", "车牌号码", "字符型"], "L2", "否"),
        row(TAXI, ["driver_id_number", "驾驶员身份证件号码", "字符型"], "L3", "否"),
        row(PARKING, ["lot_id", "停车场编号", "字符型"], "L1", "是"),
        row(PARKING, ["spaces", "泊位数", "整型"], "公开", "否"),
    ]
}

fn write_xlsx(path: &Path, rows: &[Vec<String>]) {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (c, h) in HEADER.iter().chain(TAIL.iter()).enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            sheet.write_string(r as u32 + 1, c as u16, value).unwrap();
        }
    }
    workbook.save(path).unwrap();
}

async fn cli(app: &TestApp, args: &[&str]) -> ExitCode {
    let data_dir = app.data_path();
    let mut all = vec!["huitong", "--data-dir", data_dir.to_str().unwrap(), "catalog"];
    all.extend_from_slice(args);
    run(Cli::parse_from(all)).await.expect("command runs")
}

async fn resource_count(app: &TestApp) -> usize {
    app.catalog.resources().await.unwrap().len()
}

fn has_error(errors: &[ImportError], row: usize, column: &str, needle: &str) -> bool {
    errors
        .iter()
        .any(|e| e.row == row && e.column.as_deref() == Some(column) && e.message.contains(needle))
}

async fn check_workbook_with_errors(app: &TestApp) {
    let before = resource_count(app).await;
    let mut rows = valid_rows();
    rows[0][5] = "偶尔共享".into(); // row 2: not a share type
    rows[2][13] = "varchar".into(); // row 4: not a data type
    rows[3][6] = "".into(); // parking is unconditional: fine without basis …
    rows[3][5] = "有条件共享".into(); // … but row 5 makes it conditional, without basis or conditions
    rows[4][5] = "有条件共享".into();
    rows.push(row(
        [
            "无主资源",
            "NOPE",
            "部门信息资源",
            "3-01-001",
            "",
            "无条件共享",
            "",
            "",
            "接口",
            "不予开放",
            "每日",
        ],
        ["id", "编号", "字符型"],
        "L1",
        "是",
    ));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("目录.xlsx");
    write_xlsx(&file, &rows);

    // Cell-level errors first: each named by row and column.
    let ImportOutcome::Rejected(errors) = app.catalog.import_catalog("test", &file).await.unwrap() else {
        panic!("accepted a bad workbook");
    };
    assert!(has_error(&errors, 2, "共享类型", "偶尔共享"), "{errors:?}");
    assert!(has_error(&errors, 4, "数据类型", "varchar"), "{errors:?}");
    assert_eq!(cli(app, &["import", file.to_str().unwrap()]).await, ExitCode::FAILURE);
    assert_eq!(resource_count(app).await, before, "nothing imported");

    // With the cells fixed, the catalog's rules are checked per resource, still by row and column.
    rows[0][5] = "有条件共享".into();
    rows[2][13] = "字符型".into();
    write_xlsx(&file, &rows);
    let ImportOutcome::Rejected(errors) = app.catalog.import_catalog("test", &file).await.unwrap() else {
        panic!("accepted a bad workbook");
    };
    assert!(has_error(&errors, 5, "共享依据", "legal"), "{errors:?}");
    assert!(has_error(&errors, 5, "共享条件", "conditions"), "{errors:?}");
    assert!(has_error(&errors, 7, "资源提供方代码", "NOPE"), "{errors:?}");
    assert_eq!(resource_count(app).await, before, "nothing imported");
}

#[tokio::test]
async fn a_valid_workbook_imports_and_export_round_trips() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let before = resource_count(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("目录.xlsx");
    write_xlsx(&file, &valid_rows());
    assert_eq!(cli(&app, &["import", file.to_str().unwrap()]).await, ExitCode::SUCCESS);
    assert_eq!(resource_count(&app).await, before + 2);
    let taxi = app.catalog.resource_by_code("3-09-002-000001").await.unwrap();
    assert_eq!(taxi.status, catalog::ResourceStatus::Draft);
    assert_eq!(taxi.meta.items.len(), 3);
    assert_eq!(taxi.meta.items[2].sensitivity, exchange_core::Sensitivity::L3);
    let history = app.catalog.resource_history("3-09-002-000001").await.unwrap();
    assert!(history[0].actor.contains("catalog import"));

    // Export in both formats; both come back unchanged.
    for name in ["全部目录.xlsx", "全部目录.csv"] {
        let out = dir.path().join(name);
        assert_eq!(cli(&app, &["export", out.to_str().unwrap()]).await, ExitCode::SUCCESS);
        let rows = catalog::read_rows(&out).unwrap();
        assert_eq!(rows[0][0], "资源代码");
        assert!(
            rows.iter()
                .any(|r| r.contains(&"有条件共享".to_string()) && r.contains(&"全员人口基础信息".to_string()))
        );
        let ImportOutcome::Imported {
            created,
            updated,
            unchanged,
        } = app.catalog.import_catalog("test", &out).await.unwrap()
        else {
            panic!("its own export was refused");
        };
        assert!(created.is_empty() && updated.is_empty(), "{created:?} {updated:?}");
        assert_eq!(
            unchanged.len(),
            resource_count(&app).await,
            "submitted and retired ones too"
        );
        let population = app
            .catalog
            .resource_by_code(huitong::demo::POPULATION_CODE)
            .await
            .unwrap();
        assert_eq!(
            population.meta.connector.as_deref(),
            Some("gaj-hukou"),
            "the binding survives"
        );
    }
    let csv = std::fs::read(dir.path().join("全部目录.csv")).unwrap();
    assert!(csv.starts_with(b"\xEF\xBB\xBF"), "a BOM, so Excel shows Chinese");
}

#[tokio::test]
async fn a_gbk_csv_from_excel_on_chinese_windows_imports() {
    let app = spawn_app(MetaDb::Sqlite).await;
    let mut text = HEADER.iter().chain(TAIL.iter()).copied().collect::<Vec<_>>().join(",");
    text.push('\n');
    for r in valid_rows() {
        text.push_str(&r.join(","));
        text.push('\n');
    }
    let (bytes, _, _) = encoding_rs::GBK.encode(&text);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("目录.csv");
    std::fs::write(&file, &bytes).unwrap();
    let ImportOutcome::Imported { created, .. } = app.catalog.import_catalog("test", &file).await.unwrap() else {
        panic!("GBK file refused");
    };
    assert_eq!(created, ["3-09-002-000001", "3-09-003-000001"]);
    let parking = app.catalog.resource_by_code("3-09-003-000001").await.unwrap();
    assert_eq!(parking.meta.name, "公共停车场信息");
}

huitong_tests::on_both_databases! {
    a_workbook_with_errors_is_refused_whole_with_every_row_and_column => check_workbook_with_errors;
}
