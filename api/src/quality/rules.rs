//! The scoring rules (评分规则) of the five quality dimensions, as pure functions of counts, so
//! each rule is tested on hand-built figures. Every score is 0–100, rounded to one decimal; a
//! dimension with nothing to measure has no score (`None`) and is left out of the overall mean.
//! docs/quality.md states the same rules for people.

use std::collections::BTreeMap;

use exchange_core::{LibraryField, UpdateCycle};
use serde::Serialize;
use serde_json::{Value, json};

/// A quality dimension (质量维度).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// 完整性: how much of each field is filled.
    Completeness,
    /// 有效性: how much passes normalization, in the library and in the sources.
    Validity,
    /// 唯一性: how few keys the sources repeat.
    Uniqueness,
    /// 一致性: how many cross-library references resolve.
    Consistency,
    /// 及时性: how fresh the data is against its update cycle.
    Timeliness,
}

/// The dimensions in report order.
pub const DIMENSIONS: [Dimension; 5] = [
    Dimension::Completeness,
    Dimension::Validity,
    Dimension::Uniqueness,
    Dimension::Consistency,
    Dimension::Timeliness,
];

impl Dimension {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Dimension::Completeness => "completeness",
            Dimension::Validity => "validity",
            Dimension::Uniqueness => "uniqueness",
            Dimension::Consistency => "consistency",
            Dimension::Timeliness => "timeliness",
        }
    }

    /// The Chinese name.
    pub fn label_zh(self) -> &'static str {
        match self {
            Dimension::Completeness => "完整性",
            Dimension::Validity => "有效性",
            Dimension::Uniqueness => "唯一性",
            Dimension::Consistency => "一致性",
            Dimension::Timeliness => "及时性",
        }
    }

    /// The English name, capitalized.
    pub fn label_en(self) -> &'static str {
        match self {
            Dimension::Completeness => "Completeness",
            Dimension::Validity => "Validity",
            Dimension::Uniqueness => "Uniqueness",
            Dimension::Consistency => "Consistency",
            Dimension::Timeliness => "Timeliness",
        }
    }

    /// Its weight in the overall score (the weights sum to 100).
    pub fn weight(self) -> f64 {
        match self {
            Dimension::Completeness => 25.0,
            Dimension::Validity => 25.0,
            Dimension::Uniqueness => 15.0,
            Dimension::Consistency => 20.0,
            Dimension::Timeliness => 15.0,
        }
    }
}

/// A required field counts this many times an optional one in completeness.
pub const REQUIRED_WEIGHT: u64 = 2;

/// Above this many records, consistency checks every k-th record in key order (k = ⌈records /
/// this⌉), so the check costs at most this many lookups per reference field.
pub const CONSISTENCY_SAMPLE: u64 = 100_000;

/// Unresolved references shown per field.
pub const EXAMPLES: usize = 3;

/// One dimension's score with the rule behind it and the numbers it came from.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DimensionScore {
    /// Which dimension.
    pub dimension: Dimension,
    /// Its Chinese name.
    pub label_zh: &'static str,
    /// 0–100, one decimal; absent when there was nothing to measure.
    pub score: Option<f64>,
    /// Its weight in the overall score.
    pub weight: f64,
    /// The rule, in Chinese.
    pub rule_zh: String,
    /// The rule, in English.
    pub rule_en: String,
    /// The numbers behind the score.
    #[schema(value_type = Object)]
    pub figures: Value,
    /// Per-field figures (completeness, validity, consistency).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldScore>,
}

/// One field's share in a dimension.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldScore {
    /// The field (data item) name.
    pub field: String,
    /// Its Chinese label.
    pub label_zh: String,
    /// 0–100, one decimal; absent when there was nothing to measure.
    pub score: Option<f64>,
    /// The numbers behind it.
    #[schema(value_type = Object)]
    pub figures: Value,
}

/// What the scan of current records counted for one field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldTally {
    /// Records where the field has a value.
    pub filled: u64,
    /// Of them, values that parse by the field's kind and are already in canonical form.
    pub valid: u64,
    /// References to another library checked (consistency).
    pub checked: u64,
    /// Of them, references found there.
    pub resolved: u64,
    /// A few references not found: (record key, value), already masked.
    pub unresolved: Vec<(String, String)>,
}

