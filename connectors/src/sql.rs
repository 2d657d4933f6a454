//! What the SQL sources (SQLite, PostgreSQL, MySQL) share: reading a table or a read-only
//! `SELECT`, and pushing an incremental run's cursor filter down to the database.

use crate::{Error, ReadRequest, Result};

/// How a SQL dialect quotes identifiers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Quote {
    /// `"name"` (SQL standard: SQLite, PostgreSQL).
    Double,
    /// `` `name` `` (MySQL, MariaDB).
    Backtick,
}

impl Quote {
    fn ident(self, name: &str, field: &str) -> Result<String> {
        let q = match self {
            Quote::Double => '"',
            Quote::Backtick => '`',
        };
        if name.is_empty() || name.contains(q) || name.contains('\0') {
            return Err(Error::config(field, format!("{name:?} is not a usable name")));
        }
        // `schema.table` is quoted part by part.
        Ok(name
            .split('.')
            .map(|part| format!("{q}{part}{q}"))
            .collect::<Vec<_>>()
            .join("."))
    }
}

/// Checks a database URL: it parses, and holds no password (secrets go in `password`).
pub(crate) fn check_url(url: &str) -> Result<url::Url> {
    let parsed = url::Url::parse(url).map_err(|e| Error::config("url", format!("not a URL: {e}")))?;
    if parsed.password().is_some() {
        return Err(Error::config(
            "url",
            "the URL holds a password: put it in `password` ({\"env\": …} or {\"file\": …}) instead",
        ));
    }
    Ok(parsed)
}

/// Turns a stream of sqlx rows into text batches of `batch_size` on `tx`, reading each cell
/// with `cell`. Returns when the rows end or the engine stops listening; a driver error is
/// mapped by `error` and returned.
pub(crate) async fn send_rows<R: sqlx::Row>(
    mut rows: impl futures::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    tx: &crate::batch::BatchSender,
    batch_size: usize,
    cell: impl Fn(&R, usize) -> Option<String>,
    error: impl Fn(sqlx::Error) -> Error,
) -> Result<()> {
    use futures::TryStreamExt;
    use sqlx::Column;
    let mut builder: Option<crate::batch::TextBatchBuilder> = None;
    while let Some(row) = rows.try_next().await.map_err(&error)? {
        let b = builder.get_or_insert_with(|| {
            let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
            crate::batch::TextBatchBuilder::new(&names, batch_size)
        });
        for i in 0..b.width() {
            b.append(i, cell(&row, i).as_deref());
        }
        b.end_row();
        if b.is_full() && tx.send(b.finish()).await.is_err() {
            return Ok(());
        }
    }
    if let Some(mut b) = builder.filter(|b| !b.is_empty()) {
        let _ = tx.send(b.finish()).await;
    }
    Ok(())
}

/// A database source as errors name it: `postgres 10.1.2.3:5432/gongan` (never credentials).
pub(crate) fn target(kind: &str, url: &str, default_port: u16) -> String {
    url::Url::parse(url)
        .map(|u| {
            format!(
                "{kind} {}:{}{}",
                u.host_str().unwrap_or(""),
                u.port().unwrap_or(default_port),
                u.path()
            )
        })
        .unwrap_or_else(|_| kind.to_string())
}

/// Classifies a driver error of `target`: an error the server reports (no such table, no
/// permission) will not go away by retrying; a refused or dropped connection may.
pub(crate) fn driver_error(target: String, e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) => Error::Unreadable(format!("{target}: {}", db.message())),
        other => Error::Unreachable(format!("{target}: {other}")),
    }
}

/// The `SELECT` that reads a whole source: its `table`, or its `query` (which must be a read).
pub(crate) fn base_select(table: Option<&str>, query: Option<&str>, quote: Quote) -> Result<String> {
    match (table, query) {
        (Some(table), None) => Ok(format!("SELECT * FROM {}", quote.ident(table, "table")?)),
        (None, Some(query)) => {
            let head = query.trim_start().to_ascii_lowercase();
            if !(head.starts_with("select") || head.starts_with("with")) {
                return Err(Error::config("query", "only a SELECT may be given"));
            }
            if query.trim_end().trim_end_matches(';').contains(';') {
                return Err(Error::config("query", "give one statement"));
            }
            Ok(query.trim_end().trim_end_matches(';').to_string())
        }
        _ => Err(Error::config("table", "give exactly one of `table` and `query`")),
    }
}

/// The `SELECT` of one run: the base select, filtered to rows at or past the watermark and
/// ordered by the cursor when the run is incremental.
pub(crate) fn run_select(base: &str, request: &ReadRequest, quote: Quote) -> Result<String> {
    let Some(since) = &request.since else {
        return Ok(base.to_string());
    };
    let column = quote.ident(&since.column, "cursor.column")?;
    // The literal comes from the stored integer watermark, rendered by its kind: digits,
    // dashes, colons, dots and spaces only, so quoting it is safe.
    let literal = match since.kind {
        crate::CursorKind::Integer => since.literal(),
        _ => format!("'{}'", since.literal()),
    };
    Ok(format!(
        "SELECT * FROM ({base}) AS huitong_source WHERE {column} >= {literal} ORDER BY {column}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CursorKind, Since};

    #[test]
    fn selects_tables_queries_and_increments() {
        assert_eq!(
            base_select(Some("gab.hukou"), None, Quote::Double).unwrap(),
            r#"SELECT * FROM "gab"."hukou""#
        );
        assert_eq!(
            base_select(Some("hukou"), None, Quote::Backtick).unwrap(),
            "SELECT * FROM `hukou`"
        );
        assert!(base_select(Some("a\"b"), None, Quote::Double).is_err());
        assert!(base_select(None, Some("DELETE FROM t"), Quote::Double).is_err());
        assert!(base_select(None, Some("SELECT 1; DROP TABLE t"), Quote::Double).is_err());
        assert!(base_select(None, None, Quote::Double).is_err());
        let request = ReadRequest {
            since: Some(Since {
                column: "updated_at".into(),
                kind: CursorKind::Timestamp,
                watermark: 1_709_280_000_000_000,
            }),
            columns: vec![],
        };
        assert_eq!(
            run_select("SELECT * FROM t", &request, Quote::Double).unwrap(),
            "SELECT * FROM (SELECT * FROM t) AS huitong_source WHERE \"updated_at\" >= '2024-03-01 08:00:00' \
             ORDER BY \"updated_at\""
        );
    }
}
