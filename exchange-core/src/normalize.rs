//! Normalization of values as departments actually store them: full-width characters, stray
//! whitespace, dates in half a dozen formats, code tables.

use chrono::NaiveDate;

/// Folds full-width ASCII variants (U+FF01..U+FF5E) and the ideographic space to half-width,
/// and trims surrounding whitespace. `"１１０１０５　"` becomes `"110105"`.
pub fn fold_width(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        out.push(match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        });
    }
    let trimmed = out.trim();
    if trimmed.len() == out.len() {
        out
    } else {
        trimmed.to_string()
    }
}

/// Parses a date in the formats seen in departmental data: `2021-12-17`, `2021/12/17`,
/// `2021.12.17`, `20211217`, `2021年12月17日`, with or without leading zeros, and with a time part
/// after a space or `T` (ignored). Full-width digits are accepted.
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let s = fold_width(raw);
    let s = s.split([' ', 'T']).next().unwrap_or("");
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        let (y, m, d) = (&s[0..4], &s[4..6], &s[6..8]);
        return NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    }
    let mut parts = s.split(['-', '/', '.', '年', '月', '日']).filter(|p| !p.is_empty());
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1000..=9999).contains(&y) {
        return None;
    }
    NaiveDate::from_ymd_opt(y, m, d)
}

/// Gender per GB/T 2261.1: `1`/`男`/`M` → 男, `2`/`女`/`F` → 女, `0` → 未知的性别,
/// `9` → 未说明的性别.
pub fn normalize_gender(raw: &str) -> Option<&'static str> {
    match fold_width(raw).to_ascii_uppercase().as_str() {
        "1" | "男" | "M" | "MALE" => Some("男"),
        "2" | "女" | "F" | "FEMALE" => Some("女"),
        "0" | "未知" | "未知的性别" => Some("未知的性别"),
        "9" | "未说明" | "未说明的性别" => Some("未说明的性别"),
        _ => None,
    }
}

/// A mainland mobile number: 11 digits starting with 1, after folding width and dropping
/// spaces, dashes and a `+86`/`86` prefix.
pub fn normalize_mobile(raw: &str) -> Option<String> {
    let folded: String = fold_width(raw).chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = folded
        .strip_prefix("+86")
        .or_else(|| folded.strip_prefix("86").filter(|rest| rest.len() == 11))
        .unwrap_or(&folded);
    (digits.len() == 11 && digits.starts_with('1') && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(normalize_gender("x"), None);
    }

    #[test]
    fn mobiles_lose_prefix_and_separators() {
        assert_eq!(normalize_mobile("+86 138-0013-8000").as_deref(), Some("13800138000"));
        assert_eq!(normalize_mobile("8613800138000").as_deref(), Some("13800138000"));
        assert_eq!(normalize_mobile("23800138000"), None);
        assert_eq!(normalize_mobile("1380013800"), None);
    }
}
