//! Synthetic sources of the other four base libraries, from the same people as the household
//! register: 市场监管局 enterprise registrations (法人), 发改委 credit records (社会信用), 数据局
//! e-licenses (电子证照: business licences and birth certificates), 自然资源局 standard addresses
//! (空间地理). Each carries dirt a data officer would recognize — wrong check characters,
//! lower-case codes, amounts with separators, mixed date formats, unknown code values — which
//! the sync quarantines or normalizes.

use std::path::{Path, PathBuf};

use exchange_core::region::townships;
use exchange_core::uscc::check_character;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, SqliteConnection};

use crate::{Failure, Result};

/// Where the four sources are, with keys known to end up in each library.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaseSources {
    /// 市场监管局: table `qiye_dengji`.
    pub shichang: PathBuf,
    /// 发改委: table `xinyong_jilu`.
    pub xinyong: PathBuf,
    /// 数据局: table `dianzi_zhengzhao`.
    pub zhengzhao: PathBuf,
    /// 自然资源局: table `biaozhun_dizhi`.
    pub dizhi: PathBuf,
    /// Clean keys present in each library, by library name.
    pub sample_keys: std::collections::BTreeMap<String, Vec<String>>,
}

/// A person of the household register, as the other sources refer to them.
pub struct PersonRef {
    /// ID number.
    pub id: String,
    /// Name.
    pub name: String,
    /// Birth date.
    pub birth: chrono::NaiveDate,
}

const TRADES: &[(&str, &str)] = &[
    ("I6510", "软件开发"),
    ("C1311", "谷物磨制"),
    ("F5211", "百货零售"),
    ("H6210", "正餐服务"),
    ("E4710", "房屋建筑"),
    ("L7212", "投资与资产管理"),
    ("M7320", "工程和技术研究"),
];
const FIRM_WORDS: &[&str] = &[
    "西湖", "钱塘", "之江", "云栖", "运河", "天目", "湖滨", "良渚", "梦想", "数智",
];

fn uscc(rng: &mut StdRng, county: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let mut first17 = format!("91{county}");
    for _ in 0..9 {
        first17.push(*ALPHABET.choose(rng).expect("alphabet") as char);
    }
    let check = check_character(first17.as_bytes());
    format!("{first17}{check}")
}

async fn create(path: &Path, ddl: &str) -> Result<SqliteConnection> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = SqliteConnection::connect(&url)
        .await
        .map_err(|e| Failure::msg(format!("{}: {e}", path.display())))?;
    sqlx::query(sqlx::AssertSqlSafe(ddl.to_string()))
        .execute(&mut conn)
        .await
        .map_err(|e| Failure::msg(e.to_string()))?;
    Ok(conn)
}

