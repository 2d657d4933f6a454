//! The open-data catalog (开放数据目录) for the public, `/open/v1/…`: the datasets (published
//! resources whose open type is unconditional or conditional), one dataset's metadata with its
//! open items and download links, and the catalog as DCAT-AP 2 (JSON-LD and Turtle). Anonymous:
//! no credential is read. What makes a dataset and which items it shows is decided in
//! [`catalog::open_items`]; the downloads themselves are served elsewhere.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use catalog::{Classification, QualityScope, Resource, Served};
use exchange_core::{OpenType, UpdateCycle};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::problem::Problem;
use crate::startup::AppState;

type Reply = Result<HttpResponse, Problem>;

/// A download format of a dataset.
#[derive(Debug, Clone, Copy)]
pub struct DownloadFormat {
    /// The `format` parameter of the download URL.
    pub code: &'static str,
    /// The name CKAN clients show (`CSV`, `Parquet`, …).
    pub label: &'static str,
    /// The IANA media type.
    pub media_type: &'static str,
    /// The EU file-type authority code (DCAT-AP `dct:format`), where it has one.
    pub eu_file_type: Option<&'static str>,
}

/// Every format a dataset downloads in, in the order they are listed.
pub const DOWNLOAD_FORMATS: [DownloadFormat; 5] = [
    DownloadFormat {
        code: "csv",
        label: "CSV",
        media_type: "text/csv",
        eu_file_type: Some("CSV"),
    },
    DownloadFormat {
        code: "json",
        label: "JSON",
        media_type: "application/json",
        eu_file_type: Some("JSON"),
    },
    DownloadFormat {
        code: "ndjson",
        label: "NDJSON",
        media_type: "application/x-ndjson",
        eu_file_type: None,
    },
    DownloadFormat {
        code: "parquet",
        label: "Parquet",
        media_type: "application/vnd.apache.parquet",
        eu_file_type: Some("PARQUET"),
    },
    DownloadFormat {
        code: "xlsx",
        label: "XLSX",
        media_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        eu_file_type: Some("XLSX"),
    },
];

/// The licence every dataset is published under (the CKAN `license_id` and its wording).
pub const LICENSE_ID: &str = "cc-by";
/// The licence's title, Chinese first.
pub const LICENSE_TITLE: &str = "知识共享署名 4.0 国际许可协议 (Creative Commons Attribution 4.0, CC BY 4.0)";
/// The licence's text.
pub const LICENSE_URL: &str = "https://creativecommons.org/licenses/by/4.0/";

/// `scheme://host` of the request, as the client reached the server (proxy headers included).
pub fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// The download URL of a dataset in a format (served by the download route).
pub fn download_url(base: &str, code: &str, format: &str) -> String {
    format!("{base}/open/v1/datasets/{code}/download?format={format}")
}

/// The organization name (CKAN `name`) of a department: its code, lower-cased.
pub fn organization_name(department_code: &str) -> String {
    department_code.to_lowercase()
}

/// A vocabulary value: its stable code and Chinese label.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CodeLabel {
    /// The stable code.
    pub code: &'static str,
    /// The Chinese label.
    pub label_zh: &'static str,
}

fn open_type_of(open_type: OpenType) -> CodeLabel {
    CodeLabel {
        code: open_type.code(),
        label_zh: open_type.label_zh(),
    }
}

fn update_cycle_of(cycle: UpdateCycle) -> CodeLabel {
    CodeLabel {
        code: cycle.code(),
        label_zh: cycle.label_zh(),
    }
}

fn theme_of(classification: Classification) -> CodeLabel {
    CodeLabel {
        code: classification.code(),
        label_zh: classification.label_zh(),
    }
}

/// The providing department (提供方).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrganizationRef {
    /// The department code, e.g. `SCJGJ`.
    pub code: String,
    /// Its Chinese name.
    pub name: String,
}

