//! `MapGroupsExchange`: `groupby(keys).map_groups(f)` as a hash-partitioned exchange. Rows
//! with equal keys meet in one reducer, which sorts its partition by the keys and calls the
//! user's function once per group (a whole group in one batch).

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};

use crate::data::context::DataContext;
use crate::data::physical::aggregate::{hash_partition, key_columns};
use crate::data::physical::exchange::{Exchange, concat};
use crate::data::udf::BatchFn;
use crate::error::{Error, Result};

/// Calls a function per group.
pub(crate) struct MapGroupsExchange {
    keys: Vec<String>,
    name: String,
    udf: Arc<BatchFn>,
}

impl MapGroupsExchange {
    pub(crate) fn new(keys: Vec<String>, name: String, udf: Arc<BatchFn>) -> Self {
        MapGroupsExchange { keys, name, udf }
    }

    fn fail(&self, message: String) -> Error {
        Error::InvalidData {
            location: format!("MapGroups({})", self.name),
            message,
        }
    }
}

impl fmt::Display for MapGroupsExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MapGroupsOp({} by [{}])",
            self.name,
            self.keys.join(", ")
        )
    }
}

impl Exchange for MapGroupsExchange {
    fn partitions(&self, _: Option<u64>, _: usize, _: &DataContext, cpus: usize) -> usize {
        cpus.max(1)
    }

    fn partition(&self, batch: &RecordBatch, n: usize, _fragment: u64) -> Result<Vec<u32>> {
        hash_partition(batch, &self.keys, n)
    }

    fn reduce(&self, batches: Vec<RecordBatch>, _p: usize) -> Result<Vec<RecordBatch>> {
        let Some(first) = batches.first() else {
            return Ok(Vec::new());
        };
        let all = concat(&first.schema(), &batches)?;
        drop(batches);
        let keys = key_columns(&all, &self.keys)?;
        let sort: Vec<SortColumn> = keys
            .iter()
            .map(|k| SortColumn {
                values: k.clone(),
                options: None,
            })
            .collect();
        let sorted = take_record_batch(&all, &lexsort_to_indices(&sort, None)?)?;
        drop(all);
        let groups = arrow::compute::partition(&key_columns(&sorted, &self.keys)?)?;
        let mut out: Vec<RecordBatch> = Vec::new();
        for range in groups.ranges() {
            let group = sorted.slice(range.start, range.end - range.start);
            let result = (self.udf)(group).map_err(|e| {
                super::udf_failed(
                    format!("MapGroups({})", self.name),
                    e.message().to_string(),
                    e.payload().cloned(),
                )
            })?;
            if let Some(prev) = out.first()
                && prev.schema() != result.schema()
            {
                return Err(self.fail(format!(
                    "the function returned schema {:?} after returning {:?}",
                    result.schema(),
                    prev.schema()
                )));
            }
            if result.num_rows() > 0 {
                out.push(result);
            }
        }
        Ok(out)
    }
}
