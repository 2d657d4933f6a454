//! `huitong demo`: a working platform from nothing, on generated departmental data.

pub mod generate;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use catalog::{Catalog, Connector, DataItem, NewConnector, NewGrant, NewResource};
use exchange_core::schema::POPULATION;
use exchange_core::{Library, OpenType, ShareMethod, ShareType, UpdateCycle};
use indicatif::{ProgressBar, ProgressStyle};
use policy::Role;
use serde_json::json;

use crate::cli::DemoArgs;
use crate::settings::Settings;
use crate::startup::{Application, open_stores};
use crate::{Failure, Result};

/// The population resource's code in the demo catalog: base class (1), 人口 (01), 目 001,
/// sequence 000001.
pub const POPULATION_CODE: &str = "1-01-001-000001";

/// The demo's departments: code, name.
const DEPARTMENTS: &[(&str, &str)] = &[
    ("DSJ", "市大数据管理局"),
    ("GAJ", "市公安局"),
    ("MZJ", "市民政局"),
    ("WJW", "市卫生健康委员会"),
    ("RSJ", "市人力资源和社会保障局"),
];

/// What a prepared demo hands to the server and to scripts.
pub struct PreparedDemo {
    /// The metadata DB.
    pub catalog: Catalog,
    /// The open libraries.
    pub libraries: HashMap<&'static str, Arc<Library>>,
    /// Keys by demo role (`consumer_granted`, …).
    pub keys: serde_json::Value,
    /// A few ID numbers present in the population library.
    pub sample_ids: Vec<String>,
}

/// Generates (or reuses) the sources, seeds the catalog, syncs every connector and issues the
/// demo keys; prints progress. Safe to run again on the same data dir.
pub async fn prepare(settings: &Settings, rows: usize, seed: u64) -> Result<PreparedDemo> {
    let data_dir = settings.data_dir.clone();
    std::fs::create_dir_all(&data_dir)?;
    println!("汇通 Huitong demo — data dir {}", data_dir.display());
    let sources = generate::ensure_sources(&data_dir.join("sources"), rows, seed).await?;
    println!(
        "  departmental sources: {} (户籍 {} rows), {}",
        sources.gongan.display(),
        sources.rows,
        sources.minzheng.display()
    );
    let (catalog, libraries) = open_stores(settings).await?;
    seed_catalog(&catalog, &sources).await?;
    for connector in catalog.connectors().await? {
        sync_with_progress(&catalog, &libraries, &connector).await?;
    }
    let keys = issue_demo_keys(&catalog).await?;
    Ok(PreparedDemo {
        catalog,
        libraries,
        keys,
        sample_ids: sources.sample_ids,
    })
}

/// The content of `demo-credentials.json`.
pub fn credentials_json(base_url: &str, demo: &PreparedDemo) -> serde_json::Value {
    json!({
        "base_url": base_url,
        "keys": demo.keys,
        "resource_codes": {"population": POPULATION_CODE},
        "sample_keys": {"population": demo.sample_ids},
    })
}

