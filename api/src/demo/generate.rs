//! Synthetic departmental source databases, deterministic from a seed: a public-security
//! household register (公安局 户籍) and a civil-affairs assistance roll (民政局 救助对象) that
//! overlaps it, with the dirt real sources have — wrong check characters, full-width digits,
//! 15-digit legacy ID numbers, lower-case x, dates in mixed formats, impossible dates, stray
//! spaces, and the same people held by both departments with differing details.

use std::path::{Path, PathBuf};

use exchange_core::id_number::check_character;
use exchange_core::region::{Division, counties};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, SqliteConnection};

use crate::{Failure, Result};

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗",
    "高", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "潘", "袁", "蔡",
    "蒋", "余", "于", "杜", "叶", "程", "魏", "苏", "吕", "丁", "任", "沈", "姚", "卢", "傅", "钟", "姜", "崔", "谭",
    "廖", "范", "汪", "陆", "金", "石", "戴", "贾", "韦", "夏", "邱", "方", "侯", "邹", "熊", "孟", "秦", "白", "江",
    "阎", "薛", "尹", "段", "雷", "黎", "史", "龙", "陶", "欧阳", "司马", "上官", "诸葛",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀", "英",
    "华", "慧", "建", "国", "平", "刚", "桂", "兰", "玉", "萍", "红", "文", "辉", "鑫", "宇", "浩", "婷", "雪", "琳",
    "晨", "欣", "怡", "佳", "子", "涵", "轩", "博", "梓", "睿", "思", "雨", "泽",
];
const ETHNICITIES: &[&str] = &[
    "壮族",
    "回族",
    "满族",
    "维吾尔族",
    "苗族",
    "彝族",
    "土家族",
    "藏族",
    "蒙古族",
    "畲族",
];
const ROADS: &[&str] = &[
    "解放路",
    "延安路",
    "中山路",
    "人民路",
    "建国路",
    "文三路",
    "凤起路",
    "庆春路",
    "体育场路",
    "环城北路",
    "学院路",
    "天目山路",
    "莫干山路",
    "秋涛路",
    "江南大道",
    "滨盛路",
    "钱江路",
    "富春路",
];

/// Where the generated sources are and what they hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sources {
    /// 市公安局 household register: table `hukou`.
    pub gongan: PathBuf,
    /// 市民政局 assistance roll: table `jiuzhu_duixiang`.
    pub minzheng: PathBuf,
    /// 市卫健委 family-doctor contracts, a GBK CSV as Excel on Chinese Windows saves it.
    pub weijian: PathBuf,
    /// 市人社局 insured persons, an Excel workbook with a title row.
    pub renshe: PathBuf,
    /// Rows in `hukou`.
    pub rows: usize,
    /// The seed used.
    pub seed: u64,
    /// Clean ID numbers that end up in the library.
    pub sample_ids: Vec<String>,
    /// Clean ID numbers only the household register holds (no other department's source).
    #[serde(default)]
    pub register_only_ids: Vec<String>,
    /// The sources of the other base libraries.
    pub bases: super::bases::BaseSources,
}

/// Bumped whenever the generator's output changes, so old sources are rebuilt.
const GENERATOR_VERSION: u32 = 4;

#[derive(Serialize, Deserialize, PartialEq)]
struct Manifest {
    generator: u32,
    sources: Sources,
}

/// Reuses the sources in `dir` when they were made with the same size and seed, otherwise
/// (re)builds them.
pub async fn ensure_sources(dir: &Path, rows: usize, seed: u64) -> Result<Sources> {
    let manifest_path = dir.join("manifest.json");
    if let Ok(text) = std::fs::read_to_string(&manifest_path)
        && let Ok(manifest) = serde_json::from_str::<Manifest>(&text)
    {
        let s = &manifest.sources;
        if manifest.generator == GENERATOR_VERSION
            && s.rows == rows
            && s.seed == seed
            && s.gongan.exists()
            && s.minzheng.exists()
            && s.weijian.exists()
            && s.renshe.exists()
            && s.bases.dizhi.exists()
        {
            return Ok(manifest.sources);
        }
    }
    std::fs::create_dir_all(dir)?;
    let sources = generate(dir, rows, seed).await?;
    let manifest = Manifest {
        generator: GENERATOR_VERSION,
        sources: sources.clone(),
    };
    // Written last: a run interrupted before this point rebuilds next time.
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
    Ok(sources)
}

