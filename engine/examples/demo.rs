//! `make demo`: a fan-out / fan-in job on Volley Core.
//!
//! 1. 16 tasks each generate an Arrow block of 1M rows (`id`, `value`, `key` with 1,000
//!    distinct keys) into the object store — more than the store's 256 MiB budget, so blocks
//!    spill to disk and are restored on access.
//! 2. One task per block computes per-key partial aggregates (count, sum of `value`).
//! 3. Four aggregator actors, each owning a quarter of the keys, merge the partials.
//! 4. The driver collects the result, checks it against the blocks themselves, and prints
//!    the top keys as a table, plus timings and the store's spill accounting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use volley::arrow::array::{
    Array, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use volley::arrow::util::pretty::pretty_format_batches;
use volley::{Block, ObjectRef, TaskResult, UserError};

const BLOCKS: u64 = 16;
const ROWS: u64 = 1_000_000;
const AGGREGATORS: usize = 4;

/// Deterministic pseudo-random numbers (SplitMix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn generate(seed: u64) -> TaskResult<Block> {
    let start = seed * ROWS;
    let ids = Int64Array::from_iter_values((start..start + ROWS).map(|i| i as i64));
    let values = Float64Array::from_iter_values(
        (start..start + ROWS).map(|i| (mix(i) >> 11) as f64 / (1u64 << 53) as f64),
    );
    let keys = StringArray::from_iter_values(
        (start..start + ROWS).map(|i| format!("key-{:03}", mix(i ^ 0xABCD) % 1000)),
    );
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(ids) as _),
        ("value", Arc::new(values) as _),
        ("key", Arc::new(keys) as _),
    ])?;
    Ok(Block::from(batch))
}

/// Per-key (count, sum) of one block.
type Partial = Vec<(String, u64, f64)>;

fn partial_aggregate(block: Block) -> TaskResult<Partial> {
    let mut acc: HashMap<&str, (u64, f64)> = HashMap::new();
    for batch in block.batches() {
        let keys = column::<StringArray>(batch, "key")?;
        let values = column::<Float64Array>(batch, "value")?;
        for i in 0..batch.num_rows() {
            let e = acc.entry(keys.value(i)).or_default();
            e.0 += 1;
            e.1 += values.value(i);
        }
    }
    Ok(acc
        .into_iter()
        .map(|(k, (c, s))| (k.to_string(), c, s))
        .collect())
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> TaskResult<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| UserError::msg(format!("column {name:?} missing or of the wrong type")))
}

fn owner(key: &str) -> usize {
    key.bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % AGGREGATORS
}

#[derive(Default)]
struct Aggregator {
    totals: HashMap<String, (u64, f64)>,
}

fn main() -> volley::Result<()> {
    let mut config = volley::Config::default();
    config.object_store_memory = Some(256 << 20);
    volley::init(config)?;
    let t0 = Instant::now();

    let generator = volley::task(generate).name("generate");
    let blocks: Vec<ObjectRef<Block>> = (0..BLOCKS)
        .map(|s| generator.remote((s,)))
        .collect::<Result<_, _>>()?;

    let part = volley::task(partial_aggregate).name("partial_aggregate");
    let partials: Vec<ObjectRef<Partial>> = blocks
        .iter()
        .map(|b| part.remote((b,)))
        .collect::<Result<_, _>>()?;

    let aggregators: Vec<_> = (0..AGGREGATORS)
        .map(|_| volley::actor(Aggregator::default).spawn())
        .collect::<Result<_, _>>()?;
    let mut merges = Vec::new();
    for p in &partials {
        for (a, agg) in aggregators.iter().enumerate() {
            let p = p.clone();
            merges.push(agg.call(move |s: &mut Aggregator| {
                let partial: Partial = volley::get(&p)?;
                for (k, c, sum) in partial {
                    if owner(&k) == a {
                        let e = s.totals.entry(k).or_default();
                        e.0 += c;
                        e.1 += sum;
                    }
                }
                Ok(())
            })?);
        }
    }
    volley::get_all(&merges, None)?;
    let mut result: Vec<(String, u64, f64)> = Vec::new();
    for agg in &aggregators {
        let part = volley::get(&agg.call(|s: &mut Aggregator| {
            Ok(s.totals
                .iter()
                .map(|(k, (c, v))| (k.clone(), *c, *v))
                .collect::<Vec<_>>())
        })?)?;
        result.extend(part);
    }
    let elapsed = t0.elapsed();

    // Check: every row counted once, and the sum matches a direct pass over the blocks.
    let rows: u64 = result.iter().map(|r| r.1).sum();
    let total: f64 = result.iter().map(|r| r.2).sum();
    let mut direct = 0.0;
    for b in &blocks {
        let block = volley::get(b)?;
        for batch in block.batches() {
            let v = column::<Float64Array>(batch, "value")
                .map_err(|e| volley::Error::Internal(e.to_string()))?;
            direct += volley::arrow::compute::sum(v).unwrap_or(0.0);
        }
    }
    assert_eq!(rows, BLOCKS * ROWS, "every row is counted exactly once");
    assert!(
        (total - direct).abs() < 1e-6 * direct,
        "sums agree: {total} vs {direct}"
    );

    result.sort_by(|a, b| b.2.total_cmp(&a.2));
    let top = &result[..10.min(result.len())];
    let table = RecordBatch::try_from_iter([
        (
            "key",
            Arc::new(StringArray::from_iter_values(
                top.iter().map(|r| r.0.clone()),
            )) as _,
        ),
        (
            "rows",
            Arc::new(UInt64Array::from_iter_values(top.iter().map(|r| r.1))) as _,
        ),
        (
            "sum(value)",
            Arc::new(Float64Array::from_iter_values(top.iter().map(|r| r.2))) as _,
        ),
    ])?;
    println!("Top 10 of {} keys by sum(value):", result.len());
    println!("{}", pretty_format_batches(&[table])?);
    let stats = volley::object_store_stats()?;
    println!(
        "{rows} rows in {BLOCKS} blocks -> {} partial tasks -> {AGGREGATORS} aggregator actors in {:.2} s ({:.1} M rows/s)",
        partials.len(),
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "object store: budget {} MiB, peak resident {} MiB, spilled {} objects ({} MiB), restored {} objects",
        stats.budget >> 20,
        stats.peak_resident_bytes >> 20,
        stats.spilled_objects_total,
        stats.spilled_bytes_total >> 20,
        stats.restored_objects_total
    );
    println!("check: row count and sum match a direct pass over the blocks");
    drop((blocks, partials, aggregators, merges));
    volley::shutdown();
    Ok(())
}
