//! Masking (脱敏) by field kind, applied in the server before data leaves it.

use exchange_core::FieldKind;

/// Masks `value` as its kind calls for:
/// ID number keeps the first 6 and last 4 (`110105********002X`); a name keeps its first
/// character (`张*`, `欧阳**`); a mobile keeps 3 + 4 (`138****1234`); an address keeps up to
/// the district or county (`北京市朝阳区****`); a date keeps its year (`1990-**-**`); anything
/// else is hidden whole.
pub fn mask(kind: FieldKind, value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    mask_into(kind, value, &mut out);
    out
}

/// [`mask`], appended to `out`: for masking a column of values without a string per value.
pub fn mask_into(kind: FieldKind, value: &str, out: &mut String) {
    let chars = if value.is_ascii() {
        value.len()
    } else {
        value.chars().count()
    };
    // The byte offset of character `i` (`value.len()` at the end).
    let at = |i: usize| -> usize {
        if chars == value.len() {
            i
        } else {
            value.char_indices().nth(i).map_or(value.len(), |(b, _)| b)
        }
    };
    let stars = |out: &mut String, n: usize| out.extend(std::iter::repeat_n('*', n));
    let keep = |out: &mut String, head: usize, tail: usize| {
        if chars <= head + tail {
            stars(out, chars.max(1));
            return;
        }
        out.push_str(&value[..at(head)]);
        stars(out, chars - head - tail);
        out.push_str(&value[at(chars - tail)..]);
    };
    match kind {
        FieldKind::IdNumber => keep(out, 6, 4),
        FieldKind::PersonName => match chars {
            0 => {}
            1 => out.push('*'),
            _ => keep(out, 1, 0),
        },
        FieldKind::Mobile => keep(out, 3, 4),
        FieldKind::Phone if value.contains('-') => keep(out, 4, 2),
        FieldKind::Phone => keep(out, 3, 4),
        // A person as a subject is masked like an ID number; an organization's code is public.
        FieldKind::Subject if chars == 18 && value.as_bytes()[..17].iter().all(u8::is_ascii_digit) => keep(out, 6, 4),
        FieldKind::Subject | FieldKind::Uscc => keep(out, 8, 2),
        // Two decimals place a point within about a kilometre.
        FieldKind::Longitude | FieldKind::Latitude => match value.split_once('.') {
            Some((int, frac)) => {
                out.push_str(int);
                out.push('.');
                out.extend(frac.chars().take(2));
                out.push_str("****");
            }
            None => out.push_str(value),
        },
        FieldKind::Address => {
            // Up to the district or county, else the city among the first 12 characters,
            // else the first three characters.
            let cut = value
                .char_indices()
                .find(|(_, c)| matches!(c, '区' | '县' | '旗'))
                .or_else(|| value.char_indices().take(12).filter(|(_, c)| *c == '市').last())
                .map_or_else(|| at(chars.min(3)), |(b, c)| b + c.len_utf8());
            out.push_str(&value[..cut]);
            out.push_str("****");
        }
        FieldKind::Date if chars == 10 => {
            out.push_str(&value[..at(4)]);
            out.push_str("-**-**");
        }
        _ => out.push_str("******"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_as_the_standards_digest_says() {
        let cases = [
            (FieldKind::IdNumber, "11010519491231002X", "110105********002X"),
            (FieldKind::PersonName, "张三", "张*"),
            (FieldKind::PersonName, "欧阳娜娜", "欧***"),
            (FieldKind::PersonName, "李", "*"),
            (FieldKind::Mobile, "13800001234", "138****1234"),
            (FieldKind::Phone, "0571-87654321", "0571*******21"),
            (FieldKind::Subject, "11010519491231002X", "110105********002X"),
            (FieldKind::Subject, "91350100M000100Y43", "91350100********43"),
            (FieldKind::Longitude, "120.1551234", "120.15****"),
            (FieldKind::Address, "北京市朝阳区建国路88号", "北京市朝阳区****"),
            (FieldKind::Address, "江苏省昆山市玉山镇人民路1号", "江苏省昆山市****"),
            (FieldKind::Date, "1990-05-17", "1990-**-**"),
            (FieldKind::Text, "汉族", "******"),
        ];
        for (kind, value, want) in cases {
            assert_eq!(mask(kind, value), want, "{kind:?} {value}");
        }
    }

    /// A straightforward version (a `Vec<char>` per value, cut by characters), kept to hold the
    /// allocation-free one to the same output: a second statement of the masking rules, to be
    /// changed with them.
    fn reference(kind: FieldKind, value: &str) -> String {
        let chars: Vec<char> = value.chars().collect();
        let keep = |head: usize, tail: usize| -> String {
            if chars.len() <= head + tail {
                return "*".repeat(chars.len().max(1));
            }
            let mut out: String = chars[..head].iter().collect();
            out.extend(std::iter::repeat_n('*', chars.len() - head - tail));
            out.extend(&chars[chars.len() - tail..]);
            out
        };
        match kind {
            FieldKind::IdNumber => keep(6, 4),
            FieldKind::PersonName => match chars.len() {
                0 => String::new(),
                1 => "*".into(),
                _ => keep(1, 0),
            },
            FieldKind::Mobile => keep(3, 4),
            FieldKind::Phone if value.contains('-') => keep(4, 2),
            FieldKind::Phone => keep(3, 4),
            // A person as a subject is masked like an ID number; an organization's code is public.
            FieldKind::Subject if chars.len() == 18 && chars[..17].iter().all(char::is_ascii_digit) => keep(6, 4),
            FieldKind::Subject | FieldKind::Uscc => keep(8, 2),
            // Two decimals place a point within about a kilometre.
            FieldKind::Longitude | FieldKind::Latitude => match value.split_once('.') {
                Some((int, frac)) => format!("{int}.{}****", frac.chars().take(2).collect::<String>()),
                None => value.to_string(),
            },
            FieldKind::Address => {
                let cut = chars
                    .iter()
                    .position(|c| matches!(c, '区' | '县' | '旗'))
                    .or_else(|| chars.iter().take(12).rposition(|c| *c == '市'))
                    .map(|i| i + 1)
                    .unwrap_or(chars.len().min(3));
                let mut out: String = chars[..cut].iter().collect();
                out.push_str("****");
                out
            }
            FieldKind::Date if chars.len() == 10 => format!("{}-**-**", chars[..4].iter().collect::<String>()),
            _ => "******".into(),
        }
    }

    const KINDS: [FieldKind; 16] = [
        FieldKind::IdNumber,
        FieldKind::PersonName,
        FieldKind::Gender,
        FieldKind::Date,
        FieldKind::RegionCode,
        FieldKind::Address,
        FieldKind::Mobile,
        FieldKind::Text,
        FieldKind::Uscc,
        FieldKind::Subject,
        FieldKind::Phone,
        FieldKind::Decimal,
        FieldKind::IndustryCode,
        FieldKind::Longitude,
        FieldKind::Latitude,
        FieldKind::Code,
    ];

    proptest::proptest! {
        #[test]
        fn masks_as_the_reference_does(
            kind in 0..KINDS.len(),
            value in "([0-9.X-]|[区县旗市省路号]|[a-z]|[张欧阳]|\\PC){0,24}",
        ) {
            let kind = KINDS[kind];
            proptest::prop_assert_eq!(mask(kind, &value), reference(kind, &value));
            let mut out = String::from("前缀");
            mask_into(kind, &value, &mut out);
            proptest::prop_assert_eq!(out, format!("前缀{}", reference(kind, &value)));
        }
    }

    #[test]
    fn masked_values_never_contain_the_hidden_part() {
        let masked = mask(FieldKind::IdNumber, "440524188001010014");
        assert!(!masked.contains("18800101"));
    }
}
