//! `AggregateExchange`: groupby-aggregate as a hash-partitioned exchange. Map tasks compute
//! partial aggregates of their fragment (DataFusion), hash-partition them by key; reducer `p`
//! combines the partials of its keys into final values (DataFusion, then mean and standard
//! deviation from their sums). `Unique` and `Quantile` gather each group's values (as Ray's
//! do): a list per fragment, the lists combined per group.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, ListArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::datasource::MemTable;
use datafusion::functions::math::expr_fn::abs;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::functions_nested::expr_fn::{array_distinct, flatten};
use datafusion::logical_expr::{Expr, ExprFunctionExt};
use datafusion::prelude::{SessionConfig, SessionContext, ident};

use crate::data::context::DataContext;
use crate::data::physical::exchange::Exchange;
use crate::error::{Error, Result};

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AggKind {
    /// Rows (or non-null values of a column).
    Count,
    /// Sum.
    Sum,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Mean.
    Mean,
    /// Sample standard deviation (ddof = 1).
    Std,
    /// The largest absolute value.
    AbsMax,
    /// The distinct non-null values, as a list.
    Unique,
    /// The `q`-quantile (0 ≤ q ≤ 1) of the non-null values, interpolated linearly between
    /// the two nearest (Ray's `Quantile`, rounded to 5 decimals as Ray does).
    Quantile(f64),
}

/// One aggregate of a groupby: a function over a column (`None`: rows, for `Count`).
#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    /// The function.
    pub kind: AggKind,
    /// The column.
    pub column: Option<String>,
}

impl Agg {
    /// The output column name, as Ray names it: `count()`, `sum(value)`, ...
    pub fn output_name(&self) -> String {
        let f = match self.kind {
            AggKind::Count => "count",
            AggKind::Sum => "sum",
            AggKind::Min => "min",
            AggKind::Max => "max",
            AggKind::Mean => "mean",
            AggKind::Std => "std",
            AggKind::AbsMax => "abs_max",
            AggKind::Unique => "unique",
            AggKind::Quantile(_) => "quantile",
        };
        format!("{f}({})", self.column.as_deref().unwrap_or(""))
    }
}

/// Groups by keys and aggregates.
pub(crate) struct AggregateExchange {
    /// Group keys.
    keys: Vec<String>,
    /// Aggregates.
    aggs: Vec<Agg>,
    io: tokio::runtime::Handle,
}

impl AggregateExchange {
    pub(crate) fn new(keys: Vec<String>, aggs: Vec<Agg>, io: tokio::runtime::Handle) -> Self {
        AggregateExchange { keys, aggs, io }
    }

    fn partial_names(i: usize) -> [String; 3] {
        [
            format!("__p{i}_a"),
            format!("__p{i}_b"),
            format!("__p{i}_c"),
        ]
    }

    fn value(&self, a: &Agg) -> Result<Expr> {
        a.column
            .as_ref()
            .map(ident)
            .ok_or_else(|| Error::InvalidArgument(format!("{:?} needs a column", a.kind)))
    }

    /// Partial aggregates of one fragment.
    fn partial_exprs(&self) -> Result<Vec<Expr>> {
        let mut out = Vec::new();
        for (i, a) in self.aggs.iter().enumerate() {
            let [pa, pb, pc] = Self::partial_names(i);
            let f64v = || -> Result<Expr> {
                Ok(datafusion::prelude::cast(self.value(a)?, DataType::Float64))
            };
            match a.kind {
                AggKind::Count => out.push(
                    agg::count(
                        a.column
                            .as_ref()
                            .map_or(datafusion::prelude::lit(1i64), ident),
                    )
                    .alias(pa),
                ),
                AggKind::Sum => out.push(agg::sum(self.value(a)?).alias(pa)),
                AggKind::Min => out.push(agg::min(self.value(a)?).alias(pa)),
                AggKind::Max => out.push(agg::max(self.value(a)?).alias(pa)),
                AggKind::Mean => {
                    out.push(agg::sum(f64v()?).alias(pa));
                    out.push(agg::count(self.value(a)?).alias(pb));
                }
                AggKind::Std => {
                    out.push(agg::sum(f64v()?).alias(pa));
                    out.push(agg::sum(f64v()? * f64v()?).alias(pb));
                    out.push(agg::count(self.value(a)?).alias(pc));
                }
                AggKind::AbsMax => out.push(agg::max(abs(self.value(a)?)).alias(pa)),
                AggKind::Unique | AggKind::Quantile(_) => {
                    let v = self.value(a)?;
                    let list = agg::array_agg(v.clone()).filter(v.is_not_null());
                    let list = if a.kind == AggKind::Unique {
                        list.distinct()
                    } else {
                        list
                    };
                    out.push(list.build().map_err(|e| self.df_err(e))?.alias(pa));
                }
            }
        }
        Ok(out)
    }

