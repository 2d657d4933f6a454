use super::*;

#[test]
fn a_sample_config_parses() {
    let config: SqliteSourceConfig =
        serde_json::from_value(serde_json::json!({"path": "/data/ga.db", "table": "hukou"})).unwrap();
    assert_eq!(config.batch_size, 8192);
    assert_eq!(config.select_sql().unwrap(), "SELECT * FROM \"hukou\"");
}

#[test]
fn a_wrong_config_names_the_field() {
    let err =
        serde_json::from_value::<SqliteSourceConfig>(serde_json::json!({"path": "/data/ga.db", "tabel": "hukou"}))
            .unwrap_err()
            .to_string();
    assert!(err.contains("tabel"), "{err}");
    let neither: SqliteSourceConfig = serde_json::from_value(serde_json::json!({"path": "/data/ga.db"})).unwrap();
    assert!(neither.select_sql().unwrap_err().to_string().contains("table"));
    let writes: SqliteSourceConfig =
        serde_json::from_value(serde_json::json!({"path": "x", "query": "DELETE FROM t"})).unwrap();
    assert!(writes.select_sql().unwrap_err().to_string().contains("query"));
}

#[tokio::test]
async fn reads_a_table_in_batches_with_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    conn = conn.clone();
    let mut c = sqlx::ConnectOptions::connect(&conn).await.unwrap();
    sqlx::query("CREATE TABLE t (id INTEGER, name TEXT, score REAL)")
        .execute(&mut c)
        .await
        .unwrap();
    for i in 0..25 {
        sqlx::query("INSERT INTO t VALUES ($1, $2, $3)")
            .bind(i)
            .bind(if i == 3 { None } else { Some(format!("n{i}")) })
            .bind(i as f64 / 2.0)
            .execute(&mut c)
            .await
            .unwrap();
    }
    drop(c);
    let source = SqliteSourceConfig {
        path,
        table: Some("t".into()),
        query: None,
        batch_size: 10,
    };
    source.healthcheck().await.unwrap();
    let mut stream = source.read(&crate::ReadRequest::default()).await.unwrap();
    let mut sizes = Vec::new();
    let mut first = None;
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        sizes.push(batch.num_rows());
        first.get_or_insert(batch);
    }
    assert_eq!(sizes, vec![10, 10, 5]);
    let first = first.unwrap();
    let names = first
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    assert!(arrow::array::Array::is_null(names, 3));
    let ids = first
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    assert_eq!(ids.value(7), "7");
}

#[tokio::test]
async fn a_missing_file_fails_the_healthcheck() {
    let source = SqliteSourceConfig {
        path: "/nonexistent/huitong.db".into(),
        table: Some("t".into()),
        query: None,
        batch_size: 10,
    };
    assert!(matches!(source.healthcheck().await, Err(crate::Error::Unreachable(_))));
}
