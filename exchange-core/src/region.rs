//! GB/T 2260 administrative division codes (行政区划代码), embedded from `data/gbt2260`.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

const PROVINCES_CSV: &str = include_str!("../data/gbt2260/provinces.csv");
const CITIES_CSV: &str = include_str!("../data/gbt2260/cities.csv");
const AREAS_CSV: &str = include_str!("../data/gbt2260/areas.csv");
const STREETS_CSV: &str = include_str!("../data/gbt2260/streets.csv");

/// One division: its code (2, 4, 6 or, for townships, 9 digits) and Chinese name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Division {
    /// The GB/T 2260 code.
    pub code: String,
    /// The official Chinese name, e.g. 东城区.
    pub name: String,
}

struct Table {
    names: HashMap<String, String>,
    /// County-level areas (6 digits) in file order, for deterministic sampling.
    counties: Vec<Division>,
    /// Township-level divisions (9 digits: 乡、镇、街道) in file order.
    townships: Vec<Division>,
}

fn parse_csv(csv: &str) -> impl Iterator<Item = (String, String)> + '_ {
    csv.lines().skip(1).filter_map(|line| {
        let mut cols = line.splitn(3, ',');
        let code = cols.next()?.trim().to_string();
        let name = cols.next()?.trim().trim_matches('"').to_string();
        Some((code, name))
    })
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut names = HashMap::new();
    for csv in [PROVINCES_CSV, CITIES_CSV] {
        names.extend(parse_csv(csv));
    }
    let counties: Vec<Division> = parse_csv(AREAS_CSV)
        .map(|(code, name)| Division { code, name })
        .collect();
    names.extend(counties.iter().map(|d| (d.code.clone(), d.name.clone())));
    let townships: Vec<Division> = parse_csv(STREETS_CSV)
        .map(|(code, name)| Division { code, name })
        .collect();
    names.extend(townships.iter().map(|d| (d.code.clone(), d.name.clone())));
    Table {
        names,
        counties,
        townships,
    }
});

/// A known GB/T 2260 code of 2, 4 or 6 digits, or a 9-digit township code extending one. Holding one means the code is in the list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegionCode(String);

/// Why a string is not a known region code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    /// Not 2, 4, 6 or 9 ASCII digits.
    #[error("a region code is 2, 4 or 6 digits (9 for a township), got {0:?}")]
    Malformed(String),
    /// Well-formed but not in the GB/T 2260 list.
    #[error("{0} is not a GB/T 2260 region code")]
    Unknown(String),
}

impl RegionCode {
    /// Parses a code, accepting full-width digits and surrounding whitespace.
    pub fn parse(raw: &str) -> Result<Self, RegionCodeError> {
        Self::normalized(raw).map(|code| Self(code.into_owned()))
    }

    /// The code as [`RegionCode::parse`] writes it, borrowed from `raw` where it can be.
    pub fn normalized(raw: &str) -> Result<std::borrow::Cow<'_, str>, RegionCodeError> {
        let s = crate::normalize::fold_width(raw);
        if !matches!(s.len(), 2 | 4 | 6 | 9) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionCodeError::Malformed(raw.to_string()));
        }
        if TABLE.names.contains_key(s.as_ref()) {
            Ok(s)
        } else {
            Err(RegionCodeError::Unknown(s.into_owned()))
        }
    }

    /// The code as digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The official name of this division.
    pub fn name(&self) -> &str {
        &TABLE.names[&self.0]
    }

    /// The province (first two digits) this code belongs to.
    pub fn province(&self) -> RegionCode {
        RegionCode(self.0[..2].to_string())
    }

    /// "北京市 市辖区 东城区": the names from province down to this code.
    pub fn full_name(&self) -> String {
        let mut parts = vec![TABLE.names[&self.0[..2]].as_str()];
        if self.0.len() >= 4
            && let Some(city) = TABLE.names.get(&self.0[..4])
        {
            parts.push(city);
        }
        if self.0.len() >= 6
            && let Some(county) = TABLE.names.get(&self.0[..6])
        {
            parts.push(county);
        }
        if self.0.len() == 9 {
            parts.push(self.name());
        }
        parts.join(" ")
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether the 2-digit province prefix is a known province.
pub fn is_known_province(prefix: &str) -> bool {
    prefix.len() == 2 && TABLE.names.contains_key(prefix)
}

/// Whether the 6-digit code is a county-level area in the current list.
pub fn is_known_county(code: &str) -> bool {
    code.len() == 6 && TABLE.names.contains_key(code)
}

/// All county-level areas of the current list, in a stable order.
pub fn counties() -> &'static [Division] {
    &TABLE.counties
}

/// All township-level divisions (9-digit codes), in a stable order.
pub fn townships() -> &'static [Division] {
    &TABLE.townships
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn listed_code() -> impl Strategy<Value = String> {
        let all: Vec<String> = counties()
            .iter()
            .chain(townships())
            .map(|d| d.code.clone())
            .chain(TABLE.names.keys().filter(|k| k.len() <= 4).cloned())
            .collect();
        proptest::sample::select(all)
    }

    proptest! {
        #[test]
        fn every_listed_code_parses_and_round_trips(code in listed_code(), full_width: bool, pad: bool) {
            let mut raw: String = if full_width {
                code.chars().map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap()).collect()
            } else {
                code.clone()
            };
            if pad {
                raw = format!(" {raw}\u{3000}");
            }
            let parsed = RegionCode::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), code.as_str());
            prop_assert_eq!(RegionCode::parse(&parsed.to_string()).unwrap(), parsed.clone());
            prop_assert!(!parsed.name().is_empty());
        }

        #[test]
        fn a_code_of_another_length_is_malformed(digits in "[0-9]{1,12}") {
            prop_assume!(![2, 4, 6, 9].contains(&digits.len()));
            prop_assert!(matches!(RegionCode::parse(&digits), Err(RegionCodeError::Malformed(_))));
        }
    }

    #[test]
    fn parses_township_codes() {
        let code = RegionCode::parse("110101001").unwrap();
        assert_eq!(code.name(), "东华门街道");
        assert!(code.full_name().ends_with("东城区 东华门街道"), "{}", code.full_name());
        assert!(RegionCode::parse("110101999").is_err());
        assert!(RegionCode::parse("1101010").is_err());
    }

    #[test]
    fn parses_known_codes_with_names() {
        let code = RegionCode::parse("110105").unwrap();
        assert_eq!(code.name(), "朝阳区");
        assert_eq!(code.province().name(), "北京市");
        assert!(code.full_name().starts_with("北京市"));
        assert_eq!(RegionCode::parse("４４").unwrap().name(), "广东省");
    }

    #[test]
    fn rejects_malformed_and_unknown_codes() {
        assert!(matches!(
            RegionCode::parse("1101055"),
            Err(RegionCodeError::Malformed(_))
        ));
        assert!(matches!(RegionCode::parse("99"), Err(RegionCodeError::Unknown(_))));
        assert!(matches!(RegionCode::parse("11a1"), Err(RegionCodeError::Malformed(_))));
    }

    #[test]
    fn list_has_every_province_and_thousands_of_counties() {
        assert!(is_known_province("65"));
        assert!(!is_known_province("00"));
        assert!(counties().len() > 2900);
    }
}
