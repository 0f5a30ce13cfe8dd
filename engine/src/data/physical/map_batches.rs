//! `MapBatchesOp`: a user function over batches, re-chunked to `batch_size` rows; run in the
//! pipeline's task, sent in groups to a function in another process (one round trip per
//! group, not per batch: many small batches cost little more than a few large ones), or sent
//! to an actor pool.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::data::physical::actor_pool::ActorPool;
use crate::data::physical::{OpCounters, RowOp, RowOpState, TaskDemand};
use crate::data::udf::{BatchFn, BatchesFn, Compute, MapOptions, MapUdf};
use crate::error::{Error, Result};

/// A group of batches sent in one call is flushed once it holds this many rows ...
const GROUP_ROWS: usize = 64 * 1024;
/// ... or this many bytes (the memory it holds is bounded by these, not by the input).
const GROUP_BYTES: usize = 8 << 20;

enum Runner {
    Inline(Arc<BatchFn>),
    Grouped(Arc<BatchesFn>),
    Pool(ActorPool),
}

/// Runs a user function.
pub(crate) struct MapBatchesOp {
    /// Name shown in plans and errors.
    name: String,
    /// The function, or the actors that run it.
    runner: Runner,
    /// Rows per call.
    batch_size: Option<usize>,
    /// What the pipeline's tasks need (task compute with resources).
    demand: Option<TaskDemand>,
    /// Most tasks running it at once.
    max_tasks: Option<usize>,
    counters: OpCounters,
}

impl MapBatchesOp {
    pub(crate) fn new(name: String, udf: &MapUdf, opts: &MapOptions) -> Self {
        let demand = TaskDemand {
            num_cpus: opts.num_cpus.unwrap_or(1.0),
            num_gpus: opts.num_gpus,
            resources: opts.resources.clone(),
        };
        let (runner, demand) = match (udf, opts.compute) {
            (MapUdf::Actor(factory), compute) => {
                let (min, max) = match compute {
                    Compute::Actors { min_size, max_size } => (min_size, max_size),
                    Compute::Tasks => (1, 1),
                };
                let pool = ActorPool::new(name.clone(), factory.clone(), min, max, demand);
                // The pipeline's tasks only feed the actors, which hold their own CPUs: a
                // pool as large as the cluster must not starve the tasks that feed it.
                let feed = TaskDemand {
                    num_cpus: 0.0,
                    num_gpus: 0.0,
                    resources: Vec::new(),
                };
                (Runner::Pool(pool), Some(feed))
            }
            (MapUdf::Fn(f), _) => (
                Runner::Inline(f.clone()),
                (!opts.default_resources()).then_some(demand),
            ),
            (MapUdf::Grouped(f), _) => (
                Runner::Grouped(f.clone()),
                (!opts.default_resources()).then_some(demand),
            ),
        };
        MapBatchesOp {
            name,
            runner,
            batch_size: opts.batch_size,
            demand,
            max_tasks: opts.max_tasks,
            counters: OpCounters::default(),
        }
    }

    /// Actors its pool started (0 for task compute).
    pub(crate) fn pool_size(&self) -> usize {
        match &self.runner {
            Runner::Pool(p) => p.size(),
            Runner::Inline(_) | Runner::Grouped(_) => 0,
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
    /// Slices of the batch being cut to `batch_size` rows.
    buffered: Vec<RecordBatch>,
    rows: usize,
    /// Whole batches waiting for a grouped call, with their rows and bytes.
    group: Vec<RecordBatch>,
    group_rows: usize,
    group_bytes: usize,
    schema: Option<SchemaRef>,
}

/// Bytes a batch (perhaps a slice) holds.
fn slice_bytes(b: &RecordBatch) -> usize {
    b.columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
        .sum()
}

impl State<'_> {
    fn udf_failed(&self, e: crate::error::UserError) -> Error {
        super::udf_failed(
            format!("MapBatches({})", self.op.name),
            e.message().to_string(),
            e.payload().cloned(),
        )
    }

    /// One batch for the function: called now, or queued for a grouped call.
    fn call(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let result = match &self.op.runner {
            Runner::Inline(f) => f(batch).map_err(|e| self.udf_failed(e))?,
            Runner::Pool(pool) => pool.call(batch)?,
            // An empty batch is not a call (the chunks of the group's table would not keep it).
            Runner::Grouped(_) if batch.num_rows() == 0 => return Ok(()),
            Runner::Grouped(_) => {
                // A group is one table: batches of another schema start the next.
                if self
                    .group
                    .first()
                    .is_some_and(|g| g.schema() != batch.schema())
                {
                    self.call_group(out)?;
                }
                self.group_rows += batch.num_rows();
                self.group_bytes += slice_bytes(&batch);
                self.group.push(batch);
                if self.group_rows >= GROUP_ROWS || self.group_bytes >= GROUP_BYTES {
                    self.call_group(out)?;
                }
                return Ok(());
            }
        };
        self.output(result, out)
    }

    /// The queued batches in one call.
    fn call_group(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        let Runner::Grouped(f) = &self.op.runner else {
            return Ok(());
        };
        if self.group.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.group);
        (self.group_rows, self.group_bytes) = (0, 0);
        let result = f(group).map_err(|e| self.udf_failed(e))?;
        self.output(result, out)
    }

    /// Checks a result's schema against the earlier ones and outputs it.
    fn output(&mut self, result: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        // A row function that produced no rows has no schema to check.
        if result.num_rows() == 0 && result.num_columns() == 0 {
            return Ok(());
        }
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
        self.flush(out)?;
        self.call_group(out)
    }
}

impl RowOp for MapBatchesOp {
    fn start(&self) -> Box<dyn RowOpState + '_> {
        Box::new(State {
            op: self,
            buffered: Vec::new(),
            rows: 0,
            group: Vec::new(),
            group_rows: 0,
            group_bytes: 0,
            schema: None,
        })
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }

    fn demand(&self) -> Option<&TaskDemand> {
        self.demand.as_ref()
    }

    fn max_tasks(&self) -> Option<usize> {
        self.max_tasks
    }

    fn describe_state(&self) -> Option<String> {
        match &self.runner {
            Runner::Pool(_) => Some(format!("{} actors", self.pool_size())),
            Runner::Inline(_) | Runner::Grouped(_) => None,
        }
    }
}
