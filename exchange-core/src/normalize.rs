//! Normalization of values as departments actually store them: full-width characters, stray
//! whitespace, dates in half a dozen formats, code tables.

use std::borrow::Cow;

use chrono::NaiveDate;

/// Folds full-width ASCII variants (U+FF01..U+FF5E) and the ideographic space to half-width,
/// and trims surrounding whitespace. `"１１０１０５　"` becomes `"110105"`. A value with nothing to
/// fold is borrowed, trimmed: most values are, and a pull normalizes millions of them.
pub fn fold_width(s: &str) -> Cow<'_, str> {
    // Every character to fold is encoded starting with 0xEF (U+FF01..U+FF5E) or 0xE3
    // (U+3000): a value without those bytes has nothing to fold, found without decoding it.
    if memchr::memchr2(0xEF, 0xE3, s.as_bytes()).is_none() || !s.chars().any(|c| half_width(c).is_some()) {
        return Cow::Borrowed(s.trim());
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        out.push(half_width(c).unwrap_or(c));
    }
    let trimmed = out.trim();
    Cow::Owned(if trimmed.len() == out.len() {
        out
    } else {
        trimmed.to_string()
    })
}

/// The half-width form of a full-width character, if it is one.
fn half_width(c: char) -> Option<char> {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0),
        '\u{3000}' => Some(' '),
        _ => None,
    }
}

/// Day 0 of the date columns (Arrow's `Date32`) and of date cursors.
pub const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

/// A date as the libraries store it: `YYYY-MM-DD`.
pub fn format_date(date: NaiveDate) -> String {
    use chrono::Datelike;
    let (year, month, day) = (date.year(), date.month(), date.day());
    if !(0..=9999).contains(&year) {
        return format!("{year:04}-{month:02}-{day:02}");
    }
    let mut out = String::with_capacity(10);
    let year = year as u32;
    for digit in [year / 1000, year / 100 % 10, year / 10 % 10, year % 10] {
        out.push(char::from(b'0' + digit as u8));
    }
    for part in [month, day] {
        out.push('-');
        out.push(char::from(b'0' + (part / 10) as u8));
        out.push(char::from(b'0' + (part % 10) as u8));
    }
    out
}

/// Reads a date written exactly as [`format_date`] writes it.
pub fn parse_stored_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let mut compact = [0u8; 8];
    compact[..4].copy_from_slice(&b[..4]);
    compact[4..6].copy_from_slice(&b[5..7]);
    compact[6..].copy_from_slice(&b[8..]);
    parse_compact_date(&compact)
}

/// Reads a date written `YYYYMMDD`, as in an ID number.
pub fn parse_compact_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 8 {
        return None;
    }
    NaiveDate::from_ymd_opt(
        parse_digits(&b[0..4])? as i32,
        parse_digits(&b[4..6])?,
        parse_digits(&b[6..8])?,
    )
}

/// The number a short run of ASCII digits (at most 9) writes; `None` for any other byte.
pub fn parse_digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    b.iter()
        .try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
}

/// Parses a date in the formats seen in departmental data: `2021-12-17`, `2021/12/17`,
/// `2021.12.17`, `20211217`, `2021年12月17日`, with or without leading zeros, and with a time part
/// after a space or `T` (ignored). Full-width digits are accepted.
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let s = fold_width(raw);
    let s = s.split([' ', 'T']).next().unwrap_or("");
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return parse_compact_date(s.as_bytes());
    }
    let mut parts = s.split(['-', '/', '.', '年', '月', '日']).filter(|p| !p.is_empty());
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !WRITTEN_YEARS.contains(&y) {
        return None;
    }
    NaiveDate::from_ymd_opt(y, m, d)
}

/// The years [`parse_date`] accepts in a date written with separators.
const WRITTEN_YEARS: std::ops::RangeInclusive<i32> = 1000..=9999;

/// [`parse_date`] written as [`format_date`] writes it, borrowing a date already written so.
pub fn date(raw: &str) -> Option<Cow<'_, str>> {
    use chrono::Datelike;
    let trimmed = raw.trim();
    match parse_stored_date(trimmed) {
        Some(stored) if WRITTEN_YEARS.contains(&stored.year()) => Some(Cow::Borrowed(trimmed)),
        _ => parse_date(raw).map(|date| Cow::Owned(format_date(date))),
    }
}

