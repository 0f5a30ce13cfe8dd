//! `SortExchange`: a range-partitioned sort. Map tasks sample their keys; boundaries split
//! the key space into partitions of about a block each; each reducer sorts its partition
//! (arrow's lexicographic sort), so partition order is the global order.

use std::fmt;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take_record_batch};
use arrow::row::{OwnedRow, RowConverter, SortField};
use parking_lot::Mutex;

use crate::data::context::DataContext;
use crate::data::physical::exchange::{Exchange, concat};
use crate::error::{Error, Result};

/// Sorts by columns.
pub(crate) struct SortExchange {
    /// `(column, descending)`.
    keys: Vec<(String, bool)>,
    boundaries: Mutex<Vec<OwnedRow>>,
}

impl SortExchange {
    pub(crate) fn new(keys: Vec<(String, bool)>) -> Self {
        SortExchange {
            keys,
            boundaries: Mutex::new(Vec::new()),
        }
    }

    fn options(&self, desc: bool) -> SortOptions {
        SortOptions {
            descending: desc,
            nulls_first: desc,
        }
    }

    fn key_columns(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.keys
            .iter()
            .map(|(k, _)| {
                batch.column_by_name(k).cloned().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "sort key {k:?} is not a column of {:?}",
                        batch.schema()
                    ))
                })
            })
            .collect()
    }

    fn converter(&self, batch: &RecordBatch) -> Result<RowConverter> {
        let cols = self.key_columns(batch)?;
        let fields = cols
            .iter()
            .zip(&self.keys)
            .map(|(c, (_, d))| SortField::new_with_options(c.data_type().clone(), self.options(*d)))
            .collect();
        Ok(RowConverter::new(fields)?)
    }

    fn sort_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let cols: Vec<SortColumn> = self
            .key_columns(batch)?
            .into_iter()
            .zip(&self.keys)
            .map(|(values, (_, d))| SortColumn {
                values,
                options: Some(self.options(*d)),
            })
            .collect();
        let idx = lexsort_to_indices(&cols, None)?;
        Ok(take_record_batch(batch, &idx)?)
    }
}

impl fmt::Display for SortExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|(k, d)| format!("{k} {}", if *d { "DESC" } else { "ASC" }))
            .collect();
        write!(f, "SortOp({})", keys.join(", "))
    }
}

impl Exchange for SortExchange {
    fn partitions(
        &self,
        bytes: Option<u64>,
        _fragments: usize,
        ctx: &DataContext,
        _cpus: usize,
    ) -> usize {
        // A reducer holds its partition twice (input and sorted output): keep it well under
        // the store budget as well as near the block size.
        let budget = crate::object_store_stats()
            .map(|s| s.budget)
            .unwrap_or(u64::MAX);
        let per = ctx.target_max_block_size.min(budget / 8).max(1 << 20);
        bytes.map_or(1, |b| b.div_ceil(per) as usize).clamp(1, 4096)
    }

    fn needs_samples(&self) -> bool {
        true
    }

    fn sample(&self, batches: &[RecordBatch]) -> Result<Option<RecordBatch>> {
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        let all = concat(&first.schema(), batches)?;
        let n = all.num_rows();
        let k = n.min(256);
        if k == 0 {
            return Ok(None);
        }
        let idx = UInt32Array::from_iter_values((0..k).map(|i| (i * n / k) as u32));
        let keys = take_record_batch(&all, &idx)?;
        let cols = self.key_columns(&keys)?;
        let names: Vec<(String, ArrayRef)> =
            self.keys.iter().map(|(k, _)| k.clone()).zip(cols).collect();
        Ok(Some(RecordBatch::try_from_iter(names)?))
    }

    fn set_boundaries(&self, samples: Vec<RecordBatch>, n: usize) -> Result<()> {
        let Some(first) = samples.first() else {
            return Ok(());
        };
        let all = self.sort_batch(&concat(&first.schema(), &samples)?)?;
        let conv = self.converter(&all)?;
        let rows = conv.convert_columns(&self.key_columns(&all)?)?;
        let m = rows.num_rows();
        let bounds: Vec<OwnedRow> = (1..n).map(|i| rows.row(i * m / n).owned()).collect();
        *self.boundaries.lock() = bounds;
        Ok(())
    }

    fn partition(&self, batch: &RecordBatch, n: usize, _fragment: u64) -> Result<Vec<u32>> {
        let bounds = self.boundaries.lock();
        if n <= 1 || bounds.is_empty() {
            return Ok(vec![0; batch.num_rows()]);
        }
        let conv = self.converter(batch)?;
        let rows = conv.convert_columns(&self.key_columns(batch)?)?;
        Ok(rows
            .iter()
            .map(|r| bounds.partition_point(|b| b.row() <= r).min(n - 1) as u32)
            .collect())
    }

    fn reduce(&self, batches: Vec<RecordBatch>, _p: usize) -> Result<Vec<RecordBatch>> {
        let Some(first) = batches.first() else {
            return Ok(Vec::new());
        };
        let all = concat(&first.schema(), &batches)?;
        drop(batches);
        Ok(vec![self.sort_batch(&all)?])
    }
}
