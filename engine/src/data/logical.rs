//! The logical plan: one node per transformation; a closed enum the planner matches
//! exhaustively.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::logical_expr::Expr;

use crate::error::TaskResult;
use crate::io::parquet::ParquetSource;

/// A user function over batches (`map_batches`).
pub type BatchFn = dyn Fn(RecordBatch) -> TaskResult<RecordBatch> + Send + Sync;

/// A logical operator and its inputs.
#[derive(Clone)]
pub enum LogicalPlan {
    /// Parquet files, with what was pushed into the read.
    ReadParquet {
        /// The files and their footers.
        source: Arc<ParquetSource>,
        /// Columns to read (`None`: all).
        columns: Option<Vec<String>>,
        /// Predicate pushed into the read (row groups pruned by statistics, rows filtered).
        filter: Option<Expr>,
        /// At most this many rows are needed.
        limit: Option<usize>,
    },
    /// CSV or JSON files.
    ReadText {
        /// The files and their schema.
        source: Arc<crate::io::text::TextSource>,
    },
    /// Integers `0..n` in column `id`.
    Range {
        /// How many.
        n: u64,
    },
    /// Batches held in memory.
    FromBatches {
        /// Their schema.
        schema: SchemaRef,
        /// The batches.
        batches: Arc<Vec<RecordBatch>>,
    },
    /// A user function over batches of `batch_size` rows.
    MapBatches {
        /// Input.
        input: Arc<LogicalPlan>,
        /// Name shown in plans, stats and errors.
        name: String,
        /// The function.
        udf: Arc<BatchFn>,
        /// Rows per call (`None`: as the batches come).
        batch_size: Option<usize>,
    },
    /// Rows where a predicate holds.
    Filter {
        /// Input.
        input: Arc<LogicalPlan>,
        /// The predicate.
        predicate: Expr,
    },
    /// Columns computed from expressions (select, drop, rename, with_column).
    Project {
        /// Input.
        input: Arc<LogicalPlan>,
        /// `(expression, output name)`.
        columns: Vec<(Expr, String)>,
    },
    /// The first `n` rows.
    Limit {
        /// Input.
        input: Arc<LogicalPlan>,
        /// Rows.
        n: usize,
    },
    /// Rows sorted by columns (`(column, descending)`).
    Sort {
        /// Input.
        input: Arc<LogicalPlan>,
        /// Keys.
        keys: Vec<(String, bool)>,
    },
    /// Groups by key columns, one row per group with the aggregates.
    Aggregate {
        /// Input.
        input: Arc<LogicalPlan>,
        /// Group keys.
        keys: Vec<String>,
        /// Aggregates.
        aggs: Vec<crate::data::Agg>,
    },
    /// The rows in `n` blocks of nearly equal size.
    Repartition {
        /// Input.
        input: Arc<LogicalPlan>,
        /// Blocks.
        n: usize,
    },
    /// The rows in a random order (deterministic for a seed).
    RandomShuffle {
        /// Input.
        input: Arc<LogicalPlan>,
        /// Seed.
        seed: u64,
    },
    /// Inputs one after another.
    Union {
        /// Inputs (same schema).
        inputs: Vec<Arc<LogicalPlan>>,
    },
}

impl LogicalPlan {
    /// Direct inputs.
    pub fn inputs(&self) -> Vec<&Arc<LogicalPlan>> {
        match self {
            LogicalPlan::ReadParquet { .. }
            | LogicalPlan::ReadText { .. }
            | LogicalPlan::Range { .. }
            | LogicalPlan::FromBatches { .. } => vec![],
            LogicalPlan::MapBatches { input, .. }
            | LogicalPlan::Filter { input, .. }
            | LogicalPlan::Project { input, .. }
            | LogicalPlan::Limit { input, .. }
            | LogicalPlan::Sort { input, .. }
            | LogicalPlan::Aggregate { input, .. }
            | LogicalPlan::Repartition { input, .. }
            | LogicalPlan::RandomShuffle { input, .. } => vec![input],
            LogicalPlan::Union { inputs } => inputs.iter().collect(),
        }
    }

    fn line(&self) -> String {
        match self {
            LogicalPlan::ReadParquet {
                source,
                columns,
                filter,
                limit,
            } => format!(
                "ReadParquet: {} files, {} rows, columns={}, filter={}, limit={}",
                source.files().len(),
                source.num_rows(),
                columns
                    .as_ref()
                    .map_or("*".to_string(), |c| format!("[{}]", c.join(", "))),
                filter
                    .as_ref()
                    .map_or("none".to_string(), |f| f.to_string()),
                limit.map_or("none".to_string(), |l| l.to_string())
            ),
            LogicalPlan::ReadText { source } => {
                format!("Read{:?}: {} files", source.format(), source.num_files())
            }
            LogicalPlan::Range { n } => format!("Range: {n}"),
            LogicalPlan::FromBatches { batches, .. } => {
                format!(
                    "FromBatches: {} batches, {} rows",
                    batches.len(),
                    batches.iter().map(|b| b.num_rows()).sum::<usize>()
                )
            }
            LogicalPlan::MapBatches {
                name, batch_size, ..
            } => format!(
                "MapBatches: {name}, batch_size={}",
                batch_size.map_or("none".to_string(), |b| b.to_string())
            ),
            LogicalPlan::Filter { predicate, .. } => format!("Filter: {predicate}"),
            LogicalPlan::Project { columns, .. } => {
                format!("Project: {}", projection_text(columns))
            }
            LogicalPlan::Limit { n, .. } => format!("Limit: {n}"),
            LogicalPlan::Sort { keys, .. } => {
                let k: Vec<String> = keys
                    .iter()
                    .map(|(k, d)| format!("{k} {}", if *d { "DESC" } else { "ASC" }))
                    .collect();
                format!("Sort: {}", k.join(", "))
            }
            LogicalPlan::Aggregate { keys, aggs, .. } => {
                let a: Vec<String> = aggs.iter().map(|a| a.output_name()).collect();
                format!("Aggregate: by [{}]: {}", keys.join(", "), a.join(", "))
            }
            LogicalPlan::Repartition { n, .. } => format!("Repartition: {n}"),
            LogicalPlan::RandomShuffle { seed, .. } => format!("RandomShuffle: seed={seed}"),
            LogicalPlan::Union { inputs } => format!("Union: {} inputs", inputs.len()),
        }
    }

    fn fmt_indent(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        writeln!(f, "{}{}", "  ".repeat(depth), self.line())?;
        for i in self.inputs() {
            i.fmt_indent(f, depth + 1)?;
        }
        Ok(())
    }
}

/// `a, b * 2 AS c`: a projection's columns as text.
pub(crate) fn projection_text(columns: &[(Expr, String)]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|(e, n)| {
            if e.to_string() == *n {
                n.clone()
            } else {
                format!("{e} AS {n}")
            }
        })
        .collect();
    cols.join(", ")
}

impl fmt::Display for LogicalPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_indent(f, 0)
    }
}

impl fmt::Debug for LogicalPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
