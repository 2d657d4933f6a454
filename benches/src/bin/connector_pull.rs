//! Times a connector run from PostgreSQL into the population library, as a run really goes:
//! COPY out of the source, mapping, normalization and validation of every row, the Parquet
//! files and the Delta commit with the watermark, and the serving index brought up to date.
//!
//! ```sh
//! connector-pull full        --source postgres://…/bench --data-dir /var/tmp/pull
//! connector-pull incremental --source postgres://…/bench --data-dir /var/tmp/pull
//! ```
//!
//! `full` builds a fresh data dir (the demo's catalog, an empty library) and reads the whole
//! table `hukou`; `incremental` then reads only what changed since (cursor `updated_at`).
//! Prints one JSON line: rows, seconds, rows_per_s, peak_rss_mib, library_version, counts.
//! `benches/connector-pull/run.sh` runs it side by side with ConnectorX and `\copy`, passing
//! `HUITONG_BENCH_MODE`, `HUITONG_BENCH_PG_URL` and `HUITONG_BENCH_LIBRARY_DIR` instead of the
//! arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use huitong::demo::POPULATION_CODE;
use huitong::settings::Settings;
use serde_json::json;

/// The allocator `huitong sync` runs with: the pull is timed as the product runs it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn config(source: &str, mode: &str) -> serde_json::Value {
    json!({
        "source": {"kind": "postgres", "url": source, "table": "hukou"},
        "mapping": {
            "id_number": "sfzh", "name": "xm", "birth_date": "csrq", "ethnicity": "mz",
            "region_code": "hjqh", "address": "hjdz", "phone": "lxdh",
            "gender": {"column": "xb", "transforms": [{"code_table": {"codes": {"1": "男", "2": "女"}}}]}
        },
        "position_column": "id",
        "mode": mode,
        "cursor": {"column": "updated_at", "kind": "timestamp"},
        "schedule": "manual"
    })
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().collect();
    // Flags, or the environment benches/connector-pull/run.sh sets.
    let value = |flag: &str, env: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .or_else(|| std::env::var(env).ok())
    };
    let phase = args
        .get(1)
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .or_else(|| std::env::var("HUITONG_BENCH_MODE").ok());
    let source = value("--source", "HUITONG_BENCH_PG_URL");
    let dir = value("--data-dir", "HUITONG_BENCH_LIBRARY_DIR");
    let (Some(phase), Some(source), Some(dir)) = (phase, source, dir) else {
        eprintln!("usage: connector-pull full|incremental --source POSTGRES_URL --data-dir DIR");
        return ExitCode::from(2);
    };
    let mode = match phase.as_str() {
        "full" => "full",
        "incremental" => "incremental",
        other => {
            eprintln!("unknown phase {other}: full or incremental");
            return ExitCode::from(2);
        }
    };
    let dir = PathBuf::from(dir);
    if mode == "full" {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let settings = Settings {
        data_dir: dir,
        ..Settings::default()
    };
    let (catalog, libraries) = if mode == "full" {
        let demo = huitong::demo::prepare(&settings, 0, 7).await.expect("demo catalog");
        (demo.catalog, demo.libraries)
    } else {
        huitong::startup::open_stores(&settings).await.expect("data dir")
    };
    let connector = catalog
        .upsert_connector(&catalog::NewConnector {
            name: "bench-pg".into(),
            kind: "postgres".into(),
            department_code: "GAJ".into(),
            resource_code: POPULATION_CODE.into(),
            config: config(&source, mode),
        })
        .await
        .expect("connector");
    let library = &libraries.get("population").expect("population library");
    let started = Instant::now();
    tracing::debug!("run starts");
    let run = connectors::run_connector(&catalog, library, &connector, "cli", &connectors::NoProgress)
        .await
        .expect("run");
    let seconds = started.elapsed().as_secs_f64();
    let rows = run.counts.read;
    println!(
        "{}",
        json!({
            "phase": mode,
            "rows": rows,
            "seconds": seconds,
            "rows_per_s": rows as f64 / seconds,
            "peak_rss_mib": peak_rss_mib(),
            "library_version": run.library_version,
            "library_records": library.len().ok(),
            "counts": run.counts,
        })
    );
    ExitCode::SUCCESS
}
