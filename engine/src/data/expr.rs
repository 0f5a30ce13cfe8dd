//! DataFusion expressions evaluated on record batches.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::execution_props::ExecutionProps;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};

fn df_schema(schema: &SchemaRef) -> Result<DFSchema> {
    DFSchema::try_from(schema.as_ref().clone()).map_err(|e| Error::Internal(e.to_string()))
}

/// `expr` with its operands cast where their types differ (`float_col > 2`) and simplified
/// (functions such as `coalesce` have no physical form of their own), as DataFusion's planner
/// would.
fn coerced(expr: &Expr, dfs: DFSchema) -> Result<(Expr, DFSchema)> {
    let dfs = Arc::new(dfs);
    let simplifier =
        ExprSimplifier::new(SimplifyContext::builder().with_schema(dfs.clone()).build());
    let expr = simplifier
        .coerce(expr.clone(), &dfs)
        .and_then(|e| simplifier.simplify(e))
        .map_err(|e| Error::InvalidArgument(format!("expression {expr}: {e}")))?;
    Ok((expr, Arc::unwrap_or_clone(dfs)))
}

/// Compiles `expr` against `schema`; errors name the expression.
pub(crate) fn compile(expr: &Expr, schema: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
    let (expr, dfs) = coerced(expr, df_schema(schema)?)?;
    datafusion::physical_expr::create_physical_expr(
        &expr,
        &dfs,
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )
    .map_err(|e| Error::InvalidArgument(format!("expression {expr}: {e}")))
}

/// The output field of `expr` named `name`.
pub(crate) fn field(expr: &Expr, name: &str, schema: &SchemaRef) -> Result<Field> {
    let (expr, dfs) = coerced(expr, df_schema(schema)?)?;
    let (_, f) = expr
        .to_field(&dfs)
        .map_err(|e| Error::InvalidArgument(format!("expression {expr}: {e}")))?;
    Ok(Field::new(name, f.data_type().clone(), f.is_nullable()))
}

/// Parses a SQL predicate (`"value > 0.5 AND key = 'a'"`) against `schema`. Column names
/// are exact (`UserID > 7` reads `UserID`, not `userid`); a name that is not an identifier
/// is quoted: `"sepal.length" > 2` (or with backquotes).
pub(crate) fn parse_sql(sql: &str, schema: &SchemaRef) -> Result<Expr> {
    let dfs = df_schema(schema)?;
    let mut config = SessionConfig::new();
    config.options_mut().sql_parser.enable_ident_normalization = false;
    SessionContext::new_with_config(config)
        .parse_sql_expr(sql, &dfs)
        .map_err(|e| Error::InvalidArgument(format!("expression {sql:?}: {e}")))
}

/// Rows of `batch` where `predicate` is true.
pub(crate) fn filter(
    batch: &RecordBatch,
    predicate: &Arc<dyn PhysicalExpr>,
) -> Result<RecordBatch> {
    let v = predicate
        .evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(|e| Error::InvalidArgument(format!("evaluating {predicate}: {e}")))?;
    let mask = v
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| Error::InvalidArgument(format!("predicate {predicate} is not boolean")))?;
    Ok(arrow::compute::filter_record_batch(batch, mask)?)
}

/// Evaluates `exprs` into a batch of `schema`.
pub(crate) fn project(
    batch: &RecordBatch,
    exprs: &[Arc<dyn PhysicalExpr>],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let cols = exprs
        .iter()
        .map(|e| {
            e.evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
                .map_err(|err| Error::InvalidArgument(format!("evaluating {e}: {err}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &opts,
    )?)
}

/// Columns `expr` reads.
pub(crate) fn columns(expr: &Expr) -> Vec<String> {
    let mut out: Vec<String> = expr
        .column_refs()
        .into_iter()
        .map(|c| c.name.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A schema from fields.
pub(crate) fn schema_of(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}
