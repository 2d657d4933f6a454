//! Catalog list and search latency over real HTTP, metadata DB on the embedded default.
//!
//! ```sh
//! cargo run --release -p huitong-benches --bin catalog-latency -- [RESOURCES] [REQUESTS]
//! ```
//! Builds a catalog of RESOURCES (default 1,000) published resources × 20 data items across
//! 40 departments in a temp dir, serves it on a free port, and times REQUESTS (default 2,000)
//! sequential calls per scenario on one keep-alive connection after a warm-up. `/health` on the
//! same server is the floor. Exits 1 when a list or search p99 reaches 20 ms.

use std::time::Instant;

use catalog::{Catalog, Classification, DataItem, NewDepartment, ResourceInput};
use exchange_core::{OpenType, Sensitivity, ShareMethod, ShareType, UpdateCycle};
use huitong::settings::Settings;
use huitong::startup::Application;
use huitong_benches::percentiles;

const TARGET_P99_US: u64 = 20_000;
const TOPICS: &[&str] = &[
    "人口",
    "法人",
    "社保",
    "医保",
    "婚姻",
    "教育",
    "住房",
    "公积金",
    "车辆",
    "驾驶人",
    "不动产",
    "税务",
    "企业年报",
    "行政许可",
    "行政处罚",
    "低保",
    "残疾人",
    "退役军人",
    "养老",
    "出生",
];
const ITEM_LABELS: &[&str] = &[
    "公民身份号码",
    "姓名",
    "性别",
    "出生日期",
    "民族",
    "户籍地址",
    "联系电话",
    "统一社会信用代码",
    "单位名称",
    "登记日期",
    "有效期至",
    "办理状态",
    "经办机构",
    "金额",
    "数量",
    "地址",
    "行政区划代码",
    "备注",
    "证件号码",
    "更新时间",
];

fn resource(i: usize, departments: usize) -> ResourceInput {
    let topic = TOPICS[i % TOPICS.len()];
    let department = format!("D{:02}", i % departments);
    let xiang = 1 + i % departments;
    ResourceInput {
        code: None,
        name: format!("{topic}业务信息{i}"),
        provider_code: department,
        classification: Classification::Department,
        class_code: format!("3-{xiang:02}-{:03}", 1 + i / 200),
        library: None,
        summary: format!("{topic}相关办理数据，供跨部门核验使用（第{i}项）"),
        format: "database".into(),
        share_type: if i.is_multiple_of(3) {
            ShareType::Unconditional
        } else {
            ShareType::Conditional
        },
        share_conditions: (!i.is_multiple_of(3)).then(|| "依法履职使用".to_string()),
        legal_basis: (!i.is_multiple_of(3)).then(|| "国发〔2016〕51号".to_string()),
        share_method: ShareMethod::Api,
        open_type: if i.is_multiple_of(4) {
            OpenType::Unconditional
        } else {
            OpenType::NotOpen
        },
        update_cycle: UpdateCycle::ALL[i % UpdateCycle::ALL.len()],
        publish_date: None,
        related_codes: Vec::new(),
        connector: None,
        items: (0..20)
            .map(|k| DataItem {
                name: format!("item_{k:02}"),
                label_zh: ITEM_LABELS[(k + i) % ITEM_LABELS.len()].to_string(),
                data_type: "string".into(),
                length: Some(64),
                sensitivity: Sensitivity::ALL[k % 4],
                is_key: k == 0,
                authoritative: true,
            })
            .collect(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let resources: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let departments = 40;

    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        ..Settings::default()
    };
    let catalog = Catalog::connect(&settings.database_url()).await.expect("catalog");
    let started = Instant::now();
    for d in 0..departments {
        let new = NewDepartment {
            code: format!("D{d:02}"),
            name: format!("部门{d}"),
            parent_code: None,
            level: "city".into(),
        };
        catalog.save_department(&new).await.expect("department");
    }
    for i in 0..resources {
        let r = catalog
            .create_resource("bench", &resource(i, departments))
            .await
            .expect("resource");
        catalog
            .transition("bench", &r.code, "submit", None)
            .await
            .expect("submit");
        catalog
            .transition("bench", &r.code, "publish", None)
            .await
            .expect("publish");
    }
    let consumer = catalog.department_by_code("D00").await.expect("department").id;
    let key = policy::credentials::issue(&catalog, "bench", policy::Role::Consumer, Some(consumer), None)
        .await
        .expect("key")
        .key;
    eprintln!(
        "catalog of {resources} resources x 20 items built in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let app = Application::build(&settings).await.expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();

    let scenarios: &[(&str, &str)] = &[
        ("floor: GET /health", "/health"),
        ("list, first page", "/api/v1/resources?limit=20"),
        ("list, page 26 (offset 500)", "/api/v1/resources?limit=20&offset=500"),
        (
            "list, filtered",
            "/api/v1/resources?share_type=conditional&update_cycle=daily",
        ),
        ("search 人口 (name)", "/api/v1/resources?q=%E4%BA%BA%E5%8F%A3"),
        ("search 3-05 (partial code)", "/api/v1/resources?q=3-05"),
        (
            "search 统一社会信用代码 (item)",
            "/api/v1/resources?q=%E7%BB%9F%E4%B8%80%E7%A4%BE%E4%BC%9A%E4%BF%A1%E7%94%A8%E4%BB%A3%E7%A0%81",
        ),
        (
            "search 社保 核验 (two words)",
            "/api/v1/resources?q=%E7%A4%BE%E4%BF%9D%20%E6%A0%B8%E9%AA%8C",
        ),
        ("search, no match", "/api/v1/resources?q=%E6%B2%A1%E6%9C%89"),
    ];
    println!("| scenario | results | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    let mut missed = false;
    for (name, path) in scenarios {
        let url = format!("{base}{path}");
        let call = || client.get(&url).bearer_auth(&key).send();
        let mut total = 0;
        for _ in 0..50 {
            let body: serde_json::Value = call().await.expect("call").json().await.expect("json");
            total = body["total"].as_i64().unwrap_or(0);
        }
        let mut samples = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            let response = call().await.expect("call");
            assert!(response.status().is_success(), "{url}: {}", response.status());
            response.bytes().await.expect("body");
            samples.push(t.elapsed().as_micros() as u64);
        }
        let (p50, p99, max) = percentiles(&mut samples);
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "| {name} | {total} | {:.2} | {:.2} | {:.2} |",
            ms(p50),
            ms(p99),
            ms(max)
        );
        missed |= !path.starts_with("/health") && p99 >= TARGET_P99_US;
    }
    if missed {
        eprintln!("a list or search p99 reached 20 ms");
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
