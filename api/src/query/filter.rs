//! Row filters: a DataFusion SQL boolean expression over a library's data items (all text),
//! compiled once and evaluated against one record or an Arrow batch.
//!
//! A grant's row filter (`region_code LIKE '3301%'`) is evaluated on the stored, plain values;
//! a caller's `filter` on the records endpoint is evaluated on the values as the caller sees
//! them (masked where not plain), so it can never test a plain value the caller may not see.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::ExprSchemable;
use datafusion::physical_expr::PhysicalExpr;
use exchange_core::LibrarySchema;

/// Why a filter does not compile or evaluate. The message is DataFusion's, for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not a valid expression over these columns (syntax, unknown column, bad function …).
    #[error("{0}")]
    Invalid(String),
    /// A valid expression whose value is not true or false.
    #[error("the filter is of type {0}, not boolean")]
    NotBoolean(String),
    /// The expression failed on the data (e.g. a cast of a value that is not a number).
    #[error("the filter failed on the data: {0}")]
    Evaluation(String),
}

/// A compiled row filter.
#[derive(Debug)]
pub struct RowFilter {
    sql: String,
    schema: SchemaRef,
    expr: Arc<dyn PhysicalExpr>,
    /// The columns the expression reads, by name.
    columns: Vec<String>,
    /// Positions (in `schema`) of the columns the expression reads.
    positions: Vec<usize>,
    /// A one-row null text column, for the columns the expression does not read.
    null_column: ArrayRef,
}

/// Planning state shared by every compilation (building one registers every function).
static PLANNER: LazyLock<SessionState> = LazyLock::new(|| SessionStateBuilder::new().with_default_features().build());

type Compiled = Result<Arc<RowFilter>, FilterError>;

/// Compiled filters by column set and text.
static CACHE: LazyLock<RwLock<HashMap<String, Compiled>>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// Most filters kept; the cache is emptied when it would hold more (grant filters are few).
const CACHE_CAPACITY: usize = 4096;

impl RowFilter {
    /// Compiles `sql` against a library's data items.
    pub fn compile(schema: &LibrarySchema, sql: &str) -> Result<Self, FilterError> {
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
        Self::compile_columns(&names, sql)
    }

    /// Compiles `sql` against text columns named `columns`: it must name only those columns and
    /// be boolean.
    pub fn compile_columns(columns: &[&str], sql: &str) -> Result<Self, FilterError> {
        let schema = text_schema(columns);
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| FilterError::Invalid(e.to_string()))?;
        let logical = PLANNER
            .create_logical_expr(sql, &df_schema)
            .map_err(|e| FilterError::Invalid(clean(&e)))?;
        let data_type = logical
            .get_type(&df_schema)
            .map_err(|e| FilterError::Invalid(clean(&e)))?;
        if data_type != DataType::Boolean {
            return Err(FilterError::NotBoolean(data_type.to_string()));
        }
        let mut read: Vec<String> = logical.column_refs().iter().map(|c| c.name.clone()).collect();
        read.sort();
        read.dedup();
        let expr = PLANNER
            .create_physical_expr(logical, &df_schema)
            .map_err(|e| FilterError::Invalid(clean(&e)))?;
        let positions = read
            .iter()
            .filter_map(|name| columns.iter().position(|c| c == name))
            .collect();
        Ok(Self {
            sql: sql.to_string(),
            schema,
            expr,
            columns: read,
            positions,
            null_column: new_null_array(&DataType::Utf8, 1),
        })
    }

    /// The compiled filter for `sql` over a library's items, from the process-wide cache.
    pub fn cached(schema: &LibrarySchema, sql: &str) -> Result<Arc<Self>, FilterError> {
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
        Self::cached_columns(&names, sql)
    }

    /// The compiled filter for `sql` over `columns`, from the process-wide cache.
    pub fn cached_columns(columns: &[&str], sql: &str) -> Result<Arc<Self>, FilterError> {
        let key = format!("{}\n{sql}", columns.join(","));
        if let Some(hit) = CACHE.read().expect("filter cache lock").get(&key) {
            return hit.clone();
        }
        let compiled = Self::compile_columns(columns, sql).map(Arc::new);
        let mut cache = CACHE.write().expect("filter cache lock");
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
        compiled
    }

    /// The filter's text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The columns the filter reads, sorted.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Whether the filter holds for one stored record's values (in the compiled column order).
    /// Null or an evaluation failure is "no": a record the filter cannot vouch for is not shown.
    pub fn matches<S: AsRef<str>>(&self, values: &[Option<S>]) -> bool {
        let columns: Vec<ArrayRef> = (0..self.schema.fields().len())
            .map(|i| {
                if self.positions.contains(&i) {
                    Arc::new(StringArray::from(vec![
                        values.get(i).and_then(|v| v.as_ref()).map(AsRef::as_ref),
                    ])) as ArrayRef
                } else {
                    self.null_column.clone()
                }
            })
            .collect();
        let Ok(batch) = RecordBatch::try_new(self.schema.clone(), columns) else {
            return false;
        };
        match self.evaluate(&batch) {
            Ok(mask) => mask.value(0),
            Err(e) => {
                tracing::debug!(filter = %self.sql, error = %e, "row filter failed on a record");
                false
            }
        }
    }

    /// Evaluates the filter on a batch whose columns are those it was compiled against: true
    /// where it holds, false where it does not or is null.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, FilterError> {
        let value = self
            .expr
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| FilterError::Evaluation(clean(&e)))?;
        let mask = value
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| FilterError::NotBoolean(value.data_type().to_string()))?;
        Ok(if mask.null_count() > 0 {
            arrow::compute::prep_null_mask_filter(mask)
        } else {
            mask.clone()
        })
    }
}