/// What the scored runs (the last successful run of each connector in scope) read and refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTally {
    /// Runs counted.
    pub runs: u64,
    /// Source rows read.
    pub read: u64,
    /// Rows refused for an invalid value, by the field blamed.
    pub rejected_by_field: BTreeMap<String, u64>,
    /// Rows refused whole (unreadable, bad cursor value), blaming no field.
    pub rejected_rows: u64,
    /// Rows refused because their key was repeated in the source.
    pub duplicates: u64,
}

/// `x` rounded to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn dimension(
    dimension: Dimension,
    score: Option<f64>,
    rule_zh: String,
    rule_en: String,
    figures: Value,
) -> DimensionScore {
    DimensionScore {
        dimension,
        label_zh: dimension.label_zh(),
        score: score.map(|s| round1(s.clamp(0.0, 100.0))),
        weight: dimension.weight(),
        rule_zh,
        rule_en,
        figures,
        fields: Vec::new(),
    }
}

fn field_score(field: &LibraryField, score: Option<f64>, figures: Value) -> FieldScore {
    FieldScore {
        field: field.name.to_string(),
        label_zh: field.label_zh.to_string(),
        score: score.map(|s| round1(s.clamp(0.0, 100.0))),
        figures,
    }
}

/// 完整性: the filled share of each field over `records`, a required field weighing
/// [`REQUIRED_WEIGHT`] and an optional one 1.
pub fn completeness(fields: &[&LibraryField], tallies: &[FieldTally], records: u64) -> DimensionScore {
    let mut weighted_filled = 0u64;
    let mut weighted_total = 0u64;
    let mut per_field = Vec::new();
    for (field, tally) in fields.iter().zip(tallies) {
        let weight = if field.required { REQUIRED_WEIGHT } else { 1 };
        weighted_filled += weight * tally.filled;
        weighted_total += weight * records;
        per_field.push(field_score(
            field,
            share(tally.filled, records).map(|s| 100.0 * s),
            json!({"filled": tally.filled, "records": records, "required": field.required, "weight": weight}),
        ));
    }
    let mut d = dimension(
        Dimension::Completeness,
        share(weighted_filled, weighted_total).map(|s| 100.0 * s),
        format!(
            "得分 = 100 × Σ(权重 × 已填记录数) / (记录数 × Σ权重)；必填字段权重 {REQUIRED_WEIGHT}，其他字段权重 1。无记录时不计分。"
        ),
        format!(
            "score = 100 × Σ(weight × records with a value) / (records × Σ weight); a required field \
             weighs {REQUIRED_WEIGHT}, any other 1. Not scored without records."
        ),
        json!({"records": records, "weighted_filled": weighted_filled, "weighted_total": weighted_total}),
    );
    d.fields = per_field;
    d
}

/// 有效性: half the share of held values that parse by their field's kind, half the share of
/// source rows the scored runs did not refuse for an invalid value (duplicates are
/// uniqueness's). With only one of the two measurable, that one alone.
pub fn validity(fields: &[&LibraryField], tallies: &[FieldTally], runs: &RunTally, records: u64) -> DimensionScore {
    let filled: u64 = tallies.iter().map(|t| t.filled).sum();
    let valid: u64 = tallies.iter().map(|t| t.valid).sum();
    let mut rejected = runs.rejected_rows;
    let mut per_field = Vec::new();
    for (field, tally) in fields.iter().zip(tallies) {
        let refused = runs.rejected_by_field.get(field.name).copied().unwrap_or(0);
        rejected += refused;
        let values = share(tally.valid, tally.filled);
        let source = share(runs.read.saturating_sub(refused), runs.read);
        let score = match (values, source) {
            (None, None) => None,
            (v, s) => Some(100.0 * v.unwrap_or(1.0) * s.unwrap_or(1.0)),
        };
        per_field.push(field_score(
            field,
            score,
            json!({"filled": tally.filled, "valid": tally.valid, "rejected_in_runs": refused, "read": runs.read}),
        ));
    }
    let values = share(valid, filled);
    let source = share(runs.read.saturating_sub(rejected), runs.read);
    let score = match (values, source) {
        (Some(v), Some(s)) => Some(50.0 * v + 50.0 * s),
        (Some(one), None) | (None, Some(one)) => Some(100.0 * one),
        (None, None) => None,
    };
    let mut d = dimension(
        Dimension::Validity,
        score,
        "得分 = 50 × (库中可通过规范化校验的值 / 已填值) + 50 × (1 − 因字段值无效或整行无法读取被隔离的行 / 读取行)；\
         运行取各连接器最近一次成功运行，重复键计入唯一性；只有一项可计时取该项 × 100。字段分 = 100 × 值有效率 × (1 − 该字段被隔离行 / 读取行)。"
            .to_string(),
        "score = 50 × (held values that parse by their field's kind and are in canonical form / values held) \
         + 50 × (1 − source rows quarantined for an invalid value or unreadable / rows read), over the last \
         successful run of each connector; repeated keys count for uniqueness. With only one part measurable, \
         100 × that part. A field's score = 100 × its valid share × (1 − rows quarantined for it / rows read)."
            .to_string(),
        json!({
            "records": records, "values": filled, "valid_values": valid,
            "runs": runs.runs, "read": runs.read, "rejected": rejected,
        }),
    );
    d.fields = per_field;
    d
}

