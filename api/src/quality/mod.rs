//! Data quality (数据质量: 实时测评、自动打分): after every committed connector run, the library
//! it fed and every resource bound to that library are scored 0–100 on five dimensions
//! ([`rules`]) and the report is stored in the catalog, so the scores form a trend across runs.
//!
//! One scan of the library's serving index (one record decoded at a time: memory stays flat)
//! counts, per field, the filled values, the valid ones and the cross-library references that
//! resolve; the catalog supplies the runs and their quarantine. Every scope (the library, each
//! resource with its data items) is then scored from those counts.

pub mod page;
pub mod rules;

use crate::libraries::Libraries;

use catalog::{Catalog, Connector, NewQualityReport, QualityReport, QualityScope, Resource, ResourceStatus};
use exchange_core::{FieldKind, IdNumber, Library, LibraryField, UpdateCycle, Uscc};
use serde::Serialize;
use serde_json::Value;

use rules::{CONSISTENCY_SAMPLE, DimensionScore, EXAMPLES, FieldTally, RunTally};

/// Why scoring failed.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    /// The metadata DB failed.
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
    /// Reading the library failed.
    #[error(transparent)]
    Library(#[from] exchange_core::Error),
    /// The scan's task failed.
    #[error("the quality scan stopped: {0}")]
    Scan(String),
}

/// The library a reference field points into, by the field's kind: a non-key ID number into
/// population, a non-key credit code into legal entities, a subject into either (by what it
/// parses as).
fn reference_target(field: &LibraryField, is_key: bool) -> Option<&'static str> {
    match field.kind {
        _ if is_key => None,
        FieldKind::IdNumber => Some("population"),
        FieldKind::Uscc => Some("legal_entity"),
        FieldKind::Subject => Some("population|legal_entity"),
        _ => None,
    }
}

/// What one scan of a library's current records counted.
struct Scan {
    records: u64,
    version: i64,
    stride: u64,
    fields: Vec<FieldTally>,
}

fn masked(field: &LibraryField, value: &str) -> String {
    if field.sensitivity.masked_by_default() {
        policy::mask::mask(field.kind, value)
    } else {
        value.to_string()
    }
}

/// Scans `library` (blocking: run it off the async runtime).
fn scan(
    library: &Library,
    population: Option<&Library>,
    legal_entity: Option<&Library>,
) -> exchange_core::Result<Scan> {
    let schema = library.schema();
    let version = library.version()?;
    let reader = library.reader()?;
    let people = population.map(Library::reader).transpose()?;
    let entities = legal_entity.map(Library::reader).transpose()?;
    let records = reader.len()?;
    let stride = records.div_ceil(CONSISTENCY_SAMPLE).max(1);
    let targets: Vec<Option<&str>> = schema
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| reference_target(f, i == 0))
        .collect();
    let key_field = &schema.fields[0];
    let mut fields = vec![FieldTally::default(); schema.fields.len()];
    let mut seen = 0u64;
    reader.for_each_record(|key, record| {
        let sampled = seen.is_multiple_of(stride);
        seen += 1;
        for (i, field) in schema.fields.iter().enumerate() {
            let Some(value) = record
                .values
                .get(i)
                .and_then(|v| v.as_deref())
                .filter(|v| !v.is_empty())
            else {
                continue;
            };
            let tally = &mut fields[i];
            tally.filled += 1;
            if matches!(field.normalize(value), Ok(Some(canonical)) if canonical == value) {
                tally.valid += 1;
            }
            if !sampled || targets[i].is_none() {
                continue;
            }
            let target = if Uscc::parse(value).is_ok() && field.kind != FieldKind::IdNumber {
                entities.as_ref()
            } else if IdNumber::parse(value).is_ok() && field.kind != FieldKind::Uscc {
                people.as_ref()
            } else {
                // Not a reference at all: validity's concern, not consistency's.
                continue;
            };
            tally.checked += 1;
            let found = match target {
                Some(reader) => reader.get(value)?.is_some(),
                None => false,
            };
            if found {
                tally.resolved += 1;
            } else if tally.unresolved.len() < EXAMPLES {
                tally.unresolved.push((masked(key_field, key), masked(field, value)));
            }
        }
        Ok::<_, exchange_core::Error>(())
    })?;
    Ok(Scan {
        records,
        version,
        stride,
        fields,
    })
}