/// Gender per GB/T 2261.1: `1`/`男`/`M` → 男, `2`/`女`/`F` → 女, `0` → 未知的性别,
/// `9` → 未说明的性别.
pub fn normalize_gender(raw: &str) -> Option<&'static str> {
    let folded = fold_width(raw);
    let is = |word: &str| folded.eq_ignore_ascii_case(word);
    match folded.as_ref() {
        "1" | "男" => Some("男"),
        "2" | "女" => Some("女"),
        "0" | "未知" | "未知的性别" => Some("未知的性别"),
        "9" | "未说明" | "未说明的性别" => Some("未说明的性别"),
        _ if is("M") || is("MALE") => Some("男"),
        _ if is("F") || is("FEMALE") => Some("女"),
        _ => None,
    }
}

/// A mainland mobile number: 11 digits starting with 1, after folding width and dropping
/// spaces, dashes and a `+86`/`86` prefix.
pub fn normalize_mobile(raw: &str) -> Option<String> {
    mobile(raw).map(Cow::into_owned)
}

/// [`normalize_mobile`], borrowing a number already written as 11 digits.
pub fn mobile(raw: &str) -> Option<Cow<'_, str>> {
    let trimmed = raw.trim();
    if is_mobile(trimmed) {
        return Some(Cow::Borrowed(trimmed));
    }
    let folded: String = fold_width(raw).chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = folded
        .strip_prefix("+86")
        .or_else(|| folded.strip_prefix("86").filter(|rest| rest.len() == 11))
        .unwrap_or(&folded);
    is_mobile(digits).then(|| Cow::Owned(digits.to_string()))
}