struct Person {
    id: String,
    name: String,
    gender: &'static str,
    birth: chrono::NaiveDate,
    ethnicity: &'static str,
    county: &'static Division,
    address: String,
    phone: String,
}

fn person(rng: &mut StdRng, local: &[&'static Division], all: &'static [Division]) -> Person {
    let county = if rng.random_bool(0.9) {
        *local.choose(rng).expect("counties")
    } else {
        all.choose(rng).expect("counties")
    };
    let birth = chrono::NaiveDate::from_ymd_opt(1940, 1, 1).expect("date")
        + chrono::Duration::days(rng.random_range(0..365 * 80));
    let seq: u32 = rng.random_range(0..1000);
    let first17 = format!("{}{}{seq:03}", county.code, birth.format("%Y%m%d"));
    let id = format!("{first17}{}", check_character(first17.as_bytes()));
    let given: String = (0..rng.random_range(1..=2))
        .map(|_| *GIVEN.choose(rng).expect("given"))
        .collect();
    let name = format!("{}{given}", SURNAMES.choose(rng).expect("surname"));
    let region = exchange_core::RegionCode::parse(&county.code).expect("listed county");
    let address = format!(
        "{}{}{}号",
        region.full_name().replace(' ', "").replace("市辖区", ""),
        ROADS.choose(rng).expect("road"),
        rng.random_range(1..400)
    );
    let prefix = ["138", "139", "150", "151", "186", "187", "135", "177"]
        .choose(rng)
        .expect("prefix");
    Person {
        id,
        name,
        gender: if seq % 2 == 1 { "1" } else { "2" },
        birth,
        ethnicity: if rng.random_bool(0.92) {
            "汉族"
        } else {
            ETHNICITIES.choose(rng).expect("ethnicity")
        },
        county,
        address,
        phone: format!("{prefix}{:08}", rng.random_range(0..100_000_000u32)),
    }
}

fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

fn birth_text(rng: &mut StdRng, birth: chrono::NaiveDate) -> String {
    let format = ["%Y-%m-%d", "%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日", "%Y.%m.%d"]
        .choose(rng)
        .expect("format");
    birth.format(format).to_string()
}

/// What [`next_day`] changed in the household register, by ID number.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NextDay {
    /// People whose address changed (they moved).
    pub moved: Vec<String>,
    /// People removed from the register (died or moved out of the city).
    pub removed: Vec<String>,
    /// People registered (born).
    pub born: Vec<String>,
}

