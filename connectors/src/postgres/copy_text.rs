//! Parsing PostgreSQL's `COPY … TO STDOUT` text format: one line per row, fields separated by
//! tabs, `\N` for NULL, and backslash escapes for tab, newline, backslash and a few more.

use crate::batch::TextBatchBuilder;
use crate::{Error, Result};

/// Splits a stream of COPY chunks into rows; a row may span chunks.
#[derive(Default)]
pub(crate) struct CopyTextParser {
    pending: Vec<u8>,
    scratch: String,
}

impl CopyTextParser {
    /// Appends every complete row in `chunk` (plus what was pending) to `out`, calling `full`
    /// whenever `out` fills up.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut TextBatchBuilder,
        mut full: impl FnMut(&mut TextBatchBuilder) -> Result<()>,
    ) -> Result<()> {
        let mut data = chunk;
        if !self.pending.is_empty() {
            match memchr::memchr(b'\n', data) {
                None => {
                    self.pending.extend_from_slice(data);
                    return Ok(());
                }
                Some(end) => {
                    let mut line = std::mem::take(&mut self.pending);
                    line.extend_from_slice(&data[..end]);
                    self.row(utf8(&line)?, out)?;
                    if out.is_full() {
                        full(out)?;
                    }
                    data = &data[end + 1..];
                    line.clear();
                    self.pending = line;
                }
            }
        }
        // The chunk's complete rows, checked as UTF-8 in one pass; when that fails, row by
        // row, so the rows before the bad one are taken and the error is the bad row's own.
        let (complete, partial) = data.split_at(memchr::memrchr(b'\n', data).map_or(0, |last| last + 1));
        let checked = std::str::from_utf8(complete).ok();
        let mut start = 0;
        while let Some(end) = memchr::memchr(b'\n', &complete[start..]).map(|at| start + at) {
            let row = match checked {
                // A newline is ASCII: `start` and `end` are character boundaries.
                Some(rows) => &rows[start..end],
                None => utf8(&complete[start..end])?,
            };
            self.row(row, out)?;
            if out.is_full() {
                full(out)?;
            }
            start = end + 1;
        }
        self.pending.extend_from_slice(partial);
        Ok(())
    }

    /// Whether a row was left incomplete (the stream ended mid-row).
    pub(crate) fn has_partial_row(&self) -> bool {
        !self.pending.is_empty()
    }

    fn row(&mut self, line: &str, out: &mut TextBatchBuilder) -> Result<()> {
        let bytes = line.as_bytes();
        let mut start = 0;
        for i in 0..out.width() {
            if start > bytes.len() {
                return Err(Error::Unreadable(format!(
                    "COPY row has fewer than {} fields",
                    out.width()
                )));
            }
            let end = memchr::memchr(b'\t', &bytes[start..]).map_or(bytes.len(), |at| start + at);
            // Tabs are ASCII: `start` and `end` are character boundaries.
            let field = &line[start..end];
            start = end + 1;
            if field == "\\N" {
                out.append(i, None);
            } else if memchr::memchr(b'\\', field.as_bytes()).is_none() {
                out.append(i, Some(field));
            } else {
                unescape(field, &mut self.scratch);
                out.append(i, Some(&self.scratch));
            }
        }
        out.end_row();
        Ok(())
    }
}

fn utf8(rows: &[u8]) -> Result<&str> {
    std::str::from_utf8(rows).map_err(|e| Error::Unreadable(format!("COPY row is not UTF-8: {e}")))
}