pub use exchange_core::schema::text_schema;

/// DataFusion's message without its error-kind prefix noise repeated.
pub(crate) fn clean(e: &datafusion::error::DataFusionError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use exchange_core::StoredRecord;
    use exchange_core::schema::POPULATION;

    use super::*;

    fn record(region: &str, name: Option<&str>) -> StoredRecord {
        let mut values = vec![None; POPULATION.fields.len()];
        values[0] = Some("11010519491231002X".to_string());
        values[1] = name.map(str::to_string);
        values[POPULATION.position("region_code").unwrap()] = Some(region.to_string());
        StoredRecord {
            values,
            source: "GAJ".into(),
            version: 1,
            lineage: Default::default(),
        }
    }

    #[test]
    fn compiles_and_matches_one_record() {
        let filter = RowFilter::compile(&POPULATION, "region_code LIKE '3301%'").unwrap();
        assert_eq!(filter.columns(), ["region_code"]);
        assert!(filter.matches(&record("330102", None).values));
        assert!(!filter.matches(&record("110105", None).values));
        let nulls = RowFilter::compile(&POPULATION, "name = '张三'").unwrap();
        assert!(!nulls.matches(&record("330102", None).values), "null is no");
        assert!(nulls.matches(&record("330102", Some("张三")).values));
    }

    /// (filter, expected error kind)
    #[test]
    fn rejects_what_is_not_a_boolean_expression_over_the_items() {
        let cases: &[(&str, &str)] = &[
            ("salary > 3", "invalid"),
            ("region_code", "not_boolean"),
            ("length(name)", "not_boolean"),
            ("region_code LIKE", "invalid"),
            ("count(*) > 1", "invalid"),
            ("region_code IN (SELECT 1)", "invalid"),
            ("", "invalid"),
        ];
        for (sql, want) in cases {
            let got = match RowFilter::compile(&POPULATION, sql) {
                Ok(_) => "ok",
                Err(FilterError::Invalid(_)) => "invalid",
                Err(FilterError::NotBoolean(_)) => "not_boolean",
                Err(FilterError::Evaluation(_)) => "evaluation",
            };
            assert_eq!(got, *want, "{sql}");
        }
    }

    #[test]
    fn the_cache_returns_the_same_compiled_filter() {
        let a = RowFilter::cached(&POPULATION, "gender = '女'").unwrap();
        let b = RowFilter::cached(&POPULATION, "gender = '女'").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(RowFilter::cached(&POPULATION, "nope = 1").is_err());
    }
}