/// 唯一性: the share of source rows whose key was not repeated within the source.
pub fn uniqueness(runs: &RunTally) -> DimensionScore {
    dimension(
        Dimension::Uniqueness,
        share(runs.read.saturating_sub(runs.duplicates), runs.read).map(|s| 100.0 * s),
        "得分 = 100 × (1 − 因主键重复被隔离的行 / 读取行)，取各连接器最近一次成功运行；库中每个主键只存一条记录，\
         重复只能来自数据源。无运行时不计分。"
            .to_string(),
        "score = 100 × (1 − rows quarantined for a repeated key / rows read), over the last successful run of \
         each connector; the library holds one record per key, so repeats can only come from the sources. \
         Not scored without runs."
            .to_string(),
        json!({"runs": runs.runs, "read": runs.read, "duplicates": runs.duplicates}),
    )
}

/// 一致性: the share of cross-library references that resolve (an ID number in population, a
/// credit code in legal entities), per reference field; `stride` > 1 when records were sampled.
pub fn consistency(
    fields: &[&LibraryField],
    tallies: &[FieldTally],
    references: &[Option<&'static str>],
    stride: u64,
) -> DimensionScore {
    let mut checked = 0u64;
    let mut resolved = 0u64;
    let mut per_field = Vec::new();
    for ((field, tally), target) in fields.iter().zip(tallies).zip(references) {
        let Some(target) = target else { continue };
        checked += tally.checked;
        resolved += tally.resolved;
        let examples: Vec<Value> = tally
            .unresolved
            .iter()
            .map(|(key, value)| json!({"key": key, "value": value}))
            .collect();
        per_field.push(field_score(
            field,
            share(tally.resolved, tally.checked).map(|s| 100.0 * s),
            json!({"references": target, "checked": tally.checked, "resolved": tally.resolved, "unresolved_examples": examples}),
        ));
    }
    let sampled = if stride > 1 {
        (
            format!("记录超过 {CONSISTENCY_SAMPLE} 条，按主键顺序每 {stride} 条抽查 1 条（确定性抽样）。"),
            format!(
                " Above {CONSISTENCY_SAMPLE} records, every {stride}th record in key order is checked (a deterministic sample)."
            ),
        )
    } else {
        (String::new(), String::new())
    };
    let mut d = dimension(
        Dimension::Consistency,
        share(resolved, checked).map(|s| 100.0 * s),
        format!(
            "得分 = 100 × 能在对应基础库中找到的引用 / 检查的引用。非主键的身份证号须在人口库中存在，统一社会信用代码须在法人库中存在；\
             主体代码为身份证号时查人口库，为统一社会信用代码时查法人库。无引用字段时不计分。{}",
            sampled.0
        ),
        format!(
            "score = 100 × references found in their base library / references checked. A non-key ID number \
             must exist in population, a non-key unified social credit code in legal_entity; a subject code \
             in population when it is an ID number, in legal_entity when it is a credit code. Not scored \
             without reference fields.{}",
            sampled.1
        ),
        json!({"checked": checked, "resolved": resolved, "sample_every": stride}),
    );
    d.fields = per_field;
    d
}

/// The update cycle's length in seconds; `None` for irregular (不定期). Real-time (实时) data
/// is held to an hour.
pub fn cycle_seconds(cycle: UpdateCycle) -> Option<i64> {
    const DAY: i64 = 86_400;
    match cycle {
        UpdateCycle::RealTime => Some(3_600),
        UpdateCycle::Daily => Some(DAY),
        UpdateCycle::Weekly => Some(7 * DAY),
        UpdateCycle::Monthly => Some(31 * DAY),
        UpdateCycle::Quarterly => Some(92 * DAY),
        UpdateCycle::HalfYearly => Some(183 * DAY),
        UpdateCycle::Yearly => Some(366 * DAY),
        UpdateCycle::Irregular => None,
    }
}

/// 及时性: full marks when the last successful run is within one update cycle, then 50 points
/// less per cycle overdue (0 at three cycles); 0 without a successful run; irregular data
/// scores 100 once it has one.
pub fn timeliness(cycle: UpdateCycle, age_seconds: Option<i64>) -> DimensionScore {
    let period = cycle_seconds(cycle);
    let score = match (age_seconds, period) {
        (None, _) => 0.0,
        (Some(_), None) => 100.0,
        (Some(age), Some(p)) if age <= p => 100.0,
        (Some(age), Some(p)) => (100.0 - 50.0 * (age - p) as f64 / p as f64).max(0.0),
    };
    dimension(
        Dimension::Timeliness,
        Some(score),
        format!(
            "更新周期「{}」(周期长度：实时 1 小时、每日 1 天、每周 7 天、每月 31 天、每季度 92 天、每半年 183 天、每年 366 天)。\
             最近一次成功运行距今不超过一个周期得 100 分，此后每超期一个周期扣 50 分（按比例，最低 0 分）；从未成功运行得 0 分；不定期更新的数据有成功运行即得 100 分。",
            cycle.label_zh()
        ),
        format!(
            "Update cycle {} (real-time 1 hour, daily 1 day, weekly 7, monthly 31, quarterly 92, half-yearly 183, \
             yearly 366 days). 100 while the last successful run is at most one cycle old, then 50 points less \
             per cycle overdue, pro rata, down to 0; 0 without a successful run; irregular data scores 100 once \
             it has one.",
            cycle.code()
        ),
        json!({"update_cycle": cycle.code(), "cycle_seconds": period, "age_seconds": age_seconds}),
    )
}

/// The overall score: the weighted mean of the scored dimensions (weights renormalized over
/// those with a score); 0 when none has one.
pub fn overall(dimensions: &[DimensionScore]) -> f64 {
    let (sum, weights) = dimensions
        .iter()
        .filter_map(|d| d.score.map(|s| (s * d.weight, d.weight)))
        .fold((0.0, 0.0), |(a, b), (s, w)| (a + s, b + w));
    if weights > 0.0 { round1(sum / weights) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use exchange_core::schema::{LEGAL_ENTITY, POPULATION};

    use super::*;

    fn fields(names: &[&str]) -> Vec<&'static LibraryField> {
        names
            .iter()
            .map(|n| &POPULATION.fields[POPULATION.position(n).unwrap()])
            .collect()
    }

    fn tally(filled: u64, valid: u64) -> FieldTally {
        FieldTally {
            filled,
            valid,
            ..Default::default()
        }
    }

    #[test]
    fn completeness_weighs_required_fields_double() {
        // id_number and name are required (weight 2), phone is not (1); 10 records.
        let f = fields(&["id_number", "name", "phone"]);
        let t = [tally(10, 10), tally(8, 8), tally(4, 4)];
        let d = completeness(&f, &t, 10);
        // (2×10 + 2×8 + 1×4) / (10 × 5) = 40 / 50.
        assert_eq!(d.score, Some(80.0));
        assert_eq!(
            d.fields.iter().map(|f| f.score).collect::<Vec<_>>(),
            [Some(100.0), Some(80.0), Some(40.0)]
        );
        assert_eq!(d.figures["weighted_total"], 50);
        assert_eq!(completeness(&f, &t, 0).score, None);
    }

    #[test]
    fn completeness_rounds_to_one_decimal() {
        let f = fields(&["name", "phone"]);
        // (2×3 + 1×0) / (7 × 3) = 6/21 = 28.571…
        assert_eq!(completeness(&f, &[tally(3, 3), tally(0, 0)], 7).score, Some(28.6));
    }

    #[test]
    fn validity_halves_held_values_and_source_rows() {
        let f = fields(&["id_number", "birth_date"]);
        let t = [tally(10, 10), tally(10, 8)];
        let runs = RunTally {
            runs: 1,
            read: 20,
            rejected_by_field: BTreeMap::from([("birth_date".to_string(), 3), ("phone".to_string(), 1)]),
            rejected_rows: 1,
            duplicates: 2,
        };
        let d = validity(&f, &t, &runs, 10);
        // values 18/20 = 0.9; source: phone is outside the scope, so (3 + 1) of 20 refused = 0.8.
        assert_eq!(d.score, Some(85.0));
        assert_eq!(d.figures["rejected"], 4);
        // birth_date: 0.8 valid × (1 − 3/20) = 0.68.
        assert_eq!(d.fields[1].score, Some(68.0));
        assert_eq!(d.fields[0].score, Some(100.0));
        // Without runs, the held values alone.
        assert_eq!(validity(&f, &t, &RunTally::default(), 10).score, Some(90.0));
        // Without anything, no score.
        assert_eq!(
            validity(&f, &[tally(0, 0), tally(0, 0)], &RunTally::default(), 0).score,
            None
        );
    }

    #[test]
    fn uniqueness_counts_repeated_keys_against_rows_read() {
        let runs = RunTally {
            runs: 2,
            read: 400,
            duplicates: 6,
            ..Default::default()
        };
        assert_eq!(uniqueness(&runs).score, Some(98.5));
        assert_eq!(uniqueness(&RunTally::default()).score, None);
    }

    #[test]
    fn consistency_is_the_resolved_share_of_reference_fields() {
        let f: Vec<&LibraryField> = ["uscc", "legal_rep_id"]
            .iter()
            .map(|n| &LEGAL_ENTITY.fields[LEGAL_ENTITY.position(n).unwrap()])
            .collect();
        let t = [
            tally(8, 8),
            FieldTally {
                filled: 8,
                valid: 8,
                checked: 8,
                resolved: 6,
                unresolved: vec![("91350100M000100Y43".into(), "110105********002X".into())],
            },
        ];
        let d = consistency(&f, &t, &[None, Some("population")], 1);
        assert_eq!(d.score, Some(75.0));
        assert_eq!(d.fields.len(), 1);
        assert_eq!(
            d.fields[0].figures["unresolved_examples"][0]["value"],
            "110105********002X"
        );
        assert!(!d.rule_en.contains("sample"));
        let sampled = consistency(&f, &t, &[None, Some("population")], 4);
        assert!(sampled.rule_en.contains("every 4th record"), "{}", sampled.rule_en);
        assert_eq!(consistency(&f, &t, &[None, None], 1).score, None);
    }

    #[test]
    fn timeliness_is_full_within_the_cycle_and_falls_50_a_cycle_after() {
        const DAY: i64 = 86_400;
        let cases = [
            (UpdateCycle::Daily, Some(DAY), 100.0),
            (UpdateCycle::Daily, Some(DAY + DAY / 2), 75.0),
            (UpdateCycle::Daily, Some(2 * DAY), 50.0),
            (UpdateCycle::Daily, Some(10 * DAY), 0.0),
            (UpdateCycle::Weekly, Some(3 * DAY), 100.0),
            (UpdateCycle::Monthly, Some(62 * DAY), 50.0),
            (UpdateCycle::RealTime, Some(5_400), 75.0),
            (UpdateCycle::Irregular, Some(1000 * DAY), 100.0),
            (UpdateCycle::Yearly, None, 0.0),
        ];
        for (cycle, age, want) in cases {
            assert_eq!(timeliness(cycle, age).score, Some(want), "{cycle} {age:?}");
        }
    }

    #[test]
    fn overall_is_the_weighted_mean_of_scored_dimensions() {
        let with = |d: Dimension, s: Option<f64>| dimension(d, s, String::new(), String::new(), Value::Null);
        let all = [
            with(Dimension::Completeness, Some(80.0)),
            with(Dimension::Validity, Some(100.0)),
            with(Dimension::Uniqueness, Some(90.0)),
            with(Dimension::Consistency, Some(50.0)),
            with(Dimension::Timeliness, Some(100.0)),
        ];
        // (25×80 + 25×100 + 15×90 + 20×50 + 15×100) / 100 = 83.5
        assert_eq!(overall(&all), 83.5);
        // Consistency unscored: (2000 + 2500 + 1350 + 1500) / 80 = 91.875
        let mut partial = all.clone();
        partial[3].score = None;
        assert_eq!(overall(&partial), 91.9);
        assert_eq!(overall(&[with(Dimension::Validity, None)]), 0.0);
        assert_eq!(DIMENSIONS.iter().map(|d| d.weight()).sum::<f64>(), 100.0);
    }
}
