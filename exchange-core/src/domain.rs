//! The catalog's controlled vocabularies (国发〔2016〕51号, GB/T 21063): share and open types,
//! share methods, update cycles and sensitivity grades. Each has a stable English code (used in
//! the API, the config and the metadata DB) and the Chinese label departments know.

use serde::{Deserialize, Serialize};

/// Defines a vocabulary enum with its stable code, its Chinese label, `FromStr` and `Display`.
/// `$code` is a `tt`, not a `literal`: derive macros (serde, utoipa) then see the plain string in
/// `#[serde(rename = …)]`, so the OpenAPI schema lists the codes.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:tt / $label:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $code)] $variant,)+
        }

        /// Accepts the stable code or the Chinese label, as departments write either.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable code stored in the metadata DB and used in the API.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// The Chinese label used in the UI and catalog exports.
            pub fn label_zh(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::Error;
            /// Accepts the code or the Chinese label.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                $(if s == $code || s == $label { return Ok($name::$variant); })+
                Err(crate::Error::InvalidValue {
                    field: stringify!($name),
                    message: format!("{s:?} is not one of {}", [$($code),+].join(", ")),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

vocabulary! {
    /// 共享类型: whether and how other departments may use a resource.
    ShareType {
        /// 无条件共享: any registered government consumer.
        Unconditional = "unconditional" / "无条件共享",
        /// 有条件共享: only under a grant from an approved demand.
        Conditional = "conditional" / "有条件共享",
        /// 不予共享: never through the exchange API.
        NotShared = "not_shared" / "不予共享",
    }
}

vocabulary! {
    /// 开放类型: whether the public may download a resource.
    OpenType {
        /// 无条件开放.
        Unconditional = "unconditional" / "无条件开放",
        /// 有条件开放: apply and be approved.
        Conditional = "conditional" / "有条件开放",
        /// 不予开放.
        NotOpen = "not_open" / "不予开放",
    }
}

vocabulary! {
    /// 共享方式.
    ShareMethod {
        /// 接口: API calls.
        Api = "api" / "接口",
        /// 批量/库表: bulk exchange.
        Bulk = "bulk" / "库表",
        /// 文件.
        File = "file" / "文件",
    }
}

vocabulary! {
    /// 更新周期.
    UpdateCycle {
        /// 实时.
        RealTime = "real_time" / "实时",
        /// 每日.
        Daily = "daily" / "每日",
        /// 每周.
        Weekly = "weekly" / "每周",
        /// 每月.
        Monthly = "monthly" / "每月",
        /// 每季度.
        Quarterly = "quarterly" / "每季度",
        /// 每半年.
        HalfYearly = "half_yearly" / "每半年",
        /// 每年.
        Yearly = "yearly" / "每年",
        /// 不定期.
        Irregular = "irregular" / "不定期",
    }
}

vocabulary! {
    /// 敏感级别 of a data item: consumers see L3/L4 items masked unless granted plain.
    Sensitivity {
        /// L1 公开.
        L1 = "L1" / "公开",
        /// L2 内部.
        L2 = "L2" / "内部",
        /// L3 敏感 (personal information).
        L3 = "L3" / "敏感",
        /// L4 高度敏感.
        L4 = "L4" / "高度敏感",
    }
}

impl Sensitivity {
    /// L3 and L4 are masked by default.
    pub fn masked_by_default(self) -> bool {
        matches!(self, Sensitivity::L3 | Sensitivity::L4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_labels_round_trip() {
        for t in ShareType::ALL {
            assert_eq!(t.code().parse::<ShareType>().unwrap(), *t);
            assert_eq!(t.label_zh().parse::<ShareType>().unwrap(), *t);
        }
        assert_eq!("每季度".parse::<UpdateCycle>().unwrap(), UpdateCycle::Quarterly);
        assert_eq!(serde_json::to_string(&Sensitivity::L3).unwrap(), "\"L3\"");
        assert_eq!(
            serde_json::from_str::<UpdateCycle>("\"每周\"").unwrap(),
            UpdateCycle::Weekly
        );
        assert_eq!(
            serde_json::from_str::<ShareType>("\"conditional\"").unwrap(),
            ShareType::Conditional
        );
        assert!(serde_json::from_str::<ShareType>("\"sometimes\"").is_err());
    }

    #[test]
    fn unknown_values_name_the_vocabulary() {
        let err = "sometimes".parse::<ShareType>().unwrap_err().to_string();
        assert!(err.contains("ShareType") && err.contains("unconditional"), "{err}");
    }
}