/// Undoes COPY text escaping into `out`.
pub(crate) fn unescape(field: &str, out: &mut String) {
    out.clear();
    let bytes = field.as_bytes();
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' || i + 1 == bytes.len() {
            decoded.push(b);
            i += 1;
            continue;
        }
        let e = bytes[i + 1];
        i += 2;
        match e {
            b'b' => decoded.push(8),
            b'f' => decoded.push(12),
            b'n' => decoded.push(b'\n'),
            b'r' => decoded.push(b'\r'),
            b't' => decoded.push(b'\t'),
            b'v' => decoded.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                let mut n = 1;
                while n < 3 && i < bytes.len() && (b'0'..=b'7').contains(&bytes[i]) {
                    value = value * 8 + u32::from(bytes[i] - b'0');
                    i += 1;
                    n += 1;
                }
                decoded.push(value as u8);
            }
            b'x' => {
                let mut value = 0u32;
                let mut n = 0;
                while n < 2 && i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                    value = value * 16 + (bytes[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                decoded.push(value as u8);
            }
            other => decoded.push(other),
        }
    }
    out.push_str(&String::from_utf8_lossy(&decoded));
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, StringArray};
    use proptest::prelude::*;

    use super::*;

    /// COPY text escaping, as the server does it.
    fn escape(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        out
    }

    fn parse(chunks: &[&[u8]], width: usize) -> Vec<Vec<Option<String>>> {
        let names: Vec<String> = (0..width).map(|i| format!("c{i}")).collect();
        let mut out = TextBatchBuilder::new(&names, 3);
        let mut parser = CopyTextParser::default();
        let mut batches = Vec::new();
        for chunk in chunks {
            parser
                .feed(chunk, &mut out, |b| {
                    batches.push(b.finish()?);
                    Ok(())
                })
                .unwrap();
        }
        assert!(!parser.has_partial_row());
        batches.push(out.finish().unwrap());
        let mut rows = Vec::new();
        for batch in batches {
            for r in 0..batch.num_rows() {
                rows.push(
                    (0..width)
                        .map(|c| {
                            let col = batch.column(c).as_any().downcast_ref::<StringArray>().unwrap();
                            (!col.is_null(r)).then(|| col.value(r).to_string())
                        })
                        .collect(),
                );
            }
        }
        rows
    }

    #[test]
    fn a_row_short_of_fields_is_refused_and_one_with_more_is_cut() {
        for short in [&b"1\t2\n"[..], b"1\n", b"\n"] {
            let mut out = TextBatchBuilder::new(&["a", "b", "c"], 8);
            let mut parser = CopyTextParser::default();
            let err = parser.feed(short, &mut out, |_| Ok(())).unwrap_err();
            assert!(err.to_string().contains("fewer than 3 fields"), "{err}");
        }
        assert_eq!(
            parse(&[b"1\t2\t3\t4\n\t\t\n"], 3),
            vec![
                vec![Some("1".into()), Some("2".into()), Some("3".into())],
                vec![Some("".into()), Some("".into()), Some("".into())],
            ]
        );
    }

    /// A row that is not UTF-8 fails the chunk where it stands: the rows before it are taken,
    /// and the error points into that row.
    #[test]
    fn a_row_that_is_not_utf8_is_named_after_the_rows_before_it() {
        let mut out = TextBatchBuilder::new(&["a", "b"], 8);
        let mut parser = CopyTextParser::default();
        let err = parser.feed(b"a\tb\nc\xff\td\n", &mut out, |_| Ok(())).unwrap_err();
        assert!(
            err.to_string().contains("not UTF-8") && err.to_string().contains("index 1"),
            "{err}"
        );
        assert_eq!(out.len(), 1, "the row before the bad one was taken");
        let mut out = TextBatchBuilder::new(&["a", "b", "c"], 8);
        let err = CopyTextParser::default()
            .feed(b"1\n\xff\n", &mut out, |_| Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("fewer than 3 fields"), "{err}");
    }

    #[test]
    fn rows_split_across_chunks_nulls_and_escapes() {
        let rows = parse(&[b"1\t\xe5\xbc\xa0", b"\xe4\xb8\x89\t\\N\n2\ta\\tb\\\\c\t\\101\n"], 3);
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("张三".into()), None],
                vec![Some("2".into()), Some("a\tb\\c".into()), Some("A".into())],
            ]
        );
    }

    proptest! {
        #[test]
        fn any_table_round_trips(
            table in proptest::collection::vec(proptest::collection::vec(proptest::option::of("\\PC{0,12}"), 3), 0..20),
            cut in 0usize..200,
        ) {
            let mut text = String::new();
            for row in &table {
                let fields: Vec<String> = row.iter().map(|c| c.as_deref().map(escape).unwrap_or_else(|| "\\N".into())).collect();
                text.push_str(&fields.join("\t"));
                text.push('\n');
            }
            let bytes = text.as_bytes();
            let cut = cut.min(bytes.len());
            let rows = parse(&[&bytes[..cut], &bytes[cut..]], 3);
            prop_assert_eq!(rows, table);
        }
    }
}