/// A dataset as a list shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetSummary {
    /// The dataset id: its resource code (资源代码).
    pub id: String,
    /// 资源名称.
    pub name: String,
    /// 资源摘要.
    pub summary: String,
    /// 提供方.
    pub organization: OrganizationRef,
    /// The catalog's first level (资源分类): `base` 基础信息资源, `theme` 主题信息资源,
    /// `department` 部门信息资源.
    pub theme: CodeLabel,
    /// 开放类型: `unconditional` (无条件开放) or `conditional` (有条件开放: apply and be approved).
    pub open_type: CodeLabel,
    /// 更新周期.
    pub update_cycle: CodeLabel,
    /// 发布日期.
    pub publish_date: Option<String>,
    /// When its metadata last changed.
    pub updated_at: String,
    /// Search relevance (absent without `q`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub score: Option<i64>,
}

/// An open data item (开放信息项). L3/L4 items are withheld and not listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetItem {
    /// Column name.
    pub name: String,
    /// 信息项名称.
    pub label_zh: String,
    /// Data type as catalogued.
    pub data_type: String,
    /// `L1` or `L2`.
    #[schema(value_type = String, example = "L1")]
    pub sensitivity: exchange_core::Sensitivity,
    /// `plain` (L1) or `masked` (L2, 脱敏) as served to the public.
    pub served: Served,
}

/// A download of a dataset.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Distribution {
    /// `csv`, `json`, `ndjson`, `parquet` or `xlsx`.
    pub format: &'static str,
    /// The IANA media type.
    pub media_type: &'static str,
    /// The download URL.
    pub url: String,
}

/// The latest quality score of a dataset's data.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QualityScore {
    /// 0–100.
    pub overall: f64,
    /// When computed.
    pub computed_at: String,
    /// The library version scored.
    pub library_version: Option<i64>,
    /// `resource` (the dataset's own report) or `library` (its library's, when the dataset has
    /// none of its own).
    #[schema(value_type = String, example = "resource")]
    pub scope: QualityScope,
}

/// A dataset's metadata (`GET /open/v1/datasets/{id}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetDetail {
    /// As in the list.
    #[serde(flatten)]
    pub summary: DatasetSummary,
    /// The resource code (the same as `id`).
    pub code: String,
    /// The library that holds its data, if any.
    pub library: Option<String>,
    /// The library version served now (null without a library).
    pub library_version: Option<i64>,
    /// Records in the library now (null without a library).
    pub record_count: Option<u64>,
    /// The open items (L1 plain, L2 masked), in catalog order.
    pub items: Vec<DatasetItem>,
    /// The latest quality score, if the data was ever scored.
    pub quality: Option<QualityScore>,
    /// One download per format; empty when no library holds the data.
    pub distributions: Vec<Distribution>,
}

/// A page of datasets.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetPage {
    /// Datasets matching in all.
    pub total: usize,
    /// This page (from 1).
    pub page: usize,
    /// Page size.
    pub per_page: usize,
    /// The page's datasets: by relevance with `q`, else by code.
    pub datasets: Vec<DatasetSummary>,
}

/// The summary of a dataset.
pub fn summary_of(resource: &Resource, score: Option<i64>) -> DatasetSummary {
    let m = &resource.meta;
    DatasetSummary {
        id: resource.code.clone(),
        name: m.name.clone(),
        summary: m.summary.clone(),
        organization: OrganizationRef {
            code: m.provider_code.clone(),
            name: resource.provider_name.clone(),
        },
        theme: theme_of(m.classification),
        open_type: open_type_of(m.open_type),
        update_cycle: update_cycle_of(m.update_cycle),
        publish_date: m.publish_date.map(|d| d.to_string()),
        updated_at: resource.updated_at.clone(),
        score,
    }
}

