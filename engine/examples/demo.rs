//! `make demo`: the main job — `read_parquet → map_batches → write_parquet` — on the embedded
//! local node, on data it generates.
//!
//! 1. Generate 8 M rows (`id`, `value` uniform in [0, 1), `key` of 1,000 distinct values) and
//!    write them as parquet.
//! 2. Read them back, double `value` in a user function, keep `value > 0.5`, write parquet.
//! 3. Group the output by `key` (count, mean) and show the first groups.
//! 4. Check row counts and sums against a direct pass; print the per-operator stats.

use std::sync::Arc;
use std::time::Instant;

use volley::arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use volley::data::{self, Agg, col, lit};
use volley::{TaskResult, UserError};

const ROWS: u64 = 8_000_000;

/// Deterministic pseudo-random numbers (SplitMix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> TaskResult<&'a T> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| UserError::msg(format!("column {name:?} missing or of the wrong type")))
}

/// Adds `value` and `key` to a batch of ids.
fn generate(b: RecordBatch) -> TaskResult<RecordBatch> {
    let ids = column::<Int64Array>(&b, "id")?;
    let value = Float64Array::from_iter_values(
        ids.values()
            .iter()
            .map(|i| (mix(*i as u64) >> 11) as f64 / (1u64 << 53) as f64),
    );
    let key = StringArray::from_iter_values(
        ids.values()
            .iter()
            .map(|i| format!("key_{:04}", mix(*i as u64 ^ 0x5EED) % 1000)),
    );
    Ok(RecordBatch::try_from_iter([
        ("id", b.column(0).clone()),
        ("value", Arc::new(value) as _),
        ("key", Arc::new(key) as _),
    ])?)
}

/// The user function of the pipeline: `value * 2`.
fn double_value(b: RecordBatch) -> TaskResult<RecordBatch> {
    let v = column::<Float64Array>(&b, "value")?;
    let doubled = Float64Array::from_iter_values(v.values().iter().map(|x| x * 2.0));
    let mut cols = b.columns().to_vec();
    let i = b.schema().index_of("value")?;
    cols[i] = Arc::new(doubled);
    Ok(RecordBatch::try_new(b.schema(), cols)?)
}

/// The `value` column of each batch.
fn values(batches: &[RecordBatch]) -> impl Iterator<Item = Float64Array> + '_ {
    batches.iter().filter_map(|b| {
        b.column_by_name("value")?
            .as_any()
            .downcast_ref::<Float64Array>()
            .cloned()
    })
}

fn sum_values(batches: &[RecordBatch]) -> f64 {
    values(batches)
        .map(|a| a.values().iter().sum::<f64>())
        .sum()
}

fn main() -> volley::Result<()> {
    volley::init(volley::Config::default())?;
    let dir = std::env::temp_dir().join(format!("volley-demo-{}", std::process::id()));
    let input = dir.join("input").to_string_lossy().into_owned();
    let output = dir.join("output").to_string_lossy().into_owned();

    let t = Instant::now();
    let generated = data::range(ROWS)?
        .map_batches("generate", None, generate)
        .write_parquet(&input)?;
    println!(
        "generated {} rows into {} parquet files ({:.1} MiB) in {:.2} s",
        generated.rows(),
        generated.files.len(),
        generated.bytes() as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let pipeline = data::read_parquet(&[&input])?
        .map_batches("double_value", None, double_value)
        .filter(col("value").gt(lit(0.5)))?;
    let written = pipeline.write_parquet(&output)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read_parquet -> map_batches(double_value) -> filter(value > 0.5) -> write_parquet: {} rows in {} files ({:.1} MiB) in {:.2} s ({:.1} M rows/s)",
        written.rows(),
        written.files.len(),
        written.bytes() as f64 / (1 << 20) as f64,
        secs,
        ROWS as f64 / secs / 1e6
    );
    if let Some(stats) = pipeline.stats() {
        print!("{stats}");
    }

    let groups = data::read_parquet(&[&output])?
        .groupby(&["key"])
        .aggregate(&[Agg::count(), Agg::mean("value")])?
        .sort(&["key"], false)?;
    println!("first groups of the output by key:\n{}", groups.show(5)?);

    // Check against a direct pass over the generated input.
    let all = data::read_parquet(&[&input])?.take_all()?;
    let expected: Vec<f64> = values(&all)
        .flat_map(|a| {
            a.values()
                .iter()
                .map(|v| v * 2.0)
                .filter(|v| *v > 0.5)
                .collect::<Vec<_>>()
        })
        .collect();
    let out = data::read_parquet(&[&output])?.take_all()?;
    let rows: usize = out.iter().map(|b| b.num_rows()).sum();
    assert_eq!(
        rows,
        expected.len(),
        "output rows match a direct computation"
    );
    let (a, b) = (sum_values(&out), expected.iter().sum::<f64>());
    assert!((a - b).abs() <= 1e-6 * b, "output sum {a} matches {b}");
    println!(
        "check: {rows} rows and sum(value) = {a:.3} match a direct computation over the input"
    );
    let store = volley::object_store_stats()?;
    println!(
        "object store: budget {} MiB, peak resident {} MiB, spilled {} objects",
        store.budget >> 20,
        store.peak_resident_bytes >> 20,
        store.spilled_objects_total
    );
    drop((all, out));
    volley::shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
