//! `RandomShuffleExchange`: every row to a random partition, then a random permutation within
//! each partition; deterministic for a seed.

use std::fmt;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;

use crate::data::context::DataContext;
use crate::data::physical::exchange::{Exchange, concat};
use crate::error::Result;

/// Shuffles rows.
pub(crate) struct RandomShuffleExchange {
    /// The seed.
    seed: u64,
}

impl RandomShuffleExchange {
    pub(crate) fn new(seed: u64) -> Self {
        RandomShuffleExchange { seed }
    }
}

/// SplitMix64: a small, good, seedable generator.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Shuffles `items` in place (Fisher-Yates), the same way for the same `state`.
pub(crate) fn shuffle<T>(items: &mut [T], mut state: u64) {
    for i in (1..items.len()).rev() {
        state = mix(state);
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

/// `seed`, or one from the clock.
pub(crate) fn seed_or_now(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}

impl fmt::Display for RandomShuffleExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RandomShuffleOp(seed={})", self.seed)
    }
}

impl Exchange for RandomShuffleExchange {
    fn partitions(&self, _: Option<u64>, fragments: usize, _: &DataContext, cpus: usize) -> usize {
        fragments.max(cpus).max(1)
    }

    fn partition(&self, batch: &RecordBatch, n: usize, fragment: u64) -> Result<Vec<u32>> {
        let base = mix(self.seed ^ mix(fragment.wrapping_add(1)));
        Ok((0..batch.num_rows() as u64)
            .map(|r| (mix(base ^ r) % n as u64) as u32)
            .collect())
    }

    fn reduce(&self, batches: Vec<RecordBatch>, p: usize) -> Result<Vec<RecordBatch>> {
        let Some(first) = batches.first() else {
            return Ok(Vec::new());
        };
        let all = concat(&first.schema(), &batches)?;
        let mut idx: Vec<u32> = (0..all.num_rows() as u32).collect();
        shuffle(&mut idx, mix(self.seed ^ 0xA5A5 ^ p as u64));
        Ok(vec![take_record_batch(&all, &UInt32Array::from(idx))?])
    }
}
