//! kill -9 in the middle of a sync run: the next run neither loses nor duplicates a row, and
//! the library ends row-for-row equal to one built by a single clean run. kill -9 of a server
//! under exchange load: every call it answered is in the audit trail after the restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use huitong::demo::POPULATION_CODE;
use huitong::settings::Settings;
use huitong_tests::{fresh_postgres_database, person_id};
use serde_json::json;
use sqlx::{Connection, Executor};
use tokio::io::{AsyncBufReadExt, BufReader};

const ROWS: u32 = 300_000;

/// The `huitong` binary `scripts/test` built.
fn huitong_bin() -> PathBuf {
    let bin = std::env::var_os("TEST_HUITONG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("test binary path");
            exe.parent().and_then(Path::parent).expect("target dir").join("huitong")
        });
    assert!(
        bin.is_file(),
        "{} is missing: run ./scripts/test, which builds it (or cargo build -p huitong)",
        bin.display()
    );
    bin
}

async fn big_source() -> String {
    let url = fresh_postgres_database().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    conn.execute("CREATE TABLE hukou (id bigint PRIMARY KEY, sfzh text, xm text, hjdz text)")
        .await
        .unwrap();
    let mut copy = conn.copy_in_raw("COPY hukou FROM STDIN").await.unwrap();
    let mut chunk = String::new();
    for i in 1..=ROWS {
        chunk.push_str(&format!(
            "{i}\t{}\t居民{i}\t浙江省杭州市上城区解放路{i}号\n",
            person_id(i)
        ));
        if chunk.len() > 1 << 20 {
            copy.send(chunk.as_bytes()).await.unwrap();
            chunk.clear();
        }
    }
    copy.send(chunk.as_bytes()).await.unwrap();
    copy.finish().await.unwrap();
    url
}

/// A data dir with the demo's catalog, an empty population library and the connector.
async fn prepare(dir: &Path, source: &str) {
    let settings = Settings {
        data_dir: dir.to_path_buf(),
        ..Settings::default()
    };
    let demo = huitong::demo::prepare(&settings, 0, 7).await.unwrap();
    demo.catalog
        .upsert_connector(&catalog::NewConnector {
            name: "gaj-big".into(),
            kind: "postgres".into(),
            department_code: "GAJ".into(),
            resource_code: POPULATION_CODE.into(),
            config: json!({
                "source": {"kind": "postgres", "url": source, "table": "hukou", "batch_size": 4096},
                "mapping": {"id_number": "sfzh", "name": "xm", "address": "hjdz"},
                "position_column": "id",
                "schedule": "manual"
            }),
        })
        .await
        .unwrap();
    // Dropping the demo closes the libraries, so the huitong processes can take them.
}