/// `huitong demo`: prepares the demo, writes demo-credentials.json, prints curl commands, and
/// serves unless `--no-serve`.
pub async fn run(mut settings: Settings, args: DemoArgs) -> Result<ExitCode> {
    settings.set_port(args.port);
    let demo = prepare(&settings, args.rows, args.seed).await?;
    let app = if args.no_serve {
        None
    } else {
        Some(
            Application::build_with(&settings, demo.catalog.clone(), demo.libraries.clone())
                .await?,
        )
    };
    let port = app.as_ref().map_or(args.port, |a| a.port());
    let base_url = format!("http://{}:{port}", crate::cli::host_of(&settings.listen));
    let credentials = credentials_json(&base_url, &demo);
    let credentials_path = settings.data_dir.join("demo-credentials.json");
    std::fs::write(&credentials_path, serde_json::to_vec_pretty(&credentials)?)?;
    print_curl_examples(&credentials, &credentials_path);
    match app {
        None => Ok(ExitCode::SUCCESS),
        Some(app) => {
            println!("\nServing on {base_url} — Ctrl-C to stop.");
            crate::cli::serve_until_ctrl_c(app).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Departments, the population resource, the health commission's grant and the two connectors.
async fn seed_catalog(catalog: &Catalog, sources: &generate::Sources) -> Result<()> {
    let mut ids = HashMap::new();
    for (code, name) in DEPARTMENTS {
        ids.insert(*code, catalog.upsert_department(code, name, None).await?.id);
    }
    let population = NewResource {
        code: POPULATION_CODE.into(),
        name: "全员人口基础信息".into(),
        provider_code: "GAJ".into(),
        library: Some(POPULATION.name.into()),
        summary: "全市户籍人口基础信息，由市公安局提供，市民政局补充联系方式。".into(),
        share_type: ShareType::Conditional,
        share_conditions: Some("用于政务服务身份核验和业务协同，不得用于其他用途".into()),
        legal_basis: Some("《政务信息资源共享管理暂行办法》(国发〔2016〕51号)".into()),
        share_method: ShareMethod::Api,
        open_type: OpenType::NotOpen,
        update_cycle: UpdateCycle::Daily,
        items: POPULATION
            .fields
            .iter()
            .map(|f| DataItem {
                name: f.name.into(),
                label_zh: f.label_zh.into(),
                data_type: if f.kind == exchange_core::FieldKind::Date {
                    "date"
                } else {
                    "string"
                }
                .into(),
                length: None,
                sensitivity: f.sensitivity,
                is_key: f.name == POPULATION.key,
            })
            .collect(),
    };
    let resource = match catalog.create_resource(&population).await {
        Ok(resource) => resource,
        Err(catalog::Error::Conflict { .. }) => catalog.resource_by_code(POPULATION_CODE).await?,
        Err(e) => return Err(e.into()),
    };
    if catalog
        .active_grant(resource.id, ids["WJW"])
        .await?
        .is_none()
    {
        catalog
            .create_grant(&NewGrant {
                resource_id: resource.id,
                consumer_department_id: ids["WJW"],
                items: [
                    "id_number",
                    "name",
                    "gender",
                    "birth_date",
                    "region_code",
                    "address",
                    "phone",
                ]
                .map(String::from)
                .to_vec(),
                plain_items: vec!["id_number".into()],
                expires_at: None,
            })
            .await?;
    }
    let sqlite = |path: &std::path::Path, table: &str| json!({"kind": "sqlite", "path": path, "table": table});
    catalog
        .upsert_connector(&NewConnector {
            name: "gaj-hukou".into(),
            kind: "sqlite".into(),
            department_code: "GAJ".into(),
            resource_code: POPULATION_CODE.into(),
            config: json!({
                "source": sqlite(&sources.gongan, "hukou"),
                "mapping": {
                    "id_number": "sfzh", "name": "xm", "gender": "xb", "birth_date": "csrq",
                    "ethnicity": "mz", "region_code": "hjqh", "address": "hjdz", "phone": "lxdh"
                },
                "position_column": "id"
            }),
        })
        .await?;
    catalog
        .upsert_connector(&NewConnector {
            name: "mzj-jiuzhu".into(),
            kind: "sqlite".into(),
            department_code: "MZJ".into(),
            resource_code: POPULATION_CODE.into(),
            config: json!({
                "source": sqlite(&sources.minzheng, "jiuzhu_duixiang"),
                "mapping": {
                    "id_number": "shenfenzheng", "name": "xingming", "phone": "lianxidianhua",
                    "address": "juzhudizhi"
                },
                "position_column": "id"
            }),
        })
        .await?;
    Ok(())
}

/// One key per demo role; keys from an earlier demo run are revoked.
async fn issue_demo_keys(catalog: &Catalog) -> Result<serde_json::Value> {
    let roles: &[(&str, Role, Option<&str>)] = &[
        ("platform_admin", Role::PlatformAdmin, Some("DSJ")),
        ("provider_admin", Role::ProviderAdmin, Some("GAJ")),
        ("consumer_granted", Role::Consumer, Some("WJW")),
        ("consumer_ungranted", Role::Consumer, Some("RSJ")),
        ("open_data_developer", Role::OpenDataDeveloper, None),
    ];
    let mut keys = serde_json::Map::new();
    for (label, role, department) in roles {
        let name = format!("demo:{label}");
        policy::credentials::revoke_named(catalog, &name).await?;
        let department_id = match department {
            Some(code) => Some(catalog.department_by_code(code).await?.id),
            None => None,
        };
        let issued = policy::credentials::issue(catalog, &name, *role, department_id, None).await?;
        keys.insert((*label).to_string(), issued.key.into());
    }
    Ok(keys.into())
}

struct Bar(ProgressBar);

impl connectors::Progress for Bar {
    fn rows(&self, n: u64) {
        self.0.inc(n);
    }
}

/// Runs one connector with a progress bar and prints its outcome.
pub async fn sync_with_progress(
    catalog: &Catalog,
    libraries: &HashMap<&'static str, Arc<Library>>,
    connector: &Connector,
) -> Result<()> {
    let resource = catalog.resource_by_code(&connector.resource_code).await?;
    let library = resource
        .library
        .as_deref()
        .and_then(|name| libraries.get(name))
        .ok_or_else(|| Failure::msg(format!("resource {} has no library", resource.code)))?;
    let bar = ProgressBar::new_spinner().with_message(connector.name.clone());
    bar.set_style(
        ProgressStyle::with_template("  {spinner} {msg}: {human_pos} rows ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let outcome = connectors::run_connector(catalog, library, connector, &Bar(bar.clone())).await;
    bar.finish_and_clear();
    match outcome {
        Ok(run) => {
            let c = run.counts;
            println!(
                "  ✔ sync {}: {} read, {} new, {} updated, {} unchanged, {} quarantined → {} v{}",
                connector.name,
                c.read,
                c.inserted,
                c.updated,
                c.unchanged,
                c.rejected,
                resource.library.as_deref().unwrap_or_default(),
                run.library_version.unwrap_or_default()
            );
            Ok(())
        }
        Err(e) => {
            println!("  ✘ sync {} failed: {e}", connector.name);
            Err(e.into())
        }
    }
}

fn print_curl_examples(credentials: &serde_json::Value, path: &std::path::Path) {
    let base = credentials["base_url"].as_str().unwrap_or_default();
    let key = |k: &str| {
        credentials["keys"][k]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let id = credentials["sample_keys"]["population"][0]
        .as_str()
        .unwrap_or("11010519491231002X");
    let url = format!("{base}/api/v1/exchange/{POPULATION_CODE}/records");
    println!("\nCredentials and sample keys: {}", path.display());
    println!("\n# 卫健委 (granted): the record, L3/L4 items masked as granted");
    println!(
        "curl -s -H 'Authorization: Bearer {}' {url}/{id}",
        key("consumer_granted")
    );
    println!("# 人社局 (no grant): 403 no_grant");
    println!(
        "curl -s -H 'Authorization: Bearer {}' {url}/{id}",
        key("consumer_ungranted")
    );
    println!("# a wrong check character: 422 invalid_key");
    println!(
        "curl -s -H 'Authorization: Bearer {}' {url}/110105194912310021",
        key("consumer_granted")
    );
    println!("# no key: 401");
    println!("curl -s {url}/{id}");
    println!("# health");
    println!("curl -s {base}/health");
}