/// The open items of a dataset.
pub fn items_of(resource: &Resource) -> Vec<DatasetItem> {
    catalog::open_items(resource)
        .map(|(item, served)| DatasetItem {
            name: item.name.clone(),
            label_zh: item.label_zh.clone(),
            data_type: item.data_type.clone(),
            sensitivity: item.sensitivity,
            served,
        })
        .collect()
}

/// The library version and record count of the library holding a dataset, when one does
/// and it is open here.
pub fn library_facts(state: &AppState, resource: &Resource) -> (Option<i64>, Option<u64>) {
    match resource
        .meta
        .library
        .as_deref()
        .and_then(|name| state.libraries.get(name))
    {
        Some(library) => (library.version().ok(), library.len().ok()),
        None => (None, None),
    }
}

/// Whether a dataset has data to download: a library holds it and is open here.
pub fn downloadable(state: &AppState, resource: &Resource) -> bool {
    resource
        .meta
        .library
        .as_deref()
        .is_some_and(|name| state.libraries.contains(name))
}

/// The 404 of a dataset that does not exist or is not open (the two are not told apart).
pub fn dataset_not_found(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "dataset_not_found",
        "Dataset not found",
        format!("no open dataset has the id {id:?}"),
    )
    .with_field("id")
}

/// Filters and paging of `GET /open/v1/datasets`. Unknown parameters are refused.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DatasetQuery {
    /// Search words, each matched in the name, code, summary, open items' labels and the
    /// provider's name; every word must match.
    pub q: Option<String>,
    /// Only this provider: its department code, any case (`SCJGJ` or `scjgj`).
    pub organization: Option<String>,
    /// Only this first-level classification: `base`, `theme` or `department` (or its Chinese label).
    pub theme: Option<String>,
    /// Only this open type: `unconditional` or `conditional` (or its Chinese label).
    pub open_type: Option<String>,
    /// The page, from 1 (default 1).
    pub page: Option<String>,
    /// Datasets per page, 1–100 (default 20).
    pub per_page: Option<String>,
}

fn parse_count(field: &str, value: Option<&str>, default: usize, max: usize) -> Result<usize, Problem> {
    match value {
        None => Ok(default),
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Problem::invalid_query(
                field,
                format!("{field} is a whole number from 1 to {max}, not {text:?}"),
            )),
        },
    }
}

/// `GET /open/v1/datasets`: the open catalog, searched, filtered and paged.
#[utoipa::path(
    get,
    path = "/open/v1/datasets",
    tag = "open data",
    security(()),
    params(DatasetQuery),
    responses(
        (status = 200, description = "A page of datasets", body = DatasetPage),
        (status = 422, description = "`invalid_query`: a parameter is unknown or out of range; `field` names it", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn list(state: web::Data<AppState>, query: web::Query<DatasetQuery>) -> Reply {
    let page = parse_count("page", query.page.as_deref(), 1, usize::MAX)?;
    let per_page = parse_count("per_page", query.per_page.as_deref(), 20, 100)?;
    let theme = match query.theme.as_deref() {
        None => None,
        Some(text) => Some(Classification::parse(text).ok_or_else(|| {
            Problem::invalid_query(
                "theme",
                format!("theme is one of base, theme, department, not {text:?}"),
            )
        })?),
    };
    let open_type = match query.open_type.as_deref() {
        None => None,
        Some(text) => match text.parse::<OpenType>() {
            Ok(t) if catalog::OPEN_TYPES.contains(&t) => Some(t),
            _ => {
                return Err(Problem::invalid_query(
                    "open_type",
                    format!("open_type is unconditional or conditional, not {text:?}"),
                ));
            }
        },
    };
    let datasets = state.catalog.open_datasets().await?;
    let matches = search(
        &datasets,
        query.q.as_deref(),
        query.organization.as_deref(),
        theme,
        open_type,
    );
    let total = matches.len();
    let datasets = matches
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|(score, r)| summary_of(r, score))
        .collect();
    Ok(HttpResponse::Ok().json(DatasetPage {
        total,
        page,
        per_page,
        datasets,
    }))
}

/// The datasets that match a search (best first, each with its relevance) or, without words,
/// the filters alone (in code order): the open catalog's, CKAN's and the portal's search.
pub(crate) fn search<'a>(
    datasets: &'a [Resource],
    q: Option<&str>,
    organization: Option<&str>,
    theme: Option<Classification>,
    open_type: Option<OpenType>,
) -> Vec<(Option<i64>, &'a Resource)> {
    let words = catalog::search_words(q.unwrap_or(""));
    let mut matches: Vec<(Option<i64>, &Resource)> = datasets
        .iter()
        .filter(|r| organization.is_none_or(|o| o.eq_ignore_ascii_case(&r.meta.provider_code)))
        .filter(|r| theme.is_none_or(|t| r.meta.classification == t))
        .filter(|r| open_type.is_none_or(|t| r.meta.open_type == t))
        .filter_map(|r| {
            if words.is_empty() {
                Some((None, r))
            } else {
                let score = catalog::relevance(r, &words);
                (score > 0).then_some((Some(score), r))
            }
        })
        .collect();
    // Best first with a search (the sort is stable: codes stay in order among equals).
    matches.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
    matches
}