fn sync_command(dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(huitong_bin());
    command
        .arg("--data-dir")
        .arg(dir)
        .args(["sync", "gaj-big"])
        .env("RUST_LOG", "huitong=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `huitong sync gaj-big` and kills it with SIGKILL once it reports `lines` progress
/// lines (100,000 rows each): mid-run, with Parquet files written and nothing committed.
async fn sync_killed_after(dir: &Path, lines: usize) {
    let mut child = sync_command(dir).spawn().expect("huitong starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = 0;
    while let Some(line) = stderr.next_line().await.unwrap() {
        if line.contains("sync progress") {
            seen += 1;
            if seen == lines {
                child.kill().await.expect("SIGKILL");
                return;
            }
        }
    }
    panic!(
        "huitong sync ended before {lines} progress lines: {:?}",
        child.wait().await
    );
}

async fn sync_to_the_end(dir: &Path) {
    let output = sync_command(dir).output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Every current record of the population library: key → values.
async fn library_rows(dir: &Path) -> (i64, BTreeMap<String, Vec<Option<String>>>) {
    let library = exchange_core::Library::open(dir, &exchange_core::schema::POPULATION)
        .await
        .unwrap();
    let (records, _) = library
        .reader()
        .unwrap()
        .changed_since(-1, None, usize::MAX, usize::MAX)
        .unwrap();
    (
        library.version().unwrap(),
        records.into_iter().map(|(k, r)| (k, r.values)).collect(),
    )
}

#[tokio::test]
async fn kill_9_mid_run_then_rerun_equals_a_clean_run() {
    let source = big_source().await;
    let killed = tempfile::tempdir().unwrap();
    prepare(killed.path(), &source).await;
    sync_killed_after(killed.path(), 1).await;
    sync_killed_after(killed.path(), 2).await;
    sync_to_the_end(killed.path()).await;

    let clean = tempfile::tempdir().unwrap();
    prepare(clean.path(), &source).await;
    sync_to_the_end(clean.path()).await;

    let (killed_version, killed_rows) = library_rows(killed.path()).await;
    let (clean_version, clean_rows) = library_rows(clean.path()).await;
    assert_eq!(killed_rows.len(), ROWS as usize);
    assert!(
        killed_rows == clean_rows,
        "the library after kills and a rerun differs from a clean run"
    );
    assert_eq!(killed_version, clean_version, "the killed runs committed nothing");

    let url = format!("sqlite://{}", killed.path().join("huitong.db").display());
    let catalog = catalog::Catalog::connect(&url).await.unwrap();
    let connector = catalog.connector_by_name("gaj-big").await.unwrap();
    let runs = catalog.runs(connector.id, 10).await.unwrap();
    let statuses: Vec<_> = runs.iter().map(|r| r.status).collect();
    use catalog::RunStatus::{Failed, Succeeded};
    assert_eq!(statuses, [Succeeded, Failed, Failed]);
    assert_eq!(runs[0].counts.inserted, i64::from(ROWS));
    for interrupted in &runs[1..] {
        assert!(
            interrupted.error.as_deref().unwrap_or_default().contains("interrupted"),
            "{interrupted:?}"
        );
        assert!(interrupted.library_version.is_none());
    }
}

/// `huitong serve` on a free port of `dir`: the process and its base URL.
async fn serve(dir: &Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(huitong_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("huitong starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = stdout.next_line().await.unwrap() {
        if let Some(address) = line.strip_prefix("huitong listening on ") {
            return (child, address.to_string());
        }
    }
    panic!("huitong serve ended before listening: {:?}", child.wait().await);
}

/// The 200 answer of `url` as JSON.
async fn get_json(client: &reqwest::Client, url: &str, key: &str) -> serde_json::Value {
    huitong_tests::json_of(client.get(url).bearer_auth(key).send().await.unwrap(), 200).await
}

#[tokio::test]
async fn kill_9_under_load_loses_no_answered_call_from_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    let demo = huitong::demo::prepare(&settings, 200, 7).await.unwrap();
    let (consumer, admin) = (
        demo.keys["consumer_granted"].as_str().unwrap().to_string(),
        demo.keys["platform_admin"].as_str().unwrap().to_string(),
    );
    let ids = demo.sample_keys["population"].clone();
    drop(demo);

    let (mut server, address) = serve(dir.path()).await;
    let client = reqwest::Client::new();
    // Sixteen callers in a loop; the server is killed once 600 calls were answered, with
    // calls still in flight.
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..16 {
        let (client, address, consumer, ids, answered) = (
            client.clone(),
            address.clone(),
            consumer.clone(),
            ids.clone(),
            answered.clone(),
        );
        callers.spawn(async move {
            for n in 0.. {
                let request_id = format!("crash-{caller}-{n}");
                let url = format!(
                    "{address}/api/v1/exchange/{POPULATION_CODE}/records/{}",
                    ids[n % ids.len()]
                );
                let sent = client
                    .get(url)
                    .bearer_auth(&consumer)
                    .header("x-request-id", &request_id)
                    .send();
                // Every answer counts, the refusals (429 past the grant's quota) as well: all
                // are audited.
                match sent.await {
                    Ok(response) => {
                        assert!(matches!(response.status().as_u16(), 200 | 429), "{}", response.status());
                        answered.lock().unwrap().push(request_id);
                    }
                    Err(_) => return, // the server is gone
                }
            }
        });
    }
    while answered.lock().unwrap().len() < 600 {
        if let Some(ended) = callers.try_join_next() {
            panic!("a caller stopped under load: {ended:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.kill().await.expect("SIGKILL");
    while let Some(caller) = callers.join_next().await {
        caller.expect("callers stop cleanly when the server is gone");
    }
    let answered = answered.lock().unwrap().clone();

    // Checked before any restart: the chain runs whole through the journal.
    let verify = std::process::Command::new(huitong_bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(
        verify.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let verified: usize = said.split_whitespace().find_map(|w| w.parse().ok()).expect("a count");
    assert!(verified >= answered.len(), "{said}: {} calls answered", answered.len());

    eprintln!("audit records at the kill: {verified}");

    // After the restart, every answered call is listed, and the chain verifies over HTTP.
    let (_server, address) = serve(dir.path()).await;
    let mut listed = std::collections::HashSet::new();
    let mut after = 0;
    loop {
        let page = get_json(
            &client,
            &format!("{address}/api/v1/audit?limit=1000&after={after}"),
            &admin,
        )
        .await;
        for item in page["items"].as_array().expect("a page of records") {
            listed.insert(item["request_id"].as_str().unwrap().to_string());
        }
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    let missing: Vec<&String> = answered.iter().filter(|id| !listed.contains(*id)).collect();
    assert!(missing.is_empty(), "answered but not audited: {missing:?}");
    let chain = get_json(&client, &format!("{address}/api/v1/audit/verify"), &admin).await;
    assert_eq!(chain["intact"], true, "{chain}");
    assert!(chain["records"].as_u64().unwrap() as usize >= answered.len(), "{chain}");
}