/// A quality report as the API returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Library or resource.
    #[schema(value_type = String, example = "library")]
    pub scope: QualityScope,
    /// The library name or the resource code.
    pub name: String,
    /// Its Chinese name (the library's, or the resource's name).
    pub label_zh: String,
    /// The library scored.
    pub library: String,
    /// When it was computed (RFC 3339, UTC).
    pub computed_at: String,
    /// The library version scored.
    pub library_version: Option<i64>,
    /// The weighted mean of the scored dimensions, 0–100.
    pub overall: f64,
    /// The five dimensions, with rules, figures and per-field scores.
    pub dimensions: Vec<DimensionScore>,
}

/// What is stored in `dimensions`: the dimensions and the labels the report shows.
#[derive(Serialize, serde::Deserialize)]
struct Stored {
    label_zh: String,
    library: String,
    dimensions: Value,
}

impl Report {
    /// A stored report read back.
    pub fn from_stored(stored: &QualityReport) -> Self {
        let inner: Option<Stored> = serde_json::from_value(stored.dimensions.clone()).ok();
        let (label_zh, library, dimensions) = match inner {
            Some(s) => (
                s.label_zh,
                s.library,
                serde_json::from_value(s.dimensions).unwrap_or_default(),
            ),
            None => (String::new(), String::new(), Vec::new()),
        };
        Self {
            scope: stored.scope,
            name: stored.name.clone(),
            label_zh,
            library,
            computed_at: stored.computed_at.clone(),
            library_version: stored.library_version,
            overall: stored.overall,
            dimensions,
        }
    }

    /// The score of one dimension.
    pub fn score(&self, dimension: rules::Dimension) -> Option<f64> {
        self.dimensions
            .iter()
            .find(|d| d.dimension == dimension)
            .and_then(|d| d.score)
    }
}

impl<'de> serde::Deserialize<'de> for DimensionScore {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            dimension: String,
            score: Option<f64>,
            rule_zh: String,
            rule_en: String,
            figures: Value,
            #[serde(default)]
            fields: Vec<RawField>,
        }
        #[derive(serde::Deserialize)]
        struct RawField {
            field: String,
            label_zh: String,
            score: Option<f64>,
            figures: Value,
        }
        let raw = Raw::deserialize(deserializer)?;
        let dimension = rules::DIMENSIONS
            .into_iter()
            .find(|d| d.code() == raw.dimension)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown dimension {}", raw.dimension)))?;
        Ok(DimensionScore {
            dimension,
            label_zh: dimension.label_zh(),
            score: raw.score,
            weight: dimension.weight(),
            rule_zh: raw.rule_zh,
            rule_en: raw.rule_en,
            figures: raw.figures,
            fields: raw
                .fields
                .into_iter()
                .map(|f| rules::FieldScore {
                    field: f.field,
                    label_zh: f.label_zh,
                    score: f.score,
                    figures: f.figures,
                })
                .collect(),
        })
    }
}

/// The runs and freshness of the connectors in one scope.
async fn run_tally(catalog: &Catalog, connectors: &[&Connector]) -> Result<(RunTally, Option<i64>), catalog::Error> {
    let mut tally = RunTally::default();
    let mut newest: Option<chrono::DateTime<chrono::Utc>> = None;
    for connector in connectors {
        let Some(run) = catalog.last_succeeded_run(connector.id).await? else {
            continue;
        };
        tally.runs += 1;
        tally.read += run.counts.read.max(0) as u64;
        for t in catalog.quarantine_tally(run.id).await? {
            let duplicates = t.duplicates.max(0) as u64;
            let invalid = (t.rows - t.duplicates).max(0) as u64;
            tally.duplicates += duplicates;
            match t.field {
                Some(field) => *tally.rejected_by_field.entry(field).or_default() += invalid,
                None => tally.rejected_rows += invalid,
            }
        }
        let finished = run
            .finished_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc());
        newest = newest.max(finished);
    }
    let age = newest.map(|t| (chrono::Utc::now() - t).num_seconds().max(0));
    Ok((tally, age))
}

