//! Unified social credit codes (统一社会信用代码), GB 32100-2015: the identifier of every legal
//! entity and other organization.
//!
//! 18 characters from a 31-character set (no I, O, S, V, Z): registering authority (1), entity
//! type (2), GB/T 2260 region (3–8), organization code (9–17), check character (18).

use std::fmt;

/// The code's alphabet; a character is worth its index.
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of positions 1..17: 3^(i-1) mod 31.
const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
/// Registering authorities (登记管理部门) GB 32100 assigns: 1–9, A (military), N (agriculture),
/// Y (other).
const AUTHORITIES: &[u8] = b"123456789ANY";

/// A valid unified social credit code. Only [`Uscc::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uscc(String);

/// Why a string is not a unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsccError {
    /// Not 18 characters after normalization.
    #[error("a unified social credit code has 18 characters, got {0}")]
    Length(usize),
    /// A character outside 0-9 and the letters GB 32100 uses (I, O, S, V and Z are never used).
    #[error("{0:?} is not a character of a unified social credit code (digits and letters except I, O, S, V, Z)")]
    Character(char),
    /// The first character is no registering authority.
    #[error("{0:?} is not a GB 32100 registering authority code")]
    Authority(char),
    /// Characters 3–8 do not start with a GB/T 2260 province.
    #[error("{0} is not a GB/T 2260 province code")]
    Region(String),
    /// The 18th character does not match the first 17.
    #[error("wrong check character: expected {expected}, found {found}")]
    Checksum {
        /// The character the first 17 call for.
        expected: char,
        /// The character given.
        found: char,
    },
}

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|v| v as u32)
}

/// The GB 32100 check character for the first 17 characters (already upper-case and from the
/// alphabet).
pub fn check_character(first17: &[u8]) -> char {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(&c, w)| value(c).unwrap_or(0) * w)
        .sum();
    ALPHABET[((31 - sum % 31) % 31) as usize] as char
}

impl Uscc {
    /// Parses a code as departments store it: trims, folds full-width characters, upper-cases.
    pub fn parse(raw: &str) -> Result<Self, UsccError> {
        let folded = crate::normalize::fold_width(raw).to_ascii_uppercase();
        let bytes = folded.as_bytes();
        if bytes.len() != 18 || !folded.is_ascii() {
            return Err(UsccError::Length(folded.chars().count()));
        }
        if let Some(&bad) = bytes.iter().find(|&&c| value(c).is_none()) {
            return Err(UsccError::Character(bad as char));
        }
        if !AUTHORITIES.contains(&bytes[0]) {
            return Err(UsccError::Authority(bytes[0] as char));
        }
        let province = &folded[2..4];
        if !crate::region::is_known_province(province) {
            return Err(UsccError::Region(folded[2..8].to_string()));
        }
        let expected = check_character(&bytes[..17]);
        let found = bytes[17] as char;
        if expected != found {
            return Err(UsccError::Checksum { expected, found });
        }
        Ok(Self(folded))
    }

    /// The 18 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The GB/T 2260 region of registration (characters 3–8).
    pub fn region_code(&self) -> &str {
        &self.0[2..8]
    }
}

impl fmt::Display for Uscc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_standard_example() {
        assert_eq!(
            Uscc::parse("91350100M000100Y43").unwrap().as_str(),
            "91350100M000100Y43"
        );
        assert_eq!(
            Uscc::parse(" ９１３５０１００m０００１００y４３ ").unwrap().as_str(),
            "91350100M000100Y43"
        );
        assert_eq!(check_character(b"91350100M000100Y4"), '3');
    }

    #[test]
    fn says_why_a_code_is_rejected() {
        let cases = [
            ("91350100M000100Y4", "18 characters"),
            ("91350100M000100Y4I", "not a character"),
            ("B1350100M000100Y43", "registering authority"),
            ("91000100M000100Y43", "province"),
            ("91350100M000100Y44", "check character"),
        ];
        for (code, reason) in cases {
            let err = Uscc::parse(code).unwrap_err().to_string();
            assert!(err.contains(reason), "{code}: {err}");
        }
    }

    fn valid_uscc() -> impl Strategy<Value = String> {
        let counties: Vec<&'static str> = crate::region::counties().iter().map(|d| d.code.as_str()).collect();
        (
            proptest::sample::select(AUTHORITIES.to_vec()),
            proptest::sample::select(b"123459".to_vec()),
            proptest::sample::select(counties),
            proptest::collection::vec(proptest::sample::select(ALPHABET.to_vec()), 9),
        )
            .prop_map(|(authority, kind, county, org)| {
                let mut first17 = vec![authority, kind];
                first17.extend_from_slice(county.as_bytes());
                first17.extend_from_slice(&org);
                let check = check_character(&first17);
                format!("{}{check}", String::from_utf8(first17).unwrap())
            })
    }

    proptest! {
        #[test]
        fn every_valid_code_parses_and_round_trips(code in valid_uscc()) {
            let parsed = Uscc::parse(&code).unwrap();
            prop_assert_eq!(parsed.as_str(), code.as_str());
            prop_assert_eq!(Uscc::parse(&parsed.to_string()).unwrap(), parsed);
            let lower = Uscc::parse(&code.to_ascii_lowercase()).unwrap();
            prop_assert_eq!(lower.as_str(), code.as_str());
        }

        #[test]
        fn every_single_character_change_is_rejected(
            code in valid_uscc(),
            pos in 0usize..18,
            replacement in proptest::sample::select(ALPHABET.to_vec()),
        ) {
            let mut bytes = code.clone().into_bytes();
            prop_assume!(bytes[pos] != replacement);
            bytes[pos] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(Uscc::parse(&changed).is_err(), "{} accepted", changed);
        }
    }
}
