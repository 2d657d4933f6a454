//! Upserts against appends on a large library (issue 5, "Upserts by key").
//!
//! ```sh
//! library-upsert --data-dir DIR [--rows 10000000] [--batch 1000000] [--rounds 3]
//! ```
//!
//! Builds (or reuses) a population library of `--rows` synthetic people in DIR, then, in one
//! run and alternating, times two writes of `--batch` rows each, `--rounds` times:
//!
//! - **append**: one writer run of `--batch` people the library does not hold, committed;
//! - **upsert**: one writer run of `--batch` people it holds (spread over the whole library),
//!   each with a changed address, committed.
//!
//! Each timing covers the whole write as a connector run does it: the writer (lock, table and
//! index snapshot), the merge against the current records, the Parquet files, the Delta commit
//! and the serving index brought up to the new version. It prints both times, rows/s, the
//! median ratio upsert/append and the peak RSS of the measured rounds, and exits 3 when the
//! ratio is above 2.

use huitong_benches::flag;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use exchange_core::schema::POPULATION;
use exchange_core::{Library, Upsert};
use huitong_benches::synthetic::{CAPACITY, record};

/// The allocator `huitong` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The target: an upsert of changed rows takes at most this many times an append of as many.
const TARGET_RATIO: f64 = 2.0;

fn number(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match flag(args, name) {
        None => Ok(default),
        Some(v) => v
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{name}: {v:?} is not a number")),
    }
}

/// Peak resident set size so far, from `/proc/self/status` (VmHWM), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Resets the peak RSS to the current RSS (Linux: `5` into `/proc/self/clear_refs`), so the
/// peak reported covers the measured rounds, not the build of the library.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Which write a timing is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Append,
    Upsert,
}

