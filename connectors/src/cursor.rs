//! Incremental reads: a cursor column (an increasing id, or an update time) and the watermark
//! a run starts from.

use chrono::NaiveDateTime;
use exchange_core::normalize::EPOCH;
use serde::{Deserialize, Serialize};

/// What a run asks of its source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadRequest {
    /// Incremental runs: only rows whose cursor is at or past the watermark are needed. A
    /// source that can filter (SQL, an HTTP API with a `since` parameter) does; the engine drops
    /// older rows in any case.
    pub since: Option<Since>,
    /// The source columns the connector's mapping reads. Sources of schemaless records (JSON)
    /// produce exactly these columns, null where a record lacks one; table sources may ignore
    /// it and produce every column.
    pub columns: Vec<String>,
}

/// The cursor and where the last committed run left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The source column holding the cursor.
    pub column: String,
    /// How its values compare.
    pub kind: CursorKind,
    /// The highest cursor value of the last committed run. Rows *equal* to it are read again:
    /// rows written later with the same update time are not lost, and re-reading an unchanged
    /// row writes nothing.
    pub watermark: i64,
}

impl Since {
    /// The watermark as a literal of the cursor's kind (`42`, `2024-03-01 08:00:00`,
    /// `2024-03-01`), for a source's filter.
    pub fn literal(&self) -> String {
        self.kind.render(self.watermark)
    }
}

/// How a cursor column's values are read and compared. Watermarks are stored as integers
/// (a Delta application-transaction version): ids as they are, times as microseconds since
/// the Unix epoch, dates as days since it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CursorKind {
    /// An increasing integer id.
    Integer,
    /// An update time (`2024-03-01 08:00:00[.ffffff]`, `T` or space, or epoch seconds).
    Timestamp,
    /// An update date.
    Date,
}

impl CursorKind {
    /// The watermark value of a cursor cell, `None` when it cannot be read as this kind.
    pub fn parse(self, text: &str) -> Option<i64> {
        let text = text.trim();
        match self {
            CursorKind::Integer => text.parse().ok(),
            CursorKind::Timestamp => parse_timestamp(text),
            CursorKind::Date => exchange_core::normalize::parse_date(text).map(|d| (d - EPOCH).num_days()),
        }
    }

    /// The literal for a watermark value: the inverse of [`CursorKind::parse`].
    pub fn render(self, value: i64) -> String {
        match self {
            CursorKind::Integer => value.to_string(),
            CursorKind::Timestamp => {
                let t = chrono::DateTime::from_timestamp_micros(value)
                    .map(|t| t.naive_utc())
                    .unwrap_or_default();
                if value % 1_000_000 == 0 {
                    t.format("%Y-%m-%d %H:%M:%S").to_string()
                } else {
                    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
                }
            }
            CursorKind::Date => exchange_core::normalize::format_date(EPOCH + chrono::Duration::days(value)),
        }
    }
}

fn parse_timestamp(text: &str) -> Option<i64> {
    if let Some(micros) = parse_plain_timestamp(text) {
        return Some(micros);
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds.checked_mul(1_000_000);
    }
    // Offsets (`+08:00`, `Z`) are honoured; naive times are taken as written.
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    let text = text.replace('T', " ");
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    exchange_core::normalize::parse_date(&text)
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros())
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]`, as PostgreSQL and MySQL write a timestamp without a zone,
/// read by hand: a run reads one per row. Anything else is `None`, for the general parser.
fn parse_plain_timestamp(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(' ')?;
    let date = exchange_core::normalize::parse_stored_date(date)?;
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (time, None),
    };
    let b = hms.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let two = |i: usize| exchange_core::normalize::parse_digits(&b[i..i + 2]);
    let micros = match fraction {
        None => 0,
        Some(f) if (1..=9).contains(&f.len()) && f.bytes().all(|d| d.is_ascii_digit()) => {
            // Nanoseconds, as chrono reads a fraction, then truncated to microseconds.
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32) / 1000
        }
        Some(_) => return None,
    };
    let t = date.and_hms_micro_opt(two(0)?, two(3)?, two(6)?, micros)?;
    Some(t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The hand-written reader of plain timestamps agrees with chrono wherever it answers.
        #[test]
        fn plain_timestamps_read_as_chrono_reads_them(
            seconds in 0i64..(300 * 366 * 86_400),
            fraction in proptest::option::of("[0-9]{1,9}"),
            at in 0usize..30,
            typo in proptest::sample::select(vec!['0', '3', '9', ' ', ':', '.', '-', 'T', 'x']),
        ) {
            let t = chrono::DateTime::from_timestamp(seconds - 200 * 366 * 86_400, 0).unwrap().naive_utc();
            let mut text = t.format("%Y-%m-%d %H:%M:%S").to_string();
            if let Some(f) = fraction {
                text = format!("{text}.{f}");
            }
            let chrono = |s: &str| {
                NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok().map(|t| t.and_utc().timestamp_micros())
            };
            prop_assert_eq!(parse_plain_timestamp(&text), chrono(&text), "{}", text);
            // One character mistyped: where the hand-written reader answers, chrono agrees.
            let mistyped: String = text.chars().enumerate().map(|(i, c)| if i == at { typo } else { c }).collect();
            if let Some(fast) = parse_plain_timestamp(&mistyped) {
                prop_assert_eq!(Some(fast), chrono(&mistyped), "{}", mistyped);
            }
        }
    }

    #[test]
    fn cursor_values_round_trip() {
        for (kind, text) in [
            (CursorKind::Integer, "42"),
            (CursorKind::Timestamp, "2024-03-01 08:00:00"),
            (CursorKind::Timestamp, "2024-03-01 08:00:00.250000"),
            (CursorKind::Date, "2024-03-01"),
        ] {
            let value = kind.parse(text).unwrap();
            assert_eq!(kind.render(value), text);
        }
        assert_eq!(
            CursorKind::Timestamp.parse("2024-03-01T08:00:00"),
            CursorKind::Timestamp.parse("2024-03-01 08:00:00")
        );
        assert_eq!(
            CursorKind::Timestamp.parse("2024-03-01T08:00:00+08:00"),
            CursorKind::Timestamp.parse("2024-03-01 00:00:00")
        );
        assert!(CursorKind::Integer.parse("abc").is_none());
    }
}