fn is_mobile(digits: &str) -> bool {
    digits.len() == 11 && digits.starts_with('1') && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A telephone number: a mainland mobile (as [`normalize_mobile`]) or a landline with its area
/// code, written `0571-87654321` (area code `0` + 2–3 digits, local number 7–8 digits; an
/// extension after `-`, `转` or `ext` is dropped).
pub fn normalize_phone(raw: &str) -> Option<String> {
    if let Some(mobile) = normalize_mobile(raw) {
        return Some(mobile);
    }
    let folded = fold_width(raw).replace(['(', ')', '（', '）'], "-");
    let main = folded.split(['转', 'x', 'X']).next().unwrap_or("");
    let main = main
        .strip_prefix("+86")
        .or_else(|| main.strip_prefix("86-"))
        .unwrap_or(main);
    let main = main.replace(' ', "");
    let groups: Vec<&str> = main.split('-').filter(|g| !g.is_empty()).collect();
    let (area, local) = match groups.as_slice() {
        [area, local] | [area, local, _] => (area.to_string(), local.to_string()),
        [all] if all.starts_with('0') && (10..=12).contains(&all.len()) => {
            // 010/02x numbers have 3-digit area codes, the rest 4.
            let cut = if all.starts_with("01") || all.starts_with("02") {
                3
            } else {
                4
            };
            (all[..cut].to_string(), all[cut..].to_string())
        }
        _ => return None,
    };
    let area = if area.starts_with('0') {
        area
    } else {
        format!("0{area}")
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    ((3..=4).contains(&area.len()) && (7..=8).contains(&local.len()) && digits(&area) && digits(&local))
        .then(|| format!("{area}-{local}"))
}

/// A decimal number as registers write amounts: thousands separators and surrounding
/// whitespace dropped, leading zeros and trailing fractional zeros removed (`1,000.50` →
/// `1000.5`).
pub fn normalize_decimal(raw: &str) -> Option<String> {
    let s: String = fold_width(raw)
        .chars()
        .filter(|c| !matches!(c, ',' | '，' | ' '))
        .collect();
    let (sign, body) = match s.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", s.strip_prefix('+').unwrap_or(&s)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let sign = if int == "0" && frac.is_empty() { "" } else { sign };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// A coordinate in decimal degrees within `[min, max]`, to at most 7 decimals (about 1 cm).
pub fn normalize_degrees(raw: &str, min: f64, max: f64) -> Option<String> {
    let value = normalize_decimal(raw)?;
    let degrees: f64 = value.parse().ok()?;
    if !(min..=max).contains(&degrees) {
        return None;
    }
    match value.split_once('.') {
        Some((_, frac)) if frac.len() > 7 => normalize_decimal(&format!("{degrees:.7}")),
        _ => Some(value),
    }
}

/// A GB/T 4754 industry code: a section letter A–T, optionally followed by a division (2
/// digits), group (3) or class (4), e.g. `C`, `C13`, `C1311`. Lower-case letters are accepted.
pub fn normalize_industry_code(raw: &str) -> Option<String> {
    let s = fold_width(raw).to_ascii_uppercase();
    let mut chars = s.chars();
    let section = chars.next()?;
    let digits = chars.as_str();
    (('A'..='T').contains(&section)
        && matches!(digits.len(), 0 | 2 | 3 | 4)
        && digits.bytes().all(|b| b.is_ascii_digit()))
    .then_some(s)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every real date, written in any of the formats departments use, parses back to itself.
        #[test]
        fn every_date_in_every_practical_format_parses_back(days in 0i64..(200 * 366), format in 0usize..7) {
            let date = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Duration::days(days);
            let text = date
                .and_hms_opt(8, 30, 0)
                .unwrap()
                .format(["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日", "%Y年%-m月%-d日", "%Y-%m-%d %H:%M:%S"][format])
                .to_string();
            prop_assert_eq!(parse_date(&text), Some(date), "{}", text);
        }

        /// The stored date form is chrono's `%Y-%m-%d`, read back exactly; any other text is not it.
        #[test]
        fn stored_dates_round_trip(days in 0i64..(3000 * 366), other in "[0-9-]{8,11}") {
            let date = NaiveDate::from_ymd_opt(1000, 1, 1).unwrap() + chrono::Duration::days(days);
            let text = format_date(date);
            prop_assert_eq!(&text, &date.format("%Y-%m-%d").to_string());
            prop_assert_eq!(parse_stored_date(&text), Some(date));
            prop_assert_eq!(parse_stored_date(&other), NaiveDate::parse_from_str(&other, "%Y-%m-%d").ok().filter(|d| format_date(*d) == other));
            let compact = date.format("%Y%m%d").to_string();
            prop_assert_eq!(parse_compact_date(compact.as_bytes()), Some(date));
            prop_assert_eq!(
                parse_compact_date(other.as_bytes()),
                NaiveDate::parse_from_str(&other, "%Y%m%d").ok().filter(|d| d.format("%Y%m%d").to_string() == other)
            );
        }

        /// Every mobile, however it is typed, normalizes to its 11 digits; every landline to
        /// `area-local`.
        #[test]
        fn every_phone_as_typed_normalizes(
            prefix in proptest::sample::select(vec!["138", "150", "177", "186", "199"]),
            rest in "[0-9]{8}",
            style in 0usize..4,
            area in proptest::sample::select(vec!["010", "021", "0571", "0898"]),
            local in "[2-8][0-9]{6,7}",
        ) {
            let mobile = format!("{prefix}{rest}");
            let typed = match style {
                0 => mobile.clone(),
                1 => format!("+86 {} {} {}", &mobile[..3], &mobile[3..7], &mobile[7..]),
                2 => format!("{}-{}-{}", &mobile[..3], &mobile[3..7], &mobile[7..]),
                _ => mobile.chars().map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap()).collect(),
            };
            prop_assert_eq!(normalize_phone(&typed), Some(mobile.clone()));
            prop_assert_eq!(normalize_mobile(&typed), Some(mobile));
            let landline = format!("{area}-{local}");
            prop_assert_eq!(normalize_phone(&format!("({area}){local}")), Some(landline.clone()));
            prop_assert_eq!(normalize_phone(&landline), Some(landline));
        }

        /// The width fold is the character-by-character map, trimmed, whatever the text holds
        /// (its shortcut skips values without a byte that starts a foldable character).
        #[test]
        fn the_width_fold_maps_every_character(s in "[a-z 0-9\u{3000}\u{3001}\u{FF01}-\u{FF70}张。]{0,12}") {
            let mapped: String = s.chars().map(|c| half_width(c).unwrap_or(c)).collect();
            let folded = fold_width(&s);
            prop_assert_eq!(folded.as_ref(), mapped.trim());
        }

        /// A decimal's canonical form is a fixed point and keeps its value.
        #[test]
        fn decimals_normalize_to_a_fixed_point(int in 0u64..10_000_000_000, frac in 0u32..1000, zeros in 0usize..3) {
            let raw = format!("{}{int}.{frac:03}", "0".repeat(zeros));
            let canonical = normalize_decimal(&raw).unwrap();
            prop_assert_eq!(normalize_decimal(&canonical), Some(canonical.clone()));
            let value: f64 = canonical.parse().unwrap();
            prop_assert!((value - (int as f64 + f64::from(frac) / 1000.0)).abs() < 1e-3);
        }
    }

    #[test]
    fn folds_full_width_digits_letters_and_spaces() {
        assert_eq!(fold_width("　１１０１０５ｘ "), "110105x");
        assert_eq!(fold_width("张三"), "张三");
    }

    #[test]
    fn parses_dates_in_practical_formats() {
        let want = NaiveDate::from_ymd_opt(2021, 12, 17);
        for raw in [
            "2021-12-17",
            "2021/12/17",
            "2021.12.17",
            "20211217",
            "2021年12月17日",
            "２０２１－１２－１７",
            "2021-12-17 08:30:00",
            "2021-12-17T08:30:00Z",
        ] {
            assert_eq!(parse_date(raw), want, "{raw}");
        }
        assert_eq!(parse_date("2021/1/5"), NaiveDate::from_ymd_opt(2021, 1, 5));
        for bad in ["2021-02-30", "17/12/2021", "", "2021-12", "abc", "20211317"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn genders_follow_gb_t_2261_1() {
        assert_eq!(normalize_gender("1"), Some("男"));
        assert_eq!(normalize_gender("２"), Some("女"));
        assert_eq!(normalize_gender("f"), Some("女"));
        assert_eq!(normalize_gender(" Male "), Some("男"));
        assert_eq!(normalize_gender("ＦＥＭＡＬＥ"), Some("女"));
        assert_eq!(normalize_gender("x"), None);
    }

    #[test]
    fn phones_are_mobiles_or_landlines_with_area_codes() {
        for (raw, want) in [
            ("0571-87654321", Some("0571-87654321")),
            ("(0571)87654321", Some("0571-87654321")),
            ("010 6512 3456", Some("010-65123456")),
            ("01065123456", Some("010-65123456")),
            ("057187654321", Some("0571-87654321")),
            ("0571-87654321转808", Some("0571-87654321")),
            ("+86 138 0013 8000", Some("13800138000")),
            ("87654321", None),
            ("0571-1234", None),
        ] {
            assert_eq!(normalize_phone(raw).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn decimals_and_degrees_are_canonical() {
        for (raw, want) in [
            ("1,000.50", Some("1000.5")),
            ("００１２", Some("12")),
            ("-0.0", Some("0")),
            ("+3.140", Some("3.14")),
            ("1.2.3", None),
            ("十万", None),
            ("", None),
        ] {
            assert_eq!(normalize_decimal(raw).as_deref(), want, "{raw}");
        }
        assert_eq!(
            normalize_degrees("120.123456789", -180.0, 180.0).as_deref(),
            Some("120.1234568")
        );
        assert_eq!(normalize_degrees("91", -90.0, 90.0), None);
    }

    #[test]
    fn industry_codes_follow_gb_t_4754() {
        assert_eq!(normalize_industry_code("c1311").as_deref(), Some("C1311"));
        assert_eq!(normalize_industry_code("I65").as_deref(), Some("I65"));
        assert_eq!(normalize_industry_code("Z11"), None);
        assert_eq!(normalize_industry_code("C1"), None);
        assert_eq!(normalize_industry_code("1311"), None);
    }

    #[test]
    fn mobiles_lose_prefix_and_separators() {
        assert_eq!(normalize_mobile("+86 138-0013-8000").as_deref(), Some("13800138000"));
        assert_eq!(normalize_mobile("8613800138000").as_deref(), Some("13800138000"));
        assert_eq!(normalize_mobile("23800138000"), None);
        assert_eq!(normalize_mobile("1380013800"), None);
    }
}