    fn df_err(&self, e: datafusion::error::DataFusionError) -> Error {
        Error::InvalidArgument(format!("{self}: {e}"))
    }

    /// Combines partials.
    fn final_exprs(&self) -> Vec<Expr> {
        let mut out = Vec::new();
        for (i, a) in self.aggs.iter().enumerate() {
            let [pa, pb, pc] = Self::partial_names(i);
            match a.kind {
                AggKind::Count | AggKind::Sum => out.push(agg::sum(ident(&pa)).alias(pa)),
                AggKind::Min => out.push(agg::min(ident(&pa)).alias(pa)),
                AggKind::Max | AggKind::AbsMax => out.push(agg::max(ident(&pa)).alias(pa)),
                AggKind::Unique | AggKind::Quantile(_) => {
                    out.push(agg::array_agg(ident(&pa)).alias(pa))
                }
                AggKind::Mean => {
                    out.push(agg::sum(ident(&pa)).alias(pa));
                    out.push(agg::sum(ident(&pb)).alias(pb));
                }
                AggKind::Std => {
                    out.push(agg::sum(ident(&pa)).alias(pa));
                    out.push(agg::sum(ident(&pb)).alias(pb));
                    out.push(agg::sum(ident(&pc)).alias(pc));
                }
            }
        }
        out
    }

    fn run(&self, batches: Vec<RecordBatch>, aggs: Vec<Expr>) -> Result<Vec<RecordBatch>> {
        let Some(first) = batches.first() else {
            return Ok(Vec::new());
        };
        let schema = first.schema();
        let ctx = SessionContext::new_with_config(
            SessionConfig::new()
                .with_target_partitions(1)
                .with_batch_size(64 * 1024),
        );
        let df_err = |e| self.df_err(e);
        let table = MemTable::try_new(schema, vec![batches]).map_err(df_err)?;
        let df = ctx.read_table(Arc::new(table)).map_err(df_err)?;
        let group: Vec<Expr> = self.keys.iter().map(ident).collect();
        let df = df.aggregate(group, aggs).map_err(df_err)?;
        self.io.block_on(df.collect()).map_err(df_err)
    }

