//! `MapBatchesOp`: a user function over batches, re-chunked to `batch_size` rows.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::data::logical::BatchFn;
use crate::data::physical::{OpCounters, RowOp, RowOpState};
use crate::error::{Error, Result};

/// Runs a user function.
pub(crate) struct MapBatchesOp {
    /// Name shown in plans and errors.
    name: String,
    /// The function.
    udf: Arc<BatchFn>,
    /// Rows per call.
    batch_size: Option<usize>,
    counters: OpCounters,
}

impl MapBatchesOp {
    pub(crate) fn new(name: String, udf: Arc<BatchFn>, batch_size: Option<usize>) -> Self {
        MapBatchesOp {
            name,
            udf,
            batch_size,
            counters: OpCounters::default(),
        }
    }
}

impl fmt::Display for MapBatchesOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.batch_size {
            Some(n) => write!(f, "MapBatchesOp({}, batch_size={n})", self.name),
            None => write!(f, "MapBatchesOp({})", self.name),
        }
    }
}

struct State<'a> {
    op: &'a MapBatchesOp,
    buffered: Vec<RecordBatch>,
    rows: usize,
    schema: Option<SchemaRef>,
}

impl State<'_> {
    fn call(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let result = (self.op.udf)(batch).map_err(|e| Error::InvalidData {
            location: format!("MapBatches({})", self.op.name),
            message: format!("the function failed: {e}"),
        })?;
        match &self.schema {
            Some(s) if result.schema() != *s => {
                return Err(Error::InvalidData {
                    location: format!("MapBatches({})", self.op.name),
                    message: format!(
                        "the function returned schema {:?} after returning {:?}",
                        result.schema(),
                        s
                    ),
                });
            }
            Some(_) => {}
            None => self.schema = Some(result.schema()),
        }
        out.push(result);
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        let schema = self.buffered[0].schema();
        let b = arrow::compute::concat_batches(&schema, &self.buffered)?;
        self.buffered.clear();
        self.rows = 0;
        self.call(b, out)
    }
}

impl RowOpState for State<'_> {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let Some(size) = self.op.batch_size else {
            return self.call(batch, out);
        };
        let mut offset = 0;
        while offset < batch.num_rows() {
            let n = (size - self.rows).min(batch.num_rows() - offset);
            self.buffered.push(batch.slice(offset, n));
            self.rows += n;
            offset += n;
            if self.rows == size {
                self.flush(out)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.flush(out)
    }
}

impl RowOp for MapBatchesOp {
    fn start(&self) -> Box<dyn RowOpState + '_> {
        Box::new(State {
            op: self,
            buffered: Vec::new(),
            rows: 0,
            schema: None,
        })
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}
