//! The logical plan: one node per transformation; a closed enum the planner matches
//! exhaustively.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::logical_expr::Expr;

use crate::io::parquet::ParquetSource;

pub use crate::data::udf::BatchFn;
use crate::data::udf::{MapOptions, MapUdf};
use crate::{Block, ObjectRef};

/// Which transformation a [`LogicalPlan::MapBatches`] came from (shown in plans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// `map_batches`.
    Batches,
    /// `map` over rows.
    Rows,
    /// `flat_map` over rows.
    FlatMap,
}

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
        /// Read tasks, each one block (else chosen by size and CPUs).
        blocks: Option<u64>,
    },
    /// Batches held in memory.
    FromBatches {
        /// Their schema.
        schema: SchemaRef,
        /// The batches.
        batches: Arc<Vec<RecordBatch>>,
    },
    /// Blocks already in the object store (`materialize`).
    FromRefs {
        /// Their schema.
        schema: SchemaRef,
        /// The blocks and their row counts.
        blocks: Arc<Vec<(ObjectRef<Block>, u64)>>,
    },
    /// A user function over batches (`map_batches`, or `map` / `flat_map` over rows).
    MapBatches {
        /// Input.
        input: Arc<LogicalPlan>,
        /// Name shown in plans, stats and errors.
        name: String,
        /// The function.
        udf: MapUdf,
        /// Batch size, compute and resources.
        opts: MapOptions,
        /// What it came from.
        kind: MapKind,
    },
    /// A user function over each group of rows with equal keys (`groupby(..).map_groups`).
    MapGroups {
        /// Input.
        input: Arc<LogicalPlan>,
        /// Group keys.
        keys: Vec<String>,
        /// Name shown in plans, stats and errors.
        name: String,
        /// The function (gets one whole group).
        udf: Arc<BatchFn>,
    },
    /// The columns of two datasets side by side, row by row (`zip`).
    Zip {
        /// Left columns.
        left: Arc<LogicalPlan>,
        /// Right columns (renamed `<name>_1` where the left has the name).
        right: Arc<LogicalPlan>,
    },
    /// A hash join on key columns (`join`).
    Join {
        /// Left rows.
        left: Arc<LogicalPlan>,
        /// Right rows.
        right: Arc<LogicalPlan>,
        /// Keys and kind.
        spec: crate::data::JoinSpec,
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
        /// Values of the first key that split the rows into blocks (ascending, numeric;
        /// empty: boundaries sampled from the keys).
        boundaries: Vec<f64>,
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
        /// Inputs (same column names and types).
        inputs: Vec<Arc<LogicalPlan>>,
        /// Where the inputs differ in nullability only: the schema every input's blocks
        /// take (a column nullable where any input's is).
        schema: Option<SchemaRef>,
    },
}

impl LogicalPlan {
    /// Direct inputs.
    pub fn inputs(&self) -> Vec<&Arc<LogicalPlan>> {
        match self {
            LogicalPlan::ReadParquet { .. }
            | LogicalPlan::ReadText { .. }
            | LogicalPlan::Range { .. }
            | LogicalPlan::FromBatches { .. }
            | LogicalPlan::FromRefs { .. } => vec![],
            LogicalPlan::MapBatches { input, .. }
            | LogicalPlan::Filter { input, .. }
            | LogicalPlan::Project { input, .. }
            | LogicalPlan::Limit { input, .. }
            | LogicalPlan::Sort { input, .. }
            | LogicalPlan::Aggregate { input, .. }
            | LogicalPlan::Repartition { input, .. }
            | LogicalPlan::RandomShuffle { input, .. }
            | LogicalPlan::MapGroups { input, .. } => vec![input],
            LogicalPlan::Zip { left, right } | LogicalPlan::Join { left, right, .. } => {
                vec![left, right]
            }
            LogicalPlan::Union { inputs, .. } => inputs.iter().collect(),
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
            LogicalPlan::Range { n, blocks: None } => format!("Range: {n}"),
            LogicalPlan::Range { n, blocks: Some(b) } => format!("Range: {n} in {b} blocks"),
            LogicalPlan::FromBatches { batches, .. } => {
                format!(
                    "FromBatches: {} batches, {} rows",
                    batches.len(),
                    batches.iter().map(|b| b.num_rows()).sum::<usize>()
                )
            }
            LogicalPlan::FromRefs { blocks, .. } => format!(
                "FromRefs: {} blocks, {} rows",
                blocks.len(),
                blocks.iter().map(|b| b.1).sum::<u64>()
            ),
            LogicalPlan::MapBatches {
                name, opts, kind, ..
            } => match kind {
                MapKind::Batches => format!(
                    "MapBatches: {name}, batch_size={}{}",
                    opts.batch_size
                        .map_or("none".to_string(), |b| b.to_string()),
                    opts.describe()
                ),
                MapKind::Rows => format!("Map: {name}"),
                MapKind::FlatMap => format!("FlatMap: {name}"),
            },
            LogicalPlan::MapGroups { keys, name, .. } => {
                format!("MapGroups: {name} by [{}]", keys.join(", "))
            }
            LogicalPlan::Zip { .. } => "Zip".to_string(),
            LogicalPlan::Join { spec, .. } => format!(
                "Join: {} on [{}] = [{}]",
                spec.how,
                spec.left_on.join(", "),
                spec.right_on.join(", ")
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
            LogicalPlan::Union { inputs, .. } => format!("Union: {} inputs", inputs.len()),
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
