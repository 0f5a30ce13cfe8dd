//! `ReadParquetOp`: reads parquet row groups packed into fragments, with projection, row-group
//! pruning and a row limit pushed in.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::logical_expr::Expr;

use crate::data::physical::{OpCounters, SourceOp};
use crate::error::{Error, Result};
use crate::io::parquet::{ParquetSource, ReadFragment};

/// Reads parquet fragments.
pub(crate) struct ReadParquetOp {
    /// The files.
    source: Arc<ParquetSource>,
    /// Projected columns (`None`: all).
    columns: Option<Vec<String>>,
    /// The pushed predicate (for pruning; a `FilterOp` after this op applies it to rows).
    filter: Option<Expr>,
    /// Row limit per fragment.
    limit: Option<usize>,
    /// The fragments.
    fragments: Vec<ReadFragment>,
    /// Rows per batch.
    batch_rows: usize,
    io: tokio::runtime::Handle,
    counters: OpCounters,
}

impl ReadParquetOp {
    pub(crate) fn new(
        source: Arc<ParquetSource>,
        columns: Option<Vec<String>>,
        filter: Option<Expr>,
        limit: Option<usize>,
        target_bytes: u64,
        batch_rows: usize,
        io: tokio::runtime::Handle,
    ) -> Result<Self> {
        for n in columns.iter().flatten() {
            source.schema().index_of(n).map_err(|_| {
                Error::InvalidArgument(format!("no column {n:?} in the parquet files"))
            })?;
        }
        let fragments = source.plan(filter.as_ref(), target_bytes);
        Ok(ReadParquetOp {
            source,
            columns,
            filter,
            limit,
            fragments,
            batch_rows,
            io,
            counters: OpCounters::default(),
        })
    }
}

impl fmt::Display for ReadParquetOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ReadParquetOp(files={}, columns={}, prune={}, limit={})",
            self.source.files().len(),
            self.columns
                .as_ref()
                .map_or("*".to_string(), |c| format!("[{}]", c.join(", "))),
            self.filter
                .as_ref()
                .map_or("none".to_string(), |e| e.to_string()),
            self.limit.map_or("none".to_string(), |l| l.to_string()),
        )
    }
}

impl SourceOp for ReadParquetOp {
    fn num_fragments(&self) -> usize {
        self.fragments.len()
    }

    fn read(&self, i: usize, each: &mut dyn FnMut(RecordBatch) -> Result<bool>) -> Result<()> {
        let Some(frag) = self.fragments.get(i) else {
            return Ok(());
        };
        self.source.read(
            frag,
            self.columns.as_deref(),
            self.batch_rows,
            self.limit,
            &self.io,
            self.counters.counting(each),
        )
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}