    /// Final values from combined partials: `key..., count(), sum(x), mean(x), ...`.
    fn finish(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mut fields: Vec<Field> = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for k in &self.keys {
            let c = batch
                .column_by_name(k)
                .ok_or_else(|| Error::Internal(format!("key {k} lost")))?;
            fields.push(Field::new(k, c.data_type().clone(), true));
            cols.push(c.clone());
        }
        let f64col = |name: &str| -> Result<Float64Array> {
            let c = batch
                .column_by_name(name)
                .ok_or_else(|| Error::Internal(format!("{name} lost")))?;
            Ok(cast(c, &DataType::Float64)?
                .as_any()
                .downcast_ref::<Float64Array>()
                .cloned()
                .unwrap_or_else(|| Float64Array::from(Vec::<f64>::new())))
        };
        for (i, a) in self.aggs.iter().enumerate() {
            let [pa, pb, pc] = Self::partial_names(i);
            let arr: ArrayRef = match a.kind {
                AggKind::Count | AggKind::Sum | AggKind::Min | AggKind::Max | AggKind::AbsMax => {
                    batch
                        .column_by_name(&pa)
                        .cloned()
                        .ok_or_else(|| Error::Internal(format!("{pa} lost")))?
                }
                // The fragments' lists of a group, as one list.
                AggKind::Unique => self.eval(batch, array_distinct(flatten(ident(&pa))))?,
                AggKind::Quantile(q) => {
                    quantiles(&self.eval(batch, flatten(ident(&pa)))?, q, &a.output_name())?
                }
                AggKind::Mean => {
                    let (s, n) = (f64col(&pa)?, f64col(&pb)?);
                    Arc::new(Float64Array::from_iter((0..s.len()).map(|r| {
                        (n.is_valid(r) && n.value(r) > 0.0).then(|| s.value(r) / n.value(r))
                    })))
                }
                AggKind::Std => {
                    let (s, ss, n) = (f64col(&pa)?, f64col(&pb)?, f64col(&pc)?);
                    Arc::new(Float64Array::from_iter((0..s.len()).map(|r| {
                        let cnt = n.value(r);
                        (n.is_valid(r) && cnt > 1.0).then(|| {
                            ((ss.value(r) - s.value(r) * s.value(r) / cnt) / (cnt - 1.0))
                                .max(0.0)
                                .sqrt()
                        })
                    })))
                }
            };
            fields.push(Field::new(a.output_name(), arr.data_type().clone(), true));
            cols.push(arr);
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}

impl AggregateExchange {
    /// `expr` evaluated over `batch`.
    fn eval(&self, batch: &RecordBatch, expr: Expr) -> Result<ArrayRef> {
        let schema = batch.schema();
        let compiled = crate::data::expr::compile(&expr, &schema)?;
        let value = compiled
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| self.df_err(e))?;
        Ok(value)
    }
}

/// The `q`-quantile of each row's list of numbers (null for an empty list).
fn quantiles(lists: &ArrayRef, q: f64, name: &str) -> Result<ArrayRef> {
    let lists = lists
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(|| Error::Internal(format!("{name}: the gathered values are not a list")))?;
    let values = cast(lists.values(), &DataType::Float64)
        .map_err(|e| Error::InvalidArgument(format!("{name} needs numbers: {e}")))?;
    let values = values
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| Error::Internal(format!("{name}: not a float column")))?;
    let offsets = lists.value_offsets();
    let out = Float64Array::from_iter((0..lists.len()).map(|r| {
        let (lo, hi) = (offsets[r] as usize, offsets[r + 1] as usize);
        let mut v: Vec<f64> = (lo..hi)
            .filter(|&i| values.is_valid(i))
            .map(|i| values.value(i))
            .collect();
        if lists.is_null(r) || v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let k = (v.len() - 1) as f64 * q;
        let (f, c) = (k.floor(), k.ceil());
        if f == c {
            return Some(v[k as usize]);
        }
        let x = v[f as usize] * (c - k) + v[c as usize] * (k - f);
        Some((x * 1e5).round() / 1e5)
    }));
    Ok(Arc::new(out))
}

impl fmt::Display for AggregateExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let aggs: Vec<String> = self.aggs.iter().map(|a| a.output_name()).collect();
        write!(
            f,
            "AggregateOp(by [{}]: {})",
            self.keys.join(", "),
            aggs.join(", ")
        )
    }
}

impl Exchange for AggregateExchange {
    fn partitions(&self, _: Option<u64>, _: usize, _: &DataContext, cpus: usize) -> usize {
        cpus.max(1)
    }

    fn pre_map(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        self.run(batches, self.partial_exprs()?)
    }

    fn partition(&self, batch: &RecordBatch, n: usize, _fragment: u64) -> Result<Vec<u32>> {
        hash_partition(batch, &self.keys, n)
    }

    fn reduce(&self, batches: Vec<RecordBatch>, _p: usize) -> Result<Vec<RecordBatch>> {
        let combined = self.run(batches, self.final_exprs())?;
        combined
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| self.finish(b))
            .collect()
    }
}

/// The columns `keys` of `batch`.
pub(crate) fn key_columns(batch: &RecordBatch, keys: &[String]) -> Result<Vec<ArrayRef>> {
    keys.iter()
        .map(|k| {
            batch.column_by_name(k).cloned().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "no group key column {k:?} in {:?}",
                    batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                ))
            })
        })
        .collect()
}

/// A partition in `0..n` for each row of `batch`, by the hash of its `keys`.
pub(crate) fn hash_partition(batch: &RecordBatch, keys: &[String], n: usize) -> Result<Vec<u32>> {
    let keys = key_columns(batch, keys)?;
    let mut hashes = vec![0u64; batch.num_rows()];
    create_hashes(&keys, &RandomState::with_seed(0), &mut hashes)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(hashes.iter().map(|h| (h % n as u64) as u32).collect())
}
