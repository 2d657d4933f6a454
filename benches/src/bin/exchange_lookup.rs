//! The exchange lookup benchmark's two servers and its data.
//!
//! ```sh
//! exchange-lookup prepare --data-dir DIR --rows 10000000   # demo catalog + N-row population library
//! exchange-lookup bare --port 18081 --body FILE            # the baseline: actix-web, one constant record
//! ```
//!
//! `prepare` builds the demo (catalog, grants, keys) in DIR, then appends synthetic people to the
//! population library until it holds `--rows` records, and writes `DIR/bench-keys.txt` (100,000
//! keys present in the library, one per line) and `DIR/bench.json` (the granted consumer's key).
//! Run again, it reuses what is there.
//!
//! `bare` serves `GET /api/v1/exchange/{resource_code}/records/{key}` with the bytes of FILE and
//! nothing else — no authentication, policy, masking, quota or audit — on as many workers as
//! `huitong serve`. `benches/exchange-lookup/run.sh` loads both with the same wrk script.

use huitong_benches::flag;
use std::path::PathBuf;
use std::process::ExitCode;

use huitong::settings::Settings;
use huitong_benches::synthetic::{person, record};

/// The allocator `huitong` runs with, so both servers allocate alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Builds the demo in `data_dir` and fills the population library up to `rows` records with
/// synthetic people (their ID numbers are distinct up to 26.88M).
async fn prepare(data_dir: PathBuf, rows: u64) -> Result<(), String> {
    let settings = Settings {
        data_dir: data_dir.clone(),
        ..Settings::default()
    };
    let demo = huitong::demo::prepare(&settings, 20_000, 20_161_205)
        .await
        .map_err(|e| e.to_string())?;
    let library = demo.libraries.get("population").expect("population library");
    let have = library.len().map_err(|e| e.to_string())?;
    if have < rows {
        let started = std::time::Instant::now();
        let mut writer = library
            .writer("bench", 0, exchange_core::Authority::all(library.schema()))
            .await
            .map_err(|e| e.to_string())?;
        let need = rows - have;
        for n in 0..need {
            writer.upsert(record(n)).map_err(|e| e.to_string())?;
            if n % 32_768 == 0 {
                writer.flush_if_full().await.map_err(|e| e.to_string())?;
            }
            if n % 1_000_000 == 0 && n > 0 {
                eprintln!("  {n} rows written ({:.0} s)", started.elapsed().as_secs_f64());
            }
        }
        writer.commit("bench-prepare", 0).await.map_err(|e| e.to_string())?;
        eprintln!(
            "  population: {} records ({:.0} s)",
            library.len().map_err(|e| e.to_string())?,
            started.elapsed().as_secs_f64()
        );
    }
    // Synthetic people 0..(total - the demo's ~20,000) are present; sample them evenly.
    let total = library.len().map_err(|e| e.to_string())?;
    let synthetic = total.saturating_sub(30_000);
    let mut keys = String::new();
    let step = (synthetic / 100_000).max(1);
    for i in 0..100_000u64.min(synthetic) {
        keys.push_str(&person(i * step));
        keys.push('\n');
    }
    std::fs::write(data_dir.join("bench-keys.txt"), keys).map_err(|e| e.to_string())?;
    // The load comes from a consumer system of its own department under its own grant — the
    // demo grant's items, masked alike, with quotas that are checked on every call but set
    // above the load (the demo grant allows 50 calls/s).
    let catalog = &demo.catalog;
    let department = catalog
        .upsert_department("BENCH", "压测系统所在部门", None)
        .await
        .map_err(|e| e.to_string())?;
    let resource = catalog
        .resource_by_code(huitong::demo::POPULATION_CODE)
        .await
        .map_err(|e| e.to_string())?;
    let demo_grant = catalog
        .grant_for(
            resource.id,
            catalog.department_by_code("WJW").await.map_err(|e| e.to_string())?.id,
        )
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the demo holds no WJW grant")?;
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
                items: demo_grant.items.clone(),
                plain_items: demo_grant.plain_items.clone(),
                expires_at: None,
                demand_id: demo_grant.demand_id,
                row_filter: None,
                quota_per_second: Some(10_000_000.0),
                quota_per_day: Some(100_000_000_000),
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    let key = policy::credentials::issue(
        catalog,
        "bench consumer",
        policy::Role::Consumer,
        Some(department.id),
        None,
    )
    .await
    .map_err(|e| e.to_string())?
    .key;
    let bench = serde_json::json!({
        "consumer_key": key,
        "resource_code": huitong::demo::POPULATION_CODE,
        "records": total,
    });
    std::fs::write(data_dir.join("bench.json"), bench.to_string()).map_err(|e| e.to_string())?;
    println!("{bench}");
    Ok(())
}

async fn bare(port: u16, body: Vec<u8>) -> std::io::Result<()> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let body = web::Bytes::from(body);
    HttpServer::new(move || {
        let body = body.clone();
        App::new().route(
            "/api/v1/exchange/{resource_code}/records/{key}",
            web::get().to(move || {
                let body = body.clone();
                async move { HttpResponse::Ok().content_type("application/json").body(body) }
            }),
        )
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("prepare") => {
            let Some(dir) = flag(&args, "--data-dir") else {
                eprintln!("prepare needs --data-dir");
                return ExitCode::from(2);
            };
            let rows = flag(&args, "--rows").and_then(|r| r.parse().ok()).unwrap_or(10_000_000);
            tokio::runtime::Runtime::new()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(prepare(PathBuf::from(dir), rows)))
        }
        Some("bare") => {
            let port = flag(&args, "--port").and_then(|p| p.parse().ok()).unwrap_or(18_081);
            let Some(body) = flag(&args, "--body").and_then(|f| std::fs::read(f).ok()) else {
                eprintln!("bare needs --body FILE (a response of the real server)");
                return ExitCode::from(2);
            };
            actix_web::rt::System::new()
                .block_on(bare(port, body))
                .map_err(|e| e.to_string())
        }
        _ => {
            eprintln!("usage: exchange-lookup prepare --data-dir DIR [--rows N] | bare --port P --body FILE");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exchange-lookup: {e}");
            ExitCode::FAILURE
        }
    }
}
