//! `huitong demo`: a working platform from nothing, on generated departmental data.

pub mod bases;
pub mod generate;
pub mod seed;
pub mod themes;

pub use seed::{BASE_RESOURCES, CREDIT_CODE, LEGAL_ENTITY_CODE, LICENSE_CODE, POPULATION_CODE, SPATIAL_CODE};

use std::process::ExitCode;
use std::time::Duration;

use catalog::{Catalog, Connector, NewConnector};
use indicatif::{ProgressBar, ProgressStyle};
use policy::Role;
use serde_json::json;

use crate::cli::DemoArgs;
use crate::libraries::Libraries;
use crate::settings::Settings;
use crate::startup::{Application, open_stores};
use crate::{Failure, Result};

/// What a prepared demo hands to the server and to scripts.
pub struct PreparedDemo {
    /// The metadata DB.
    pub catalog: Catalog,
    /// The open libraries.
    pub libraries: Libraries,
    /// Keys by demo role (`consumer_granted`, …).
    pub keys: serde_json::Value,
    /// A few keys present in each library, by library name.
    pub sample_keys: std::collections::BTreeMap<String, Vec<String>>,
    /// The resource serving each library (base and themed), by library name.
    pub resource_codes: std::collections::BTreeMap<String, String>,
}

/// Generates (or reuses) the sources, seeds the catalog, syncs every connector and issues the
/// demo keys; prints progress. Safe to run again on the same data dir.
pub async fn prepare(settings: &Settings, rows: usize, seed: u64) -> Result<PreparedDemo> {
    prepare_day(settings, rows, seed, false).await.map(|(demo, _)| demo)
}

/// [`prepare`], first applying the next day of changes to the sources when `next_day` (see
/// [`generate::next_day`]); returns what changed.
pub async fn prepare_day(
    settings: &Settings,
    rows: usize,
    seed: u64,
    next_day: bool,
) -> Result<(PreparedDemo, Option<generate::NextDay>)> {
    let data_dir = settings.data_dir.clone();
    std::fs::create_dir_all(&data_dir)?;
    println!("汇通 Huitong demo — data dir {}", data_dir.display());
    let sources = generate::ensure_sources(&data_dir.join("sources"), rows, seed).await?;
    println!(
        "  departmental sources: {} (户籍 {} rows), {}, {}, {}",
        sources.gongan.display(),
        sources.rows,
        sources.minzheng.display(),
        sources.weijian.display(),
        sources.renshe.display()
    );
    let day = if next_day {
        let day = generate::next_day(&sources).await?;
        println!(
            "  next day: {} moved, {} left the register, {} born",
            day.moved.len(),
            day.removed.len(),
            day.born.len()
        );
        Some(day)
    } else {
        None
    };
    let (catalog, libraries) = open_stores(settings).await?;
    if seed::seed_catalog(&catalog).await? {
        println!("  catalog seeded: departments, resources, demands, responsibility lists");
    }
    seed_connectors(&catalog, &sources).await?;
    for connector in catalog.connectors().await? {
        sync_with_progress(&catalog, &libraries, &connector).await?;
    }
    let keys = issue_demo_keys(&catalog).await?;
    let mut sample_keys = sources.bases.sample_keys.clone();
    sample_keys.insert("population".into(), sources.sample_ids.clone());
    let mut resource_codes: std::collections::BTreeMap<String, String> = BASE_RESOURCES
        .iter()
        .map(|(code, schema)| (schema.name.to_string(), code.to_string()))
        .collect();
    for (code, library, keys) in themes::build(&catalog, &libraries, &data_dir).await? {
        resource_codes.insert(library.to_string(), code.to_string());
        sample_keys.insert(library.to_string(), keys);
    }
    Ok((
        PreparedDemo {
            catalog,
            libraries,
            keys,
            sample_keys,
            resource_codes,
        },
        day,
    ))
}

/// The content of `demo-credentials.json`.
pub fn credentials_json(base_url: &str, demo: &PreparedDemo) -> serde_json::Value {
    json!({
        "base_url": base_url,
        "keys": demo.keys,
        "resource_codes": demo.resource_codes,
        "sample_keys": demo.sample_keys,
    })
}