/// Applies a day of changes to the household register in `sources`: two of the sample people
/// move, one person only the register holds leaves it, two newborns are registered. Each call is a new day: the
/// newborns' sequence numbers continue from the register's highest row id.
pub async fn next_day(sources: &Sources) -> Result<NextDay> {
    let sql_err = |e: sqlx::Error| Failure::msg(e.to_string());
    let url = format!("sqlite://{}", sources.gongan.display());
    let mut conn = SqliteConnection::connect(&url).await.map_err(sql_err)?;
    let mut tx = conn.begin().await.map_err(sql_err)?;
    let present: Vec<String> = sqlx::query_scalar("SELECT sfzh FROM hukou WHERE sfzh IN ($1, $2, $3)")
        .bind(sources.sample_ids.get(2))
        .bind(sources.sample_ids.get(3))
        .bind(sources.register_only_ids.first())
        .fetch_all(&mut *tx)
        .await
        .map_err(sql_err)?;
    let next_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM hukou")
        .fetch_one(&mut *tx)
        .await
        .map_err(sql_err)?;
    let mut day = NextDay::default();
    // The last sample people change; the first ones stay as other tests and the README use them.
    let movers = sources.sample_ids.get(2..4).unwrap_or_default();
    for id in present.iter().filter(|id| movers.contains(id)) {
        sqlx::query("UPDATE hukou SET hjdz = hjdz || '(' || $1 || '搬迁)' WHERE sfzh = $2")
            .bind(next_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(sql_err)?;
        day.moved.push(id.clone());
    }
    for id in present
        .iter()
        .filter(|id| sources.register_only_ids.first() == Some(id))
    {
        sqlx::query("DELETE FROM hukou WHERE sfzh = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(sql_err)?;
        day.removed.push(id.clone());
    }
    let born = chrono::Local::now().date_naive() - chrono::Duration::days(1);
    for n in 0..2 {
        let row = next_id + n;
        let first17 = format!("330106{}{:03}", born.format("%Y%m%d"), row % 1000);
        let id = format!("{first17}{}", check_character(first17.as_bytes()));
        sqlx::query("INSERT INTO hukou VALUES ($1, $2, '新生儿', $3, $4, '汉族', '330106', '浙江省杭州市西湖区文三路1号', NULL)")
            .bind(row)
            .bind(&id)
            .bind(if row % 2 == 1 { "1" } else { "2" })
            .bind(born.format("%Y-%m-%d").to_string())
            .execute(&mut *tx)
            .await
            .map_err(sql_err)?;
        day.born.push(id);
    }
    tx.commit().await.map_err(sql_err)?;
    conn.close().await.map_err(sql_err)?;
    Ok(day)
}

async fn create(path: &Path, ddl: &'static str) -> Result<SqliteConnection> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = SqliteConnection::connect(&url)
        .await
        .map_err(|e| Failure::msg(format!("{}: {e}", path.display())))?;
    sqlx::query(ddl)
        .execute(&mut conn)
        .await
        .map_err(|e| Failure::msg(e.to_string()))?;
    Ok(conn)
}

async fn generate(dir: &Path, rows: usize, seed: u64) -> Result<Sources> {
    let mut rng = StdRng::seed_from_u64(seed);
    let all = counties();
    // The demo city is 杭州市 (3301); one person in ten was born elsewhere.
    let local: Vec<&'static Division> = all.iter().filter(|d| d.code.starts_with("3301")).collect();
    let people: Vec<Person> = (0..rows).map(|_| person(&mut rng, &local, all)).collect();

    let gongan = dir.join("gongan_hukou.db");
    let mut conn = create(
        &gongan,
        "CREATE TABLE hukou (id INTEGER PRIMARY KEY, sfzh TEXT, xm TEXT, xb TEXT, csrq TEXT, \
         mz TEXT, hjqh TEXT, hjdz TEXT, lxdh TEXT)",
    )
    .await?;
    let mut sample_ids = Vec::new();
    let mut register_only_ids = Vec::new();
    let sql_err = |e: sqlx::Error| Failure::msg(e.to_string());
    let mut tx = conn.begin().await.map_err(sql_err)?;
    for (i, p) in people.iter().enumerate() {
        let dirt: f64 = rng.random();
        let mut id = p.id.clone();
        let mut birth = birth_text(&mut rng, p.birth);
        let mut name = p.name.clone();
        match dirt {
            d if d < 0.010 => {
                // A typo in the check character: quarantined.
                let wrong = if id.ends_with('0') { '1' } else { '0' };
                id.pop();
                id.push(wrong);
            }
            d if d < 0.020 => id = full_width(&id),
            d if d < 0.030 && chrono::Datelike::year(&p.birth) < 2000 => {
                id = format!("{}{}", &id[..6], &id[8..17]); // legacy 15 digits
            }
            d if d < 0.035 => birth = format!("{}-13-45", p.birth.format("%Y")), // impossible date: quarantined
            d if d < 0.045 => name = format!(" {} ", p.name),
            d if d < 0.050 => id = id.to_lowercase(),
            _ if sample_ids.len() < 5 && i % 7 == 3 => sample_ids.push(p.id.clone()),
            // Not in the civil-affairs (every 5th), health (every 4th) or insurance (every 6th)
            // sources.
            _ if register_only_ids.len() < 3 && i % 4 != 0 && i % 5 != 0 && i % 6 != 0 && i % 7 == 5 => {
                register_only_ids.push(p.id.clone())
            }
            _ => {}
        }
        sqlx::query("INSERT INTO hukou VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(i as i64 + 1)
            .bind(&id)
            .bind(&name)
            .bind(p.gender)
            .bind(&birth)
            .bind(p.ethnicity)
            .bind(&p.county.code)
            .bind(&p.address)
            .bind(rng.random_bool(0.3).then_some(p.phone.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(sql_err)?;
    }
    tx.commit().await.map_err(sql_err)?;
    conn.close().await.map_err(sql_err)?;

    // Civil affairs knows one in five of the same people (with phones, sometimes with other
    // details) and some people the register does not hold.
    let minzheng = dir.join("minzheng_jiuzhu.db");
    let mut conn = create(
        &minzheng,
        "CREATE TABLE jiuzhu_duixiang (id INTEGER PRIMARY KEY, shenfenzheng TEXT, xingming TEXT, \
         lianxidianhua TEXT, juzhudizhi TEXT)",
    )
    .await?;
    let mut tx = conn.begin().await.map_err(sql_err)?;
    let extra: Vec<Person> = (0..rows / 50).map(|_| person(&mut rng, &local, all)).collect();
    let overlap = people.iter().step_by(5);
    for (i, p) in overlap.chain(extra.iter()).enumerate() {
        let phone = if rng.random_bool(0.1) {
            format!("+86 {}", p.phone)
        } else {
            p.phone.clone()
        };
        let address = if rng.random_bool(0.2) {
            format!("{}(租住)", p.address)
        } else {
            p.address.clone()
        };
        sqlx::query("INSERT INTO jiuzhu_duixiang VALUES ($1, $2, $3, $4, $5)")
            .bind(i as i64 + 1)
            .bind(&p.id)
            .bind(&p.name)
            .bind(&phone)
            .bind(&address)
            .execute(&mut *tx)
            .await
            .map_err(sql_err)?;
    }
    tx.commit().await.map_err(sql_err)?;
    conn.close().await.map_err(sql_err)?;

    // Health: one in four people has signed a family doctor, phones typed every which way.
    let weijian = dir.join("weijian_qianyue.csv");
    let mut csv = String::from("编号,身份证号,姓名,联系电话,签约日期\r\n");
    for (i, p) in people.iter().step_by(4).enumerate() {
        let phone = match i % 3 {
            0 => p.phone.clone(),
            1 => format!("{}-{}-{}", &p.phone[..3], &p.phone[3..7], &p.phone[7..]),
            _ => full_width(&p.phone),
        };
        let signed = format!("2024年{}月{}日", 1 + i % 12, 1 + i % 28);
        csv.push_str(&format!("{},{},{},{phone},{signed}\r\n", i + 1, p.id, p.name));
    }
    let (gbk, _, _) = encoding_rs::GBK.encode(&csv);
    std::fs::write(&weijian, &gbk)?;

    // Human resources: one in six, in a workbook with a title row, gender coded 1/2 and birth
    // dates as yyyymmdd numbers.
    let renshe = dir.join("renshe_canbao.xlsx");
    let xlsx_err = |e: rust_xlsxwriter::XlsxError| Failure::msg(format!("writing {}: {e}", renshe.display()));
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet().set_name("参保人员").map_err(xlsx_err)?;
    sheet
        .write(0, 0, "杭州市城镇职工基本养老保险参保人员名册")
        .map_err(xlsx_err)?;
    for (c, header) in ["社会保障号码", "姓名", "性别", "出生日期"].iter().enumerate() {
        sheet.write(1, c as u16, *header).map_err(xlsx_err)?;
    }
    for (i, p) in people.iter().step_by(6).enumerate() {
        let row = i as u32 + 2;
        sheet.write(row, 0, p.id.as_str()).map_err(xlsx_err)?;
        sheet.write(row, 1, p.name.as_str()).map_err(xlsx_err)?;
        sheet
            .write(row, 2, if p.gender == "男" { 1 } else { 2 })
            .map_err(xlsx_err)?;
        let birth: f64 = p.birth.format("%Y%m%d").to_string().parse().unwrap_or_default();
        sheet.write(row, 3, birth).map_err(xlsx_err)?;
    }
    workbook.save(&renshe).map_err(xlsx_err)?;

    let refs: Vec<super::bases::PersonRef> = people
        .iter()
        .map(|p| super::bases::PersonRef {
            id: p.id.clone(),
            name: p.name.clone(),
            birth: p.birth,
        })
        .collect();
    let bases = super::bases::generate(dir, &refs, seed).await?;

    Ok(Sources {
        bases,
        gongan,
        minzheng,
        weijian,
        renshe,
        rows,
        seed,
        sample_ids,
        register_only_ids,
    })
}