/// One timed writer run: `rows` rows made by `row(i)`, committed; the stats must show each row
/// as `expected`.
async fn timed_write(
    library: &Library,
    run: i64,
    rows: u64,
    expected: Upsert,
    row: impl Fn(u64) -> Vec<Option<String>>,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut writer = library
        .writer("bench", run, exchange_core::Authority::all(library.schema()))
        .await
        .map_err(|e| e.to_string())?;
    for i in 0..rows {
        let outcome = writer.upsert(row(i)).map_err(|e| e.to_string())?;
        if outcome != expected {
            return Err(format!("row {i} of run {run}: {outcome:?}, expected {expected:?}"));
        }
        if i % 1024 == 0 {
            writer.flush_if_full().await.map_err(|e| e.to_string())?;
        }
    }
    writer.commit("bench-upsert", run).await.map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

async fn run(data_dir: PathBuf, rows: u64, batch: u64, rounds: u64) -> Result<bool, String> {
    let library = Library::open(&data_dir, &POPULATION).await.map_err(|e| e.to_string())?;
    // Synthetic people 0..len are present (a reused dir also holds earlier runs' appends).
    let have = library.len().map_err(|e| e.to_string())?;
    if have < rows {
        let started = Instant::now();
        eprintln!("building the population library: {have} → {rows} records");
        let mut writer = library
            .writer("bench", 0, exchange_core::Authority::all(library.schema()))
            .await
            .map_err(|e| e.to_string())?;
        for n in have..rows {
            writer.upsert(record(n)).map_err(|e| e.to_string())?;
            if n % 1024 == 0 {
                writer.flush_if_full().await.map_err(|e| e.to_string())?;
            }
            if n % 1_000_000 == 0 && n > have {
                eprintln!("  {n} rows written ({:.0} s)", started.elapsed().as_secs_f64());
            }
        }
        writer.commit("bench-prepare", 0).await.map_err(|e| e.to_string())?;
        eprintln!("  built in {:.0} s", started.elapsed().as_secs_f64());
    }
    let population = library.len().map_err(|e| e.to_string())?;
    if population + rounds * batch > CAPACITY {
        return Err(format!(
            "the library holds {population} records: no room for {rounds} × {batch} new synthetic people; \
             start from an empty --data-dir"
        ));
    }
    let step = (rows / batch).max(1);
    // Values no earlier run wrote, so every upserted row changes its record.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let peak_reset = reset_peak_rss();
    println!(
        "library: {population} records (synthetic people 0..{population}); {rounds} rounds of {batch} rows each, alternating"
    );
    let mut appends = Vec::new();
    let mut upserts = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a warmer cache.
        let order = if round % 2 == 0 {
            [Kind::Append, Kind::Upsert]
        } else {
            [Kind::Upsert, Kind::Append]
        };
        let mut times = [Duration::ZERO; 2];
        for kind in order {
            let run = (stamp as i64) * 100 + (round as i64) * 2 + i64::from(kind == Kind::Upsert);
            let elapsed = match kind {
                Kind::Append => {
                    let first = population + round * batch;
                    timed_write(&library, run, batch, Upsert::Inserted, |i| record(first + i)).await?
                }
                Kind::Upsert => {
                    timed_write(&library, run, batch, Upsert::Updated, |i| {
                        let n = (i * step + round) % rows;
                        let mut values = record(n);
                        values[6] = Some(format!(
                            "浙江省杭州市西湖区文一西路{}号(迁入 {stamp}-{round})",
                            n % 999 + 1
                        ));
                        values
                    })
                    .await?
                }
            };
            times[usize::from(kind == Kind::Upsert)] = elapsed;
            println!(
                "  round {} {:<6} {:>8.2} s {:>10.0} rows/s",
                round + 1,
                if kind == Kind::Append { "append" } else { "upsert" },
                elapsed.as_secs_f64(),
                batch as f64 / elapsed.as_secs_f64()
            );
        }
        let [append, upsert] = times;
        appends.push(append.as_secs_f64());
        upserts.push(upsert.as_secs_f64());
        ratios.push(upsert.as_secs_f64() / append.as_secs_f64());
    }
    let ratio = median(&ratios);
    let (append, upsert) = (median(&appends), median(&upserts));
    println!();
    println!("| write of {batch} rows | median s | rows/s | rounds (s) |");
    println!("|---|---:|---:|---|");
    let fmt = |v: &[f64]| v.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(" / ");
    println!(
        "| append (new keys) | {append:.2} | {:.0} | {} |",
        batch as f64 / append,
        fmt(&appends)
    );
    println!(
        "| upsert (existing keys, changed) | {upsert:.2} | {:.0} | {} |",
        batch as f64 / upsert,
        fmt(&upserts)
    );
    println!(
        "ratio upsert/append, median of the rounds' ratios: {ratio:.2} (rounds {}; target ≤ {TARGET_RATIO})",
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" / ")
    );
    match peak_rss_mib() {
        Some(mib) if peak_reset => println!("peak RSS during the rounds: {mib} MiB"),
        Some(mib) => println!("peak RSS of the process (including the build): {mib} MiB"),
        None => println!("peak RSS: not available"),
    }
    println!(
        "library after the run: {} records, version {}",
        library.len().map_err(|e| e.to_string())?,
        library.version().map_err(|e| e.to_string())?
    );
    Ok(ratio <= TARGET_RATIO)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = flag(&args, "--data-dir") else {
        eprintln!("usage: library-upsert --data-dir DIR [--rows 10000000] [--batch 1000000] [--rounds 3]");
        return ExitCode::from(2);
    };
    let parsed = (|| {
        let rows = number(&args, "--rows", 10_000_000)?;
        let batch = number(&args, "--batch", (rows / 10).max(1))?;
        let rounds = number(&args, "--rounds", 3)?;
        if rows == 0 || batch == 0 || rounds == 0 || batch > rows {
            return Err("--rows, --batch and --rounds must be positive, --batch at most --rows".to_string());
        }
        Ok((rows, batch, rounds))
    })();
    let (rows, batch, rounds) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("library-upsert: {e}");
            return ExitCode::from(2);
        }
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(run(PathBuf::from(dir), rows, batch, rounds)));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("library-upsert: target missed (upsert/append above {TARGET_RATIO})");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("library-upsert: {e}");
            ExitCode::FAILURE
        }
    }
}
