//! # huitong-benches
//!
//! Huitong's benchmarks, each a binary that prints its figures and exits non-zero when a
//! target is missed, so a script can check it (see docs/benchmarks.md for the figures and the
//! commands that produced them):
//!
//! - `catalog-latency`: catalog list and search over HTTP on 1,000 resources × 20 data items,
//!   metadata DB on the embedded default (SQLite); target p99 < 20 ms.
//!
//! - `connector-pull`: a PostgreSQL table into a library, against ConnectorX.
//! - `csv-export`: the data of the CSV export benchmark (a 10M-record library shared in bulk);
//!   `benches/csv-export/run.sh` exports it over HTTP against DuckDB's `COPY … TO` CSV.
//! - `exchange-lookup`: `GET records/{key}` at 10M records, against a bare actix-web handler.
//! - `index-lookup`: point lookups in a prepared data dir's population index, without HTTP.
//! - `library-upsert`: upserting 1M changed records into a 10M-record library, against
//!   appending 1M new ones; target at most 2×.
//!
//! [`synthetic`] is the population generator the library benchmarks share.

pub mod synthetic;

/// The value after `name` in a command line (`--rows 1000`), if it is there.
pub fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Percentiles of a set of latencies in microseconds: (p50, p99, max).
pub fn percentiles(samples: &mut [u64]) -> (u64, u64, u64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.50), at(0.99), *samples.last().unwrap_or(&0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_pick_the_rank() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(super::percentiles(&mut samples), (50, 99, 100));
    }
}
