//! The CSV export benchmark's data: a population library of N records in a catalog where the
//! population resource is shared in bulk (库表), so that it may be exported.
//!
//! ```sh
//! csv-export prepare --data-dir DIR --rows 10000000
//! ```
//!
//! `prepare` builds the demo (catalog, grants, keys) in DIR, appends synthetic people to the
//! population library until it holds `--rows` records, sets the population resource's share
//! method to 库表 (bulk), and gives two consumer systems of their own departments a grant of every
//! item: one with every item plain (masking off), one with none plain (masking on: every item
//! whose sensitivity masks by default is masked). It writes `DIR/bench.json` with both keys,
//! the resource code, the record count, the items in export order and the Delta table's
//! directory. `benches/csv-export/run.sh` exports over HTTP against DuckDB reading the table's
//! Parquet files.

use huitong_benches::flag;
use std::path::PathBuf;
use std::process::ExitCode;

use huitong::settings::Settings;

/// A consumer key of department `code`, which holds a grant of every item of `resource`, those
/// in `plain` unmasked.
async fn consumer(
    catalog: &catalog::Catalog,
    code: &str,
    name: &str,
    resource: &catalog::Resource,
    demand_id: Option<i64>,
    plain: &[String],
) -> Result<String, String> {
    let department = catalog
        .upsert_department(code, name, None)
        .await
        .map_err(|e| e.to_string())?;
    if catalog
        .grant_for(resource.id, department.id)
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        catalog
            .create_grant(&catalog::NewGrant {
                resource_id: resource.id,
                consumer_department_id: department.id,
                items: resource.meta.items.iter().map(|i| i.name.clone()).collect(),
                plain_items: plain.to_vec(),
                expires_at: None,
                demand_id,
                row_filter: None,
                quota_per_second: Some(10_000_000.0),
                quota_per_day: Some(100_000_000_000),
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(
        policy::credentials::issue(catalog, name, policy::Role::Consumer, Some(department.id), None)
            .await
            .map_err(|e| e.to_string())?
            .key,
    )
}

async fn prepare(data_dir: PathBuf, rows: u64) -> Result<(), String> {
    let settings = Settings {
        data_dir: data_dir.clone(),
        ..Settings::default()
    };
    let demo = huitong::demo::prepare(&settings, 20_000, 20_161_205)
        .await
        .map_err(|e| e.to_string())?;
    let library = demo.libraries.get("population").expect("population library");
    let total = huitong_benches::synthetic::fill(&library, rows).await?;
    let catalog = &demo.catalog;
    let code = huitong::demo::POPULATION_CODE;
    let mut resource = catalog.resource_by_code(code).await.map_err(|e| e.to_string())?;
    if resource.meta.share_method != exchange_core::ShareMethod::Bulk {
        resource.meta.share_method = exchange_core::ShareMethod::Bulk;
        resource = catalog
            .update_resource("bench", code, &resource.meta)
            .await
            .map_err(|e| e.to_string())?;
    }
    // The grants answer the demo's WJW demand, as the exchange lookup benchmark's does.
    let demand_id = catalog
        .grant_for(
            resource.id,
            catalog.department_by_code("WJW").await.map_err(|e| e.to_string())?.id,
        )
        .await
        .map_err(|e| e.to_string())?
        .and_then(|g| g.demand_id);
    let every: Vec<String> = resource.meta.items.iter().map(|i| i.name.clone()).collect();
    let plain_key = consumer(catalog, "BENCHP", "导出压测（明文）", &resource, demand_id, &every).await?;
    let masked_key = consumer(catalog, "BENCHM", "导出压测（脱敏）", &resource, demand_id, &[]).await?;
    let bench = serde_json::json!({
        "plain_key": plain_key,
        "masked_key": masked_key,
        "resource_code": code,
        "records": total,
        "columns": every,
        "table_dir": data_dir.join("libraries").join("population").join("table"),
    });
    std::fs::write(data_dir.join("bench.json"), bench.to_string()).map_err(|e| e.to_string())?;
    println!("{bench}");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some("prepare"), Some(dir)) = (args.get(1).map(String::as_str), flag(&args, "--data-dir")) else {
        eprintln!("usage: csv-export prepare --data-dir DIR [--rows N]");
        return ExitCode::from(2);
    };
    let rows = flag(&args, "--rows").and_then(|r| r.parse().ok()).unwrap_or(10_000_000);
    let result = tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(prepare(PathBuf::from(dir), rows)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("csv-export: {e}");
            ExitCode::FAILURE
        }
    }
}