/// `GET /open/v1/datasets/{id}`: one dataset's metadata, open items and downloads.
#[utoipa::path(
    get,
    path = "/open/v1/datasets/{id}",
    tag = "open data",
    security(()),
    params(
        ("id" = String, Path, description = "The dataset id: its resource code, e.g. `1-02-001-000001`"),
    ),
    responses(
        (status = 200, description = "The dataset", body = DatasetDetail),
        (status = 404, description = "`dataset_not_found`: no resource has this code, or it is not open", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn get(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Reply {
    let resource = match state.catalog.open_dataset(&id).await {
        Ok(resource) => resource,
        Err(catalog::Error::NotFound { .. }) => return Err(dataset_not_found(&id)),
        Err(e) => return Err(e.into()),
    };
    let base = base_url(&req);
    let (library_version, record_count) = library_facts(&state, &resource);
    let quality = latest_quality(&state, &resource).await?;
    let distributions = if downloadable(&state, &resource) {
        DOWNLOAD_FORMATS
            .iter()
            .map(|f| Distribution {
                format: f.code,
                media_type: f.media_type,
                url: download_url(&base, &resource.code, f.code),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(HttpResponse::Ok().json(DatasetDetail {
        summary: summary_of(&resource, None),
        code: resource.code.clone(),
        library: resource.meta.library.clone(),
        library_version,
        record_count,
        items: items_of(&resource),
        quality,
        distributions,
    }))
}

/// The dataset's newest quality report, else its library's.
async fn latest_quality(state: &AppState, resource: &Resource) -> Result<Option<QualityScore>, Problem> {
    let mut reports = state
        .catalog
        .quality_reports(QualityScope::Resource, &resource.code, 1)
        .await?;
    if reports.is_empty()
        && let Some(library) = &resource.meta.library
    {
        reports = state.catalog.quality_reports(QualityScope::Library, library, 1).await?;
    }
    Ok(reports.into_iter().next().map(|r| QualityScore {
        overall: r.overall,
        computed_at: r.computed_at,
        library_version: r.library_version,
        scope: r.scope,
    }))
}

/// The EU frequency authority URI of an update cycle (DCAT-AP `dct:accrualPeriodicity`).
pub fn eu_frequency(cycle: UpdateCycle) -> String {
    let code = match cycle {
        UpdateCycle::RealTime => "UPDATE_CONT",
        UpdateCycle::Daily => "DAILY",
        UpdateCycle::Weekly => "WEEKLY",
        UpdateCycle::Monthly => "MONTHLY",
        UpdateCycle::Quarterly => "QUARTERLY",
        UpdateCycle::HalfYearly => "ANNUAL_2",
        UpdateCycle::Yearly => "ANNUAL",
        UpdateCycle::Irregular => "IRREG",
    };
    format!("http://publications.europa.eu/resource/authority/frequency/{code}")
}

/// The EU access-right URI of an open type: unconditional is public, conditional restricted.
fn eu_access_rights(open_type: OpenType) -> &'static str {
    match open_type {
        OpenType::Unconditional => "http://publications.europa.eu/resource/authority/access-right/PUBLIC",
        _ => "http://publications.europa.eu/resource/authority/access-right/RESTRICTED",
    }
}

const CATALOG_TITLE: &str = "公共数据开放目录";
const CATALOG_DESCRIPTION: &str = "政府部门依法向社会开放的公共数据集（无条件开放与有条件开放）。";

/// One triple's object, as both serializations need it.
enum Object {
    /// An IRI.
    Iri(String),
    /// A literal in Chinese.
    Zh(String),
    /// A plain literal.
    Text(String),
    /// A typed literal (`xsd:date`, `xsd:dateTime`).
    Typed(String, &'static str),
    /// A blank node with its own statements.
    Node(Vec<(&'static str, Object)>),
}

/// The catalog as statements: (subject IRI, its statements) per resource described.
fn catalog_statements(
    state: &AppState,
    base: &str,
    datasets: &[Resource],
) -> Vec<(String, Vec<(&'static str, Object)>)> {
    use Object::*;
    let catalog_iri = format!("{base}/open/v1/catalog");
    let mut subjects = Vec::new();
    let mut catalog = vec![
        ("rdf:type", Iri("dcat:Catalog".into())),
        ("dct:title", Zh(CATALOG_TITLE.into())),
        ("dct:description", Zh(CATALOG_DESCRIPTION.into())),
        (
            "dct:publisher",
            Node(vec![
                ("rdf:type", Iri("foaf:Agent".into())),
                ("foaf:name", Zh("汇通公共数据开放平台".into())),
            ]),
        ),
        ("foaf:homepage", Iri(format!("{base}/"))),
        (
            "dct:language",
            Iri("http://publications.europa.eu/resource/authority/language/ZHO".into()),
        ),
        ("dct:license", Iri(LICENSE_URL.into())),
        ("dcat:themeTaxonomy", Iri(format!("{base}/open/v1/themes"))),
    ];
    for r in datasets {
        catalog.push(("dcat:dataset", Iri(format!("{base}/open/v1/datasets/{}", r.code))));
    }
    subjects.push((catalog_iri, catalog));
    // The themes: the catalog's first classification level, as a SKOS scheme of three concepts.
    subjects.push((
        format!("{base}/open/v1/themes"),
        vec![
            ("rdf:type", Iri("skos:ConceptScheme".into())),
            ("dct:title", Zh("政务信息资源分类".into())),
        ],
    ));
    for classification in [Classification::Base, Classification::Theme, Classification::Department] {
        subjects.push((
            format!("{base}/open/v1/themes/{}", classification.code()),
            vec![
                ("rdf:type", Iri("skos:Concept".into())),
                ("skos:prefLabel", Zh(classification.label_zh().into())),
                ("skos:notation", Text(classification.digit().to_string())),
                ("skos:inScheme", Iri(format!("{base}/open/v1/themes"))),
            ],
        ));
    }
    for r in datasets {
        let m = &r.meta;
        let iri = format!("{base}/open/v1/datasets/{}", r.code);
        let mut s = vec![
            ("rdf:type", Iri("dcat:Dataset".into())),
            ("dct:identifier", Text(r.code.clone())),
            ("dct:title", Zh(m.name.clone())),
            ("dct:description", Zh(m.summary.clone())),
            (
                "dct:publisher",
                Node(vec![
                    ("rdf:type", Iri("foaf:Organization".into())),
                    ("foaf:name", Zh(r.provider_name.clone())),
                    ("dct:identifier", Text(m.provider_code.clone())),
                ]),
            ),
            ("dct:modified", Typed(r.updated_at.clone(), "xsd:dateTime")),
            ("dct:accrualPeriodicity", Iri(eu_frequency(m.update_cycle))),
            ("dct:accessRights", Iri(eu_access_rights(m.open_type).into())),
            (
                "dcat:theme",
                Iri(format!("{base}/open/v1/themes/{}", m.classification.code())),
            ),
            ("dcat:landingPage", Iri(iri.clone())),
        ];
        if let Some(date) = m.publish_date {
            s.push(("dct:issued", Typed(date.to_string(), "xsd:date")));
        }
        for (item, _) in catalog::open_items(r) {
            s.push(("dcat:keyword", Zh(item.label_zh.clone())));
        }
        if downloadable(state, r) {
            for f in &DOWNLOAD_FORMATS {
                let url = download_url(base, &r.code, f.code);
                let mut d = vec![
                    ("rdf:type", Iri("dcat:Distribution".into())),
                    ("dct:title", Zh(format!("{} ({})", m.name, f.label))),
                    ("dcat:accessURL", Iri(url.clone())),
                    ("dcat:downloadURL", Iri(url)),
                    (
                        "dcat:mediaType",
                        Iri(format!("http://www.iana.org/assignments/media-types/{}", f.media_type)),
                    ),
                    ("dct:license", Iri(LICENSE_URL.into())),
                ];
                if let Some(code) = f.eu_file_type {
                    d.push((
                        "dct:format",
                        Iri(format!(
                            "http://publications.europa.eu/resource/authority/file-type/{code}"
                        )),
                    ));
                }
                s.push(("dcat:distribution", Node(d)));
            }
        }
        subjects.push((iri, s));
    }
    subjects
}

const PREFIXES: [(&str, &str); 6] = [
    ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
    ("dcat", "http://www.w3.org/ns/dcat#"),
    ("dct", "http://purl.org/dc/terms/"),
    ("foaf", "http://xmlns.com/foaf/0.1/"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ("skos", "http://www.w3.org/2004/02/skos/core#"),
];

/// Expands `prefix:name` to a full IRI (JSON-LD `@type` values and `@id`s are written in full).
fn expand(iri: &str) -> String {
    PREFIXES
        .iter()
        .find_map(|(prefix, ns)| {
            iri.strip_prefix(&format!("{prefix}:"))
                .map(|rest| format!("{ns}{rest}"))
        })
        .unwrap_or_else(|| iri.to_string())
}

fn jsonld_node(statements: &[(&'static str, Object)]) -> serde_json::Map<String, Value> {
    let mut node = serde_json::Map::new();
    for (predicate, object) in statements {
        if *predicate == "rdf:type" {
            if let Object::Iri(t) = object {
                node.insert("@type".into(), Value::String(t.clone()));
            }
            continue;
        }
        let value = match object {
            Object::Iri(iri) => json!({"@id": expand(iri)}),
            Object::Zh(text) => json!({"@value": text, "@language": "zh"}),
            Object::Text(text) => Value::String(text.clone()),
            Object::Typed(text, datatype) => json!({"@value": text, "@type": datatype}),
            Object::Node(inner) => Value::Object(jsonld_node(inner)),
        };
        match node.get_mut(*predicate) {
            None => {
                node.insert((*predicate).into(), value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    node
}

/// `GET /open/v1/catalog.jsonld`: the open catalog as DCAT-AP 2 JSON-LD.
#[utoipa::path(
    get,
    path = "/open/v1/catalog.jsonld",
    tag = "open data",
    security(()),
    responses(
        (status = 200, description = "The open catalog as DCAT-AP 2 JSON-LD: a `dcat:Catalog` with its `dcat:Dataset`s and their distributions", body = Object, content_type = "application/ld+json"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn dcat_jsonld(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let base = base_url(&req);
    let datasets = state.catalog.open_datasets().await?;
    let graph: Vec<Value> = catalog_statements(&state, &base, &datasets)
        .into_iter()
        .map(|(iri, statements)| {
            let mut node = serde_json::Map::new();
            node.insert("@id".into(), Value::String(iri));
            node.extend(jsonld_node(&statements));
            Value::Object(node)
        })
        .collect();
    let context: serde_json::Map<String, Value> = PREFIXES
        .iter()
        .map(|(prefix, ns)| ((*prefix).to_string(), Value::String((*ns).to_string())))
        .collect();
    Ok(HttpResponse::Ok()
        .content_type("application/ld+json")
        .json(json!({"@context": context, "@graph": graph})))
}

fn turtle_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn turtle_iri(iri: &str) -> String {
    if PREFIXES
        .iter()
        .any(|(prefix, _)| iri.starts_with(&format!("{prefix}:")))
    {
        iri.to_string()
    } else {
        // IRIs here are built from codes and the request's host; characters Turtle forbids in
        // an IRI are escaped by number.
        let mut out = String::from("<");
        for c in iri.chars() {
            if matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '^' | '`' | '\\') || c <= ' ' {
                out.push_str(&format!("\\u{:04X}", c as u32));
            } else {
                out.push(c);
            }
        }
        out.push('>');
        out
    }
}

fn turtle_statements(statements: &[(&'static str, Object)], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (n, (predicate, object)) in statements.iter().enumerate() {
        let predicate = if *predicate == "rdf:type" { "a" } else { predicate };
        let object = match object {
            Object::Iri(iri) => turtle_iri(iri),
            Object::Zh(text) => format!("{}@zh", turtle_literal(text)),
            Object::Text(text) => turtle_literal(text),
            Object::Typed(text, datatype) => format!("{}^^{datatype}", turtle_literal(text)),
            Object::Node(inner) => {
                let mut nested = String::from("[\n");
                turtle_statements(inner, indent + 4, &mut nested);
                nested.push_str(&format!("\n{pad}]"));
                nested
            }
        };
        let end = if n + 1 == statements.len() { "" } else { " ;\n" };
        out.push_str(&format!("{pad}{predicate} {object}{end}"));
    }
}

/// `GET /open/v1/catalog.ttl`: the open catalog as DCAT-AP 2 Turtle (the same statements as
/// the JSON-LD).
#[utoipa::path(
    get,
    path = "/open/v1/catalog.ttl",
    tag = "open data",
    security(()),
    responses(
        (status = 200, description = "The open catalog as DCAT-AP 2 Turtle", body = String, content_type = "text/turtle"),
        (status = 500, response = crate::openapi::Internal),
    )
)]
pub async fn dcat_turtle(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let base = base_url(&req);
    let datasets = state.catalog.open_datasets().await?;
    let mut out = String::new();
    for (prefix, ns) in PREFIXES {
        out.push_str(&format!("@prefix {prefix}: <{ns}> .\n"));
    }
    for (iri, statements) in catalog_statements(&state, &base, &datasets) {
        out.push_str(&format!("\n{}\n", turtle_iri(&iri)));
        turtle_statements(&statements, 4, &mut out);
        out.push_str(" .\n");
    }
    Ok(HttpResponse::Ok().content_type("text/turtle; charset=utf-8").body(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turtle_literals_escape_quotes_and_line_breaks() {
        assert_eq!(turtle_literal("a \"b\"\nc\\"), "\"a \\\"b\\\"\\nc\\\\\"");
    }

    #[test]
    fn every_update_cycle_has_an_eu_frequency() {
        for cycle in UpdateCycle::ALL {
            assert!(eu_frequency(*cycle).starts_with("http://publications.europa.eu/resource/authority/frequency/"));
        }
        assert!(eu_frequency(UpdateCycle::HalfYearly).ends_with("/ANNUAL_2"));
    }
}
