//! Point lookups in a library's serving index, without HTTP: the index's part of an exchange
//! lookup (issue 6).
//!
//! ```sh
//! index-lookup --data-dir DIR --keys FILE [--lookups 2000000] [--rounds 3]
//! ```
//!
//! Opens the population library of DIR (a data dir `benches/exchange-lookup/run.sh` prepared;
//! no server may be running on it), reads the keys of FILE (one per line), looks each up once
//! (the page cache then holds their blocks, as under a long load), then times `--lookups`
//! lookups of keys drawn at random from the file (a fixed seed), on one thread, `--rounds`
//! times. Each lookup borrows the record and reads its version and key, as the exchange
//! handler does before projecting it; the time includes decoding the record's values (a
//! `Vec` of borrowed strings) and fetching the key from the drawn list. Prints the time per
//! lookup of each round.

use huitong_benches::flag;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use exchange_core::Library;
use exchange_core::schema::POPULATION;

/// The allocator `huitong` runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn run(args: &[String]) -> Result<(), String> {
    let data_dir = PathBuf::from(flag(args, "--data-dir").ok_or("--data-dir is required")?);
    let keys_file = flag(args, "--keys").ok_or("--keys is required")?;
    let number = |name: &str, default: usize| -> Result<usize, String> {
        flag(args, name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{name}: {v:?} is not a number"))
        })
    };
    let (lookups, rounds) = (number("--lookups", 2_000_000)?, number("--rounds", 3)?);
    if lookups == 0 {
        return Err("--lookups must be at least 1".into());
    }
    let keys: Vec<String> = std::fs::read_to_string(&keys_file)
        .map_err(|e| format!("{keys_file}: {e}"))?
        .lines()
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err(format!("{keys_file} holds no key"));
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let library = runtime
        .block_on(Library::open(&data_dir, &POPULATION))
        .map_err(|e| format!("opening the population library in {}: {e}", data_dir.display()))?;
    let lookup = |key: &str| -> Result<usize, String> {
        library
            .get_with(key, |record| {
                record.map_or(0, |r| r.version as usize + r.values[0].map_or(0, str::len))
            })
            .map_err(|e| e.to_string())
    };
    let mut found = 0;
    for key in &keys {
        found += usize::from(lookup(key)? > 0);
    }
    println!("{} keys, {found} found; {lookups} random lookups a round", keys.len());
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let order: Vec<usize> = (0..lookups)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % keys.len() as u64) as usize
        })
        .collect();
    for round in 1..=rounds {
        let started = Instant::now();
        let mut sum = 0;
        for &i in &order {
            sum += lookup(&keys[i])?;
        }
        let ns = started.elapsed().as_nanos() as f64 / lookups as f64;
        println!("round {round}: {ns:.0} ns a lookup (checksum {sum})");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("index-lookup: {e}");
            ExitCode::FAILURE
        }
    }
}
