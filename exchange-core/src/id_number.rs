//! Citizen ID numbers (公民身份号码), GB 11643-1999, with the upgrade of GB 11643-1989 15-digit
//! numbers.

use std::fmt;

use chrono::{Datelike, NaiveDate};

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// A valid 18-character citizen ID number. The only way to get one is [`IdNumber::parse`], so
/// holding one means: right length and characters, a known province, a real birth date not in
/// the future, and a correct check character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdNumber(String);

/// Why a string is not a citizen ID number. Each variant says what a data officer has to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    /// Neither 18 nor (legacy) 15 characters after normalization.
    #[error("an ID number has 18 characters (or 15 for a legacy number), got {0}")]
    Length(usize),
    /// A character other than a digit (or X in the last place).
    #[error("an ID number has digits only, with X allowed as the check character")]
    Character,
    /// The first two digits are no GB/T 2260 province.
    #[error("{0} is not a GB/T 2260 province code")]
    Province(String),
    /// Positions 7-14 are not a real date, or the date is in the future.
    #[error("{0} is not a valid birth date")]
    BirthDate(String),
    /// The 18th character does not match the checksum of the first 17.
    #[error("wrong check character: expected {expected}, found {found}")]
    Checksum {
        /// The character the first 17 digits call for.
        expected: char,
        /// The character given.
        found: char,
    },
}

/// Today's local date, and the Unix second the next local day starts at.
static TODAY: std::sync::RwLock<Option<(NaiveDate, i64)>> = std::sync::RwLock::new(None);

/// Whether `date` is after today's local date. A date before the one [`TODAY`] keeps cannot be
/// (the date does not go back, and a kept date is at most stale), so the clock is read only for
/// the few dates from that day on: a connector run checks a birth date per row.
fn after_today(date: NaiveDate) -> bool {
    let kept = TODAY.read().unwrap_or_else(|e| e.into_inner()).map(|(today, _)| today);
    kept.is_none_or(|today| date >= today) && date > local_today()
}

/// Today's local date. `chrono::Local::now` looks up the time zone on every call, and a
/// connector run parses an ID number per row; the date is kept until the next local midnight,
/// so the clock is read once a call and the time zone once a day.
fn local_today() -> NaiveDate {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Some((today, until)) = *TODAY.read().unwrap_or_else(|e| e.into_inner())
        && now < until
    {
        return today;
    }
    let local = chrono::Local::now();
    let today = local.date_naive();
    // The next local midnight; an hour from now when the time zone has none (a DST gap).
    let until = today
        .succ_opt()
        .and_then(|tomorrow| tomorrow.and_hms_opt(0, 0, 0))
        .and_then(|midnight| midnight.and_local_timezone(chrono::Local).earliest())
        .map_or(now + 3600, |midnight| midnight.timestamp());
    *TODAY.write().unwrap_or_else(|e| e.into_inner()) = Some((today, until));
    today
}

/// ASCII bytes (checked digits) as a `String`.
fn ascii(digits: &[u8]) -> String {
    digits.iter().map(|&b| char::from(b)).collect()
}

/// The GB 11643 check character for the first 17 digits (ASCII digits).
pub fn check_character(first17: &[u8]) -> char {
    let sum: u32 = first17.iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    CHECK_CHARS[(sum % 11) as usize] as char
}

impl IdNumber {
    /// Parses an ID number as departments store them: trims, folds full-width characters,
    /// upper-cases `x`, and upgrades a 15-digit legacy number by inserting the century `19` and
    /// computing the check character.
    pub fn parse(raw: &str) -> Result<Self, IdNumberError> {
        Self::digits_on(raw, after_today).map(|digits| Self(ascii(&digits)))
    }

    /// [`IdNumber::parse`] with "today" given, so that the future-date rule is testable.
    pub fn parse_on(raw: &str, today: NaiveDate) -> Result<Self, IdNumberError> {
        let digits = Self::digits_on(raw, |date| date > today)?;
        Ok(Self(ascii(&digits)))
    }

