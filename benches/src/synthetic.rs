//! Synthetic people for the library benchmarks, deterministic from their number: person `n`
//! always has the same ID number and record, so a benchmark can build a library once and find
//! its keys again on the next run.

use exchange_core::id_number::check_character;

/// Distinct ID numbers [`person`] can make.
pub const CAPACITY: u64 = 26_880_000;

/// A valid citizen ID number for synthetic person `n`, unlike any the demo generates (region
/// 330106, 西湖区, born 1930–2009); distinct for `n` below [`CAPACITY`].
pub fn person(n: u64) -> String {
    let year = 1930 + n % 80;
    let month = 1 + (n / 80) % 12;
    let day = 1 + (n / 960) % 28;
    let seq = (n / 26_880) % 1000;
    let first17 = format!("330106{year:04}{month:02}{day:02}{seq:03}");
    let check = check_character(first17.as_bytes());
    format!("{first17}{check}")
}

const SURNAMES: [&str; 12] = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙"];
const GIVEN: [&str; 10] = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰"];

/// The population record of person `n`, in schema order (the fields after the phone empty).
pub fn record(n: u64) -> Vec<Option<String>> {
    let id = person(n);
    let gender = if id.as_bytes()[16] % 2 == 1 { "男" } else { "女" };
    let birth = format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]);
    let mut values = vec![
        Some(id),
        Some(format!(
            "{}{}{}",
            SURNAMES[(n % 12) as usize],
            GIVEN[(n / 12 % 10) as usize],
            GIVEN[(n / 120 % 10) as usize]
        )),
        Some(gender.into()),
        Some(birth),
        Some("汉族".into()),
        Some("330106".into()),
        Some(format!("浙江省杭州市西湖区文三路{}号{}室", n % 999 + 1, n % 37 + 101)),
        Some(format!("139{:08}", n % 100_000_000)),
    ];
    values.resize(exchange_core::schema::POPULATION.fields.len(), None);
    values
}

/// Appends synthetic people 0, 1, … to `library` through the library writer (the same Parquet
/// files, Delta commit and serving index as a connector run) until it holds `rows` records;
/// returns how many it holds then.
pub async fn fill(library: &exchange_core::Library, rows: u64) -> Result<u64, String> {
    let have = library.len().map_err(|e| e.to_string())?;
    if have < rows {
        let started = std::time::Instant::now();
        let mut writer = library
            .writer("bench", 0, exchange_core::Authority::all(library.schema()))
            .await
            .map_err(|e| e.to_string())?;
        for n in 0..rows - have {
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
            "  {} rows written in {:.0} s",
            rows - have,
            started.elapsed().as_secs_f64()
        );
    }
    library.len().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn people_are_valid_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..100_000).map(super::person).collect();
        assert_eq!(ids.len(), 100_000);
        for id in ids.iter().take(1000) {
            assert!(exchange_core::IdNumber::parse(id).is_ok(), "{id}");
        }
    }
}