/// Inserts `rows` into `table` of a new database at `path`, in one transaction.
async fn write_table(path: &Path, table: &str, columns: &[&str], rows: Vec<Vec<Option<String>>>) -> Result<()> {
    let ddl = format!(
        "CREATE TABLE {table} (id INTEGER PRIMARY KEY, {})",
        columns
            .iter()
            .map(|c| format!("{c} TEXT"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut conn = create(path, &ddl).await?;
    let sql_err = |e: sqlx::Error| Failure::msg(e.to_string());
    let insert = format!(
        "INSERT INTO {table} VALUES ({})",
        (1..=columns.len() + 1)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut tx = conn.begin().await.map_err(sql_err)?;
    for (i, row) in rows.into_iter().enumerate() {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(insert.clone())).bind(i as i64 + 1);
        for value in row {
            query = query.bind(value);
        }
        query.execute(&mut *tx).await.map_err(sql_err)?;
    }
    tx.commit().await.map_err(sql_err)?;
    conn.close().await.map_err(sql_err)?;
    Ok(())
}

fn some(s: impl Into<String>) -> Option<String> {
    Some(s.into())
}

/// Generates the four sources in `dir` for `people` (the household register's clean people).
pub async fn generate(dir: &Path, people: &[PersonRef], seed: u64) -> Result<BaseSources> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_ba5e);
    let mut sample_keys = std::collections::BTreeMap::<String, Vec<String>>::new();
    let local: Vec<&str> = exchange_core::region::counties()
        .iter()
        .filter(|d| d.code.starts_with("3301"))
        .map(|d| d.code.as_str())
        .collect();
    let adults: Vec<&PersonRef> = people
        .iter()
        .filter(|p| chrono::Datelike::year(&p.birth) < 2000)
        .collect();

    // 法人: one entity per twenty people.
    let count = if adults.is_empty() {
        0
    } else {
        (people.len() / 20).max(20)
    };
    let mut entities: Vec<(String, String)> = Vec::new();
    let mut rows = Vec::new();
    for i in 0..count {
        let county = *local.choose(&mut rng).expect("county");
        let code = uscc(&mut rng, county);
        let rep = adults.choose(&mut rng).expect("adults");
        let (trade, what) = *TRADES.choose(&mut rng).expect("trade");
        let name = format!("杭州{}{}有限公司", FIRM_WORDS.choose(&mut rng).expect("word"), what);
        let established = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("date")
            + chrono::Duration::days(rng.random_range(0..9000));
        let capital = rng.random_range(10..5000) * 10;
        let mut row = vec![
            some(code.clone()),
            some(name.clone()),
            some("企业"),
            some(rep.name.clone()),
            some(rep.id.clone()),
            some(
                format!("{},{:03}.00", capital / 1000, capital % 1000)
                    .trim_start_matches("0,")
                    .to_string(),
            ),
            some(
                established
                    .format(["%Y-%m-%d", "%Y年%m月%d日", "%Y%m%d"][i % 3])
                    .to_string(),
            ),
            some(county),
            some(format!("杭州市{}号", 100 + i)),
            some(format!("{what}；技术服务")),
            some(trade),
            some(if i % 17 == 5 { "注销" } else { "存续" }),
        ];
        match i % 25 {
            3 => {
                // A typo in the check character: quarantined.
                let wrong = if code.ends_with('0') { '1' } else { '0' };
                row[0] = some(format!("{}{wrong}", &code[..17]));
            }
            7 => row[0] = some(code.to_lowercase()),
            11 => row[11] = some("歇业整顿"), // not a registration status: quarantined
            13 => row[10] = some(trade.to_lowercase()),
            _ => {}
        }
        if !matches!(i % 25, 3 | 11) {
            entities.push((code.clone(), name));
            if sample_keys.get("legal_entity").is_none_or(|k| k.len() < 5) {
                sample_keys.entry("legal_entity".into()).or_default().push(code);
            }
        }
        rows.push(row);
    }
    let shichang = dir.join("shichang_qiye.db");
    write_table(
        &shichang,
        "qiye_dengji",
        &[
            "tyshxydm",
            "qymc",
            "ztlx",
            "fddbr",
            "fddbrsfzh",
            "zczb",
            "clrq",
            "zsqh",
            "zs",
            "jyfw",
            "hydm",
            "djzt",
        ],
        rows,
    )
    .await?;

    // 社会信用: licences and penalties of entities, red and black lists of people.
    let mut rows = Vec::new();
    for i in 0..count {
        let (subject, name) = if i % 3 == 2 {
            let p = adults.choose(&mut rng).expect("adults");
            (p.id.clone(), p.name.clone())
        } else {
            entities.choose(&mut rng).expect("entities").clone()
        };
        let kind = if i % 3 == 2 {
            ["守信红名单", "失信黑名单"][i % 2]
        } else {
            ["行政许可", "行政处罚"][i % 2]
        };
        let id = format!("XY3301{:08}", i + 1);
        let decided = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).expect("date")
            + chrono::Duration::days(rng.random_range(0..1800));
        let mut row = vec![
            some(id.clone()),
            some(subject),
            some(name),
            some(kind),
            some("杭州市市场监督管理局"),
            some(decided.format("%Y/%m/%d").to_string()),
            some((decided + chrono::Duration::days(1095)).format("%Y-%m-%d").to_string()),
            some(format!(
                "{kind}决定书 杭市监〔{}〕{}号",
                chrono::Datelike::year(&decided),
                i + 1
            )),
        ];
        match i % 30 {
            4 => row[1] = some("91330106MA2XXXXXX"), // not a subject code: quarantined
            9 => row[3] = some("表扬信"),            // not a record type: quarantined
            _ => {
                if sample_keys.get("credit").is_none_or(|k| k.len() < 5) {
                    sample_keys.entry("credit".into()).or_default().push(id);
                }
            }
        }
        rows.push(row);
    }
    let xinyong = dir.join("fagaiwei_xinyong.db");
    write_table(
        &xinyong,
        "xinyong_jilu",
        &["jlbh", "ztdm", "ztmc", "jllx", "rdjg", "jdrq", "yxqz", "nr"],
        rows,
    )
    .await?;

    // 电子证照: a business licence per entity and a birth certificate per child born since 2015.
    let mut rows = Vec::new();
    for (i, (code, name)) in entities.iter().enumerate() {
        let number = format!("330100{:09}", i + 1);
        rows.push(vec![
            some("YYZZ"),
            some(number.clone()),
            some("营业执照"),
            some(code.clone()),
            some(name.clone()),
            some("杭州市市场监督管理局"),
            some("2021-03-01"),
            None,
            some("有效"),
        ]);
        if sample_keys.get("license").is_none_or(|k| k.len() < 3) {
            sample_keys
                .entry("license".into())
                .or_default()
                .push(format!("YYZZ:{number}"));
        }
    }
    let mut births = 0;
    for p in people.iter().filter(|p| chrono::Datelike::year(&p.birth) >= 2015) {
        births += 1;
        let number = format!("Q33{:08}", births);
        let mut row = vec![
            some("CSYXZM"),
            some(number.clone()),
            some("出生医学证明"),
            some(p.id.clone()),
            some(p.name.clone()),
            some("杭州市妇产科医院"),
            some(p.birth.format("%Y%m%d").to_string()),
            None,
            some("有效"),
        ];
        if births % 20 == 7 {
            // A typo in the holder's check character: quarantined.
            let wrong = if p.id.ends_with('0') { '1' } else { '0' };
            row[3] = some(format!("{}{wrong}", &p.id[..17]));
        }
        rows.push(row);
        if births % 20 != 7 && sample_keys.get("license").is_none_or(|k| k.len() < 5) {
            sample_keys
                .entry("license".into())
                .or_default()
                .push(format!("CSYXZM:{number}"));
        }
    }
    let zhengzhao = dir.join("shujuju_zhengzhao.db");
    write_table(
        &zhengzhao,
        "dianzi_zhengzhao",
        &[
            "zzlxdm", "zzbh", "zzmc", "czztdm", "czztmc", "fzjg", "fzrq", "yxqz", "zzzt",
        ],
        rows,
    )
    .await?;

    // 空间地理: standard addresses in the city's townships.
    let streets: Vec<&exchange_core::region::Division> =
        townships().iter().filter(|d| d.code.starts_with("3301")).collect();
    let mut rows = Vec::new();
    for i in 0..(people.len() / 10).max(20) {
        let street = streets.choose(&mut rng).expect("streets");
        let id = format!("330100{:010}", i + 1);
        let lng = 120.0 + rng.random_range(0..900_000) as f64 / 1_000_000.0;
        let lat = 30.0 + rng.random_range(0..500_000) as f64 / 1_000_000.0;
        let mut row = vec![
            some(id.clone()),
            some(format!("浙江省杭州市{}{}号", street.name, 1 + i % 300)),
            some(street.code.clone()),
            some(format!("{}社区", street.name.trim_end_matches("街道"))),
            some(format!("{lng:.6}")),
            some(format!("{lat:.6}")),
            some("CGCS2000"),
            some(format!("330100{:06}GB{:05}", i / 7, i)),
        ];
        match i % 40 {
            6 => row[2] = some(&street.code[..6]), // a county, fine: the schema accepts it
            13 => row[5] = some("130.5"),          // an impossible latitude: quarantined
            21 => row[2] = some("330100999"),      // no such township: quarantined
            _ => {
                if sample_keys.get("spatial").is_none_or(|k| k.len() < 5) {
                    sample_keys.entry("spatial".into()).or_default().push(id);
                }
            }
        }
        rows.push(row);
    }
    let dizhi = dir.join("ziranziyuan_dizhi.db");
    write_table(
        &dizhi,
        "biaozhun_dizhi",
        &["dzbm", "bzdz", "xzqh", "dm", "jd", "wd", "zbx", "zddm"],
        rows,
    )
    .await?;

    Ok(BaseSources {
        shichang,
        xinyong,
        zhengzhao,
        dizhi,
        sample_keys,
    })
}