    /// The number as [`IdNumber::parse`] writes it, borrowed from `raw` when `raw` (trimmed)
    /// is written so already: a pull checks millions that are.
    pub fn normalized(raw: &str) -> Result<std::borrow::Cow<'_, str>, IdNumberError> {
        let digits = Self::digits_on(raw, after_today)?;
        let trimmed = raw.trim();
        Ok(if trimmed.as_bytes() == digits {
            std::borrow::Cow::Borrowed(trimmed)
        } else {
            std::borrow::Cow::Owned(ascii(&digits))
        })
    }

    /// The 18 characters `raw` stands for (trimmed, width folded, `x` upper-cased, a 15-digit
    /// number upgraded), checked.
    fn digits_on(raw: &str, after_today: impl Fn(NaiveDate) -> bool) -> Result<[u8; 18], IdNumberError> {
        let folded = crate::normalize::fold_width(raw);
        let bytes = folded.as_bytes();
        let mut digits = [0u8; 18];
        match bytes.len() {
            18 => digits.copy_from_slice(bytes),
            15 => {
                if !bytes.iter().all(u8::is_ascii_digit) {
                    return Err(IdNumberError::Character);
                }
                digits[..6].copy_from_slice(&bytes[..6]);
                digits[6..8].copy_from_slice(b"19");
                digits[8..17].copy_from_slice(&bytes[6..]);
                digits[17] = check_character(&digits[..17]) as u8;
            }
            _ => return Err(IdNumberError::Length(folded.chars().count())),
        }
        digits[17] = digits[17].to_ascii_uppercase();
        if !digits[..17].iter().all(u8::is_ascii_digit) || !(digits[17].is_ascii_digit() || digits[17] == b'X') {
            return Err(IdNumberError::Character);
        }
        let province = std::str::from_utf8(&digits[..2]).unwrap_or_default();
        if !crate::region::is_known_province(province) {
            return Err(IdNumberError::Province(province.to_string()));
        }
        let birth = std::str::from_utf8(&digits[6..14]).unwrap_or_default();
        match crate::normalize::parse_compact_date(&digits[6..14]) {
            Some(date) if date.year() >= 1850 && !after_today(date) => {}
            _ => return Err(IdNumberError::BirthDate(birth.to_string())),
        }
        let expected = check_character(&digits[..17]);
        let found = digits[17] as char;
        if expected != found {
            return Err(IdNumberError::Checksum { expected, found });
        }
        Ok(digits)
    }

    /// The 18 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address code (GB/T 2260 county at the time of issue).
    pub fn region_code(&self) -> &str {
        &self.0[..6]
    }

    /// Whether the address code is in the current GB/T 2260 list. Retired codes stay valid on
    /// old ID numbers, so `false` is a warning, never a rejection.
    pub fn region_code_is_current(&self) -> bool {
        crate::region::is_known_county(self.region_code())
    }

    /// The birth date in positions 7-14.
    pub fn birth_date(&self) -> NaiveDate {
        crate::normalize::parse_compact_date(&self.0.as_bytes()[6..14]).expect("checked by parse")
    }

    /// 男 for an odd sequence number, 女 for an even one.
    pub fn gender(&self) -> &'static str {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            "男"
        } else {
            "女"
        }
    }
}

impl fmt::Display for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for IdNumber {
    type Err = IdNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ID number of someone born on `date`.
    fn born_on(date: NaiveDate) -> String {
        let first17 = format!("110105{}002", date.format("%Y%m%d"));
        format!("{first17}{}", check_character(first17.as_bytes()))
    }

    #[test]
    fn the_future_is_judged_by_the_local_date_kept_until_midnight() {
        let before = chrono::Local::now().date_naive();
        let (first, second) = (local_today(), local_today());
        let after = chrono::Local::now().date_naive();
        assert!(
            first == before || first == after,
            "{first} is neither {before} nor {after}"
        );
        assert!(second == first || second == after);
        assert!(IdNumber::parse(&born_on(before)).is_ok());
        let future = after + chrono::Days::new(2);
        assert!(matches!(
            IdNumber::parse(&born_on(future)),
            Err(IdNumberError::BirthDate(_))
        ));
        // The borrowing form judges the future the same way, after the clock was read.
        assert!(IdNumber::normalized(&born_on(before)).is_ok());
        assert!(matches!(
            IdNumber::normalized(&born_on(future)),
            Err(IdNumberError::BirthDate(_))
        ));
    }