/// A themed library's last successful materialization as a run: rows its SQL produced, rows
/// refused (by field where the kept reasons name one), and its age. `None` for a base library.
async fn theme_tally(catalog: &Catalog, library: &str) -> Result<Option<(RunTally, Option<i64>)>, catalog::Error> {
    let theme = match catalog.theme_by_name(library).await {
        Ok(theme) => theme,
        Err(catalog::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let runs = catalog.materializations(theme.id, 20).await?;
    let Some(last) = runs.iter().find(|m| m.status == catalog::RunStatus::Succeeded) else {
        return Ok(Some((RunTally::default(), None)));
    };
    let mut tally = RunTally {
        runs: 1,
        read: last.counts.read.max(0) as u64,
        ..RunTally::default()
    };
    let mut attributed = 0u64;
    for rejection in &last.rejections {
        if rejection.reason.contains(catalog::DUPLICATE_REASON_MARK) {
            tally.duplicates += 1;
        } else if let Some(field) = &rejection.field {
            *tally.rejected_by_field.entry(field.clone()).or_default() += 1;
        } else {
            continue;
        }
        attributed += 1;
    }
    tally.rejected_rows = (last.counts.rejected.max(0) as u64).saturating_sub(attributed);
    let age = last
        .finished_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (chrono::Utc::now() - t.to_utc()).num_seconds().max(0));
    Ok(Some((tally, age)))
}

/// Scores one scope from the scan: `fields` are the positions of its fields in the schema.
fn score(
    library: &Library,
    scan: &Scan,
    positions: &[usize],
    runs: &RunTally,
    cycle: UpdateCycle,
    age: Option<i64>,
) -> (f64, Vec<DimensionScore>) {
    let schema = library.schema();
    let fields: Vec<&LibraryField> = positions.iter().map(|&i| &schema.fields[i]).collect();
    let tallies: Vec<FieldTally> = positions.iter().map(|&i| scan.fields[i].clone()).collect();
    let targets: Vec<Option<&'static str>> = positions
        .iter()
        .map(|&i| reference_target(&schema.fields[i], i == 0))
        .collect();
    let dimensions = vec![
        rules::completeness(&fields, &tallies, scan.records),
        rules::validity(&fields, &tallies, runs, scan.records),
        rules::uniqueness(runs),
        rules::consistency(&fields, &tallies, &targets, scan.stride),
        rules::timeliness(cycle, age),
    ];
    (rules::overall(&dimensions), dimensions)
}

/// The strictest update cycle among `resources` (the shortest period); irregular when none.
fn strictest(resources: &[&Resource]) -> UpdateCycle {
    resources
        .iter()
        .map(|r| r.meta.update_cycle)
        .min_by_key(|c| rules::cycle_seconds(*c).unwrap_or(i64::MAX))
        .unwrap_or(UpdateCycle::Irregular)
}

/// Scores the library `name` and every resource bound to it (not retired), stores the reports
/// and returns them (the library's first).
#[tracing::instrument(skip(catalog, libraries))]
pub async fn evaluate_library(
    catalog: &Catalog,
    libraries: &Libraries,
    name: &str,
) -> Result<Vec<QualityReport>, EvaluationError> {
    let library = libraries
        .get(name)
        .ok_or_else(|| exchange_core::Error::UnknownLibrary(name.to_string()))?;
    let population = libraries.get("population");
    let legal_entity = libraries.get("legal_entity");
    let scanned = library.clone();
    let scan = tokio::task::spawn_blocking(move || scan(&scanned, population.as_deref(), legal_entity.as_deref()))
        .await
        .map_err(|e| EvaluationError::Scan(e.to_string()))??;
    let schema = library.schema();
    let resources: Vec<Resource> = catalog
        .resources()
        .await?
        .into_iter()
        .filter(|r| r.meta.library.as_deref() == Some(name) && r.status != ResourceStatus::Retired)
        .collect();
    let connectors = catalog.connectors().await?;
    let mut reports = Vec::new();

    let bound: Vec<&Resource> = resources.iter().collect();
    let library_connectors: Vec<&Connector> = connectors
        .iter()
        .filter(|c| bound.iter().any(|r| r.code == c.resource_code))
        .collect();
    // A themed library has materializations instead of connector runs.
    let theme = theme_tally(catalog, name).await?;
    let (runs, age) = match &theme {
        Some(tally) => tally.clone(),
        None => run_tally(catalog, &library_connectors).await?,
    };
    let all: Vec<usize> = (0..schema.fields.len()).collect();
    let (overall, dimensions) = score(&library, &scan, &all, &runs, strictest(&bound), age);
    reports.push(
        store(
            catalog,
            QualityScope::Library,
            name,
            schema.label_zh,
            name,
            scan.version,
            overall,
            dimensions,
        )
        .await?,
    );

    for resource in &resources {
        let positions: Vec<usize> = (0..schema.fields.len())
            .filter(|&i| resource.item(schema.fields[i].name).is_some())
            .collect();
        let own: Vec<&Connector> = connectors.iter().filter(|c| c.resource_code == resource.code).collect();
        let (runs, age) = match &theme {
            Some(tally) => tally.clone(),
            None => run_tally(catalog, &own).await?,
        };
        let (overall, dimensions) = score(&library, &scan, &positions, &runs, resource.meta.update_cycle, age);
        reports.push(
            store(
                catalog,
                QualityScope::Resource,
                &resource.code,
                &resource.meta.name,
                name,
                scan.version,
                overall,
                dimensions,
            )
            .await?,
        );
    }
    tracing::debug!(
        library = name,
        records = scan.records,
        reports = reports.len(),
        "quality scored"
    );
    Ok(reports)
}

#[allow(clippy::too_many_arguments)]
async fn store(
    catalog: &Catalog,
    scope: QualityScope,
    name: &str,
    label_zh: &str,
    library: &str,
    version: i64,
    overall: f64,
    dimensions: Vec<DimensionScore>,
) -> Result<QualityReport, catalog::Error> {
    let stored = Stored {
        label_zh: label_zh.to_string(),
        library: library.to_string(),
        dimensions: serde_json::to_value(&dimensions).unwrap_or_default(),
    };
    catalog
        .save_quality_report(&NewQualityReport {
            scope,
            name: name.to_string(),
            library_version: Some(version),
            overall,
            dimensions: serde_json::to_value(&stored).unwrap_or_default(),
        })
        .await
}

/// After a run of `connector` committed: scores the library it feeds and the resources bound
/// to it. A failure is logged, never the run's: the rows are committed either way. The one
/// entry point of the server's runs, the demo's and the CLI's.
pub async fn after_commit(catalog: &Catalog, libraries: &Libraries, connector: &Connector) {
    let library = match catalog.resource_by_code(&connector.resource_code).await {
        Ok(resource) => resource.meta.library,
        Err(e) => {
            tracing::warn!(connector = %connector.name, error = %e, "quality not scored: resource unreadable");
            return;
        }
    };
    let Some(library) = library else { return };
    if let Err(e) = evaluate_library(catalog, libraries, &library).await {
        tracing::warn!(connector = %connector.name, %library, error = %e, "quality not scored");
    }
}

#[cfg(test)]
mod tests {
    use exchange_core::LibrarySchema;
    use exchange_core::schema::{CREDIT, LEGAL_ENTITY, POPULATION};

    use super::*;

    const PERSON: &str = "11010519491231002X";
    const STRANGER: &str = "440524188001010014";

    fn uscc(first17: &str) -> String {
        format!("{first17}{}", exchange_core::uscc::check_character(first17.as_bytes()))
    }

    async fn library(dir: &std::path::Path, schema: &'static LibrarySchema, rows: &[&[(&str, &str)]]) -> Library {
        let library = Library::open(dir, schema).await.unwrap();
        let mut writer = library
            .writer("TEST", 1, exchange_core::Authority::all(library.schema()))
            .await
            .unwrap();
        for row in rows {
            let mut values = vec![None; schema.fields.len()];
            for (name, value) in *row {
                values[schema.position(name).unwrap()] = Some(value.to_string());
            }
            writer.upsert(values).unwrap();
        }
        writer.commit("test", 0).await.unwrap();
        library
    }

    #[tokio::test]
    async fn the_scan_resolves_references_in_the_library_their_kind_names() {
        let dir = tempfile::tempdir().unwrap();
        let (known, unknown) = (uscc("91350100M000100Y4"), uscc("91110105MA0000001"));
        let population = library(dir.path(), &POPULATION, &[&[("id_number", PERSON), ("name", "张三")]]).await;
        let entities = library(
            dir.path(),
            &LEGAL_ENTITY,
            &[
                &[("uscc", &known), ("name", "甲公司"), ("legal_rep_id", PERSON)],
                &[("uscc", &unknown), ("name", "乙公司"), ("legal_rep_id", STRANGER)],
            ],
        )
        .await;
        let credit = library(
            dir.path(),
            &CREDIT,
            &[
                &[("record_id", "R1"), ("subject_id", &known), ("record_type", "行政许可")],
                &[("record_id", "R2"), ("subject_id", PERSON), ("record_type", "行政处罚")],
                &[
                    ("record_id", "R3"),
                    ("subject_id", STRANGER),
                    ("record_type", "行政处罚"),
                ],
                &[
                    ("record_id", "R4"),
                    ("subject_id", &uscc("91330106MA2000000")),
                    ("record_type", "行政处罚"),
                ],
                &[
                    ("record_id", "R5"),
                    ("subject_id", "not a code"),
                    ("record_type", "bad type"),
                ],
            ],
        )
        .await;

        let scan_le = scan(&entities, Some(&population), Some(&entities)).unwrap();
        assert_eq!((scan_le.records, scan_le.stride), (2, 1));
        let rep = &scan_le.fields[LEGAL_ENTITY.position("legal_rep_id").unwrap()];
        assert_eq!((rep.filled, rep.valid, rep.checked, rep.resolved), (2, 2, 2, 1));
        // The person's ID number is masked (L3); the entity's code is public.
        assert_eq!(rep.unresolved, [(unknown.clone(), "440524********0014".to_string())]);
        // The key is no reference.
        assert_eq!(scan_le.fields[0].checked, 0);

        let scan_credit = scan(&credit, Some(&population), Some(&entities)).unwrap();
        let subject = &scan_credit.fields[CREDIT.position("subject_id").unwrap()];
        // R5's subject is neither code: a validity failure, not a reference.
        assert_eq!(
            (subject.filled, subject.valid, subject.checked, subject.resolved),
            (5, 4, 4, 2)
        );
        assert_eq!(subject.unresolved.len(), 2);
        let record_type = &scan_credit.fields[CREDIT.position("record_type").unwrap()];
        assert_eq!((record_type.filled, record_type.valid), (5, 4));

        let all: Vec<usize> = (0..CREDIT.fields.len()).collect();
        let (_, dimensions) = score(
            &credit,
            &scan_credit,
            &all,
            &RunTally::default(),
            UpdateCycle::Daily,
            Some(60),
        );
        assert_eq!(dimensions[3].score, Some(50.0));
        assert_eq!(dimensions[3].fields.len(), 1);
        assert_eq!(dimensions[3].fields[0].figures["references"], "population|legal_entity");
    }
}