/// `huitong demo`: prepares the demo, writes demo-credentials.json, prints curl commands, and
/// serves unless `--no-serve`.
pub async fn run(mut settings: Settings, args: DemoArgs) -> Result<ExitCode> {
    settings.set_port(args.port);
    let (demo, _) = prepare_day(&settings, args.rows, args.seed, args.next_day).await?;
    let app = if args.no_serve {
        None
    } else {
        Some(Application::build_with(&settings, demo.catalog.clone(), demo.libraries.clone()).await?)
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

/// The connectors of the two departmental sources, bound to the population resource.
async fn seed_connectors(catalog: &Catalog, sources: &generate::Sources) -> Result<()> {
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
    catalog
        .upsert_connector(&NewConnector {
            name: "wjw-qianyue".into(),
            kind: "csv".into(),
            department_code: "WJW".into(),
            resource_code: POPULATION_CODE.into(),
            config: json!({
                "source": {"kind": "csv", "path": sources.weijian, "encoding": "auto"},
                "mapping": {"id_number": "身份证号", "name": "姓名", "phone": "联系电话"},
                "position_column": "编号"
            }),
        })
        .await?;
    catalog
        .upsert_connector(&NewConnector {
            name: "rsj-canbao".into(),
            kind: "xlsx".into(),
            department_code: "RSJ".into(),
            resource_code: POPULATION_CODE.into(),
            config: json!({
                "source": {"kind": "xlsx", "path": sources.renshe, "sheet": "参保人员", "header_row": 2},
                "mapping": {
                    "id_number": "社会保障号码", "name": "姓名",
                    "gender": {"column": "性别", "transforms": [{"code_table": {"codes": {"1": "男", "2": "女"}}}]},
                    "birth_date": {"column": "出生日期", "transforms": [{"date": {"format": "%Y%m%d"}}]}
                }
            }),
        })
        .await?;
    let bases = &sources.bases;
    let base_connectors = [
        (
            "scjgj-qiye",
            "SCJGJ",
            LEGAL_ENTITY_CODE,
            sqlite(&bases.shichang, "qiye_dengji"),
            json!({
                "uscc": "tyshxydm", "name": "qymc", "entity_type": "ztlx", "legal_rep_name": "fddbr",
                "legal_rep_id": "fddbrsfzh", "registered_capital": "zczb", "established": "clrq",
                "region_code": "zsqh", "address": "zs", "business_scope": "jyfw", "industry_code": "hydm",
                "status": "djzt"
            }),
        ),
        (
            "fgw-xinyong",
            "FGW",
            CREDIT_CODE,
            sqlite(&bases.xinyong, "xinyong_jilu"),
            json!({
                "record_id": "jlbh", "subject_id": "ztdm", "subject_name": "ztmc", "record_type": "jllx",
                "authority": "rdjg", "decision_date": "jdrq", "valid_until": "yxqz", "content": "nr"
            }),
        ),
        (
            "dsj-zhengzhao",
            "DSJ",
            LICENSE_CODE,
            sqlite(&bases.zhengzhao, "dianzi_zhengzhao"),
            json!({
                "license_type": "zzlxdm", "license_no": "zzbh", "license_name": "zzmc", "holder_id": "czztdm",
                "holder_name": "czztmc", "issuer": "fzjg", "issue_date": "fzrq", "valid_until": "yxqz",
                "status": "zzzt"
            }),
        ),
        (
            "zrzyj-dizhi",
            "ZRZYJ",
            SPATIAL_CODE,
            sqlite(&bases.dizhi, "biaozhun_dizhi"),
            json!({
                "address_id": "dzbm", "address": "bzdz", "region_code": "xzqh", "place_name": "dm",
                "longitude": "jd", "latitude": "wd", "crs": "zbx", "parcel_id": "zddm"
            }),
        ),
    ];
    for (name, department, resource, source, mapping) in base_connectors {
        catalog
            .upsert_connector(&NewConnector {
                name: name.into(),
                kind: "sqlite".into(),
                department_code: department.into(),
                resource_code: resource.into(),
                config: json!({"source": source, "mapping": mapping, "position_column": "id"}),
            })
            .await?;
    }
    for (code, connector) in [
        (POPULATION_CODE, "gaj-hukou"),
        (LEGAL_ENTITY_CODE, "scjgj-qiye"),
        (CREDIT_CODE, "fgw-xinyong"),
        (LICENSE_CODE, "dsj-zhengzhao"),
        (SPATIAL_CODE, "zrzyj-dizhi"),
    ] {
        let resource = catalog.resource_by_code(code).await?;
        if resource.meta.connector.is_none() {
            let mut input = resource.meta.clone();
            input.connector = Some(connector.into());
            catalog.update_resource("demo seed", code, &input).await?;
        }
    }
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
        ("reviewer", Role::Reviewer, Some("DSJ")),
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

/// A progress bar on a terminal; elsewhere (logs, pipes) a line every 100,000 rows.
struct Bar(ProgressBar, std::sync::atomic::AtomicU64);

impl connectors::Progress for Bar {
    fn rows(&self, n: u64) {
        self.0.inc(n);
        let before = self.1.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        if (before + n) / 100_000 > before / 100_000 {
            tracing::info!(rows = before + n, "sync progress");
        }
    }

    fn retrying(&self, attempt: u32, wait: Duration, error: &connectors::Error) {
        self.0.println(format!(
            "  ↻ source unreachable ({error}); attempt {} in {:.1} s",
            attempt + 1,
            wait.as_secs_f64()
        ));
    }
}

/// Runs one connector with a progress bar and prints its outcome.
pub async fn sync_with_progress(catalog: &Catalog, libraries: &Libraries, connector: &Connector) -> Result<()> {
    let resource = catalog.resource_by_code(&connector.resource_code).await?;
    let library = resource
        .meta
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
    let outcome = connectors::run_connector(
        catalog,
        &library,
        connector,
        "cli",
        &Bar(bar.clone(), Default::default()),
    )
    .await;
    bar.finish_and_clear();
    if outcome.is_ok() {
        crate::quality::after_commit(catalog, libraries, connector).await;
    }
    match outcome {
        Ok(run) => {
            let c = run.counts;
            println!(
                "  ✔ sync {}: {} read, {} new, {} updated, {} unchanged, {} deleted, {} quarantined → {} v{}",
                connector.name,
                c.read,
                c.inserted,
                c.updated,
                c.unchanged,
                c.deleted,
                c.rejected,
                resource.meta.library.as_deref().unwrap_or_default(),
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
    let key = |k: &str| credentials["keys"][k].as_str().unwrap_or_default().to_string();
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
    println!("# open data (anonymous): 法人 as CSV for Excel, and through the CKAN API");
    println!("curl -s -o legal_entity.csv '{base}/open/v1/datasets/{LEGAL_ENTITY_CODE}/download?format=csv&bom=true'");
    println!("curl -s '{base}/api/3/action/package_search?q=%E4%BF%A1%E7%94%A8'");
    println!("\n# in a browser: the open-data portal {base}/ and the console {base}/console");
    println!(
        "# (log in to the console with the platform_admin key {}, or provider_admin for 市公安局)",
        key("platform_admin")
    );
}