    #[test]
    fn accepts_the_standard_examples() {
        for ok in ["11010519491231002X", "440524188001010014"] {
            assert_eq!(IdNumber::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn normalizes_before_checking() {
        let id = IdNumber::parse(" １１０１０５１９４９１２３１００２ｘ　").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.gender(), "女");
        assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1949, 12, 31).unwrap());
        assert!(IdNumber::parse("11010519491231002x").is_ok());
    }

    #[test]
    fn upgrades_legacy_15_digit_numbers() {
        assert_eq!(
            IdNumber::parse("110105491231002").unwrap().as_str(),
            "11010519491231002X"
        );
    }

    #[test]
    fn says_why_a_number_is_rejected() {
        assert_eq!(
            IdNumber::parse("110105194912310021"),
            Err(IdNumberError::Checksum {
                expected: 'X',
                found: '1'
            })
        );
        assert_eq!(IdNumber::parse("1101051949"), Err(IdNumberError::Length(10)));
        assert_eq!(IdNumber::parse("11010519491231002Y"), Err(IdNumberError::Character));
        assert!(matches!(
            IdNumber::parse("990105194912310027"),
            Err(IdNumberError::Province(_))
        ));
        assert!(matches!(
            IdNumber::parse("110105194902300027"),
            Err(IdNumberError::BirthDate(_))
        ));
    }

    #[test]
    fn rejects_birth_dates_in_the_future() {
        let today = NaiveDate::from_ymd_opt(1949, 12, 30).unwrap();
        assert!(matches!(
            IdNumber::parse_on("11010519491231002X", today),
            Err(IdNumberError::BirthDate(_))
        ));
    }

    #[test]
    fn retired_county_codes_are_kept_but_flagged() {
        let id = IdNumber::parse("440524188001010014").unwrap();
        assert!(!id.region_code_is_current());
        assert!(IdNumber::parse("11010519491231002X").unwrap().region_code_is_current());
    }

    fn valid_id() -> impl Strategy<Value = String> {
        let counties: Vec<&'static str> = crate::region::counties().iter().map(|d| d.code.as_str()).collect();
        (
            proptest::sample::select(counties),
            1900i32..2020,
            1u32..=12,
            1u32..=28,
            0u32..1000,
        )
            .prop_map(|(county, y, m, d, seq)| {
                let first17 = format!("{county}{y:04}{m:02}{d:02}{seq:03}");
                let check = check_character(first17.as_bytes());
                format!("{first17}{check}")
            })
    }

    proptest! {
        #[test]
        fn every_valid_number_parses_and_round_trips(id in valid_id()) {
            let parsed = IdNumber::parse(&id).unwrap();
            prop_assert_eq!(parsed.as_str(), id.as_str());
            prop_assert_eq!(IdNumber::parse(parsed.as_str()).unwrap(), parsed);
        }

        /// The borrowing form agrees with `parse` however a number is typed, and borrows
        /// exactly when the trimmed input is already the number as written.
        #[test]
        fn the_borrowing_form_is_parse(
            id in valid_id(),
            style in 0usize..5,
            junk in "[0-9xX \u{3000}a１]{0,19}",
        ) {
            let typed = match style {
                0 => id.clone(),
                1 => format!(" {id}\u{3000}"),
                2 => id.to_lowercase(),
                3 => id.chars().map(|c| if c.is_ascii_digit() { char::from_u32(c as u32 + 0xFEE0).unwrap() } else { c }).collect(),
                _ => junk,
            };
            let parsed = IdNumber::parse(&typed).map(|id| id.as_str().to_string());
            let normalized = IdNumber::normalized(&typed);
            prop_assert_eq!(normalized.as_ref().map(|n| n.to_string()).map_err(Clone::clone), parsed.clone());
            if let Ok(normalized) = normalized {
                let borrowed = matches!(normalized, std::borrow::Cow::Borrowed(_));
                prop_assert_eq!(borrowed, parsed.as_deref() == Ok(typed.trim()), "{:?}", typed);
            }
        }

        #[test]
        fn every_single_character_change_is_rejected(
            id in valid_id(),
            pos in 0usize..18,
            replacement in proptest::sample::select(b"0123456789X".to_vec()),
        ) {
            let mut bytes = id.clone().into_bytes();
            prop_assume!(bytes[pos] != replacement);
            bytes[pos] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(IdNumber::parse(&changed).is_err(), "{} accepted", changed);
        }
    }
}
