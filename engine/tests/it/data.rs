//! Volley Data against arrow/DataFusion computed directly on the same generated data.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use volley::arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use volley::arrow::compute::concat_batches;
use volley::data::{self, DataContext, col, lit};
use volley::parquet::arrow::ArrowWriter;
use volley::parquet::file::properties::WriterProperties;
use volley::{Error, FailureCause};

use crate::{start, start_with};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("volley-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn str(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub(crate) fn batch(start: i64, rows: i64) -> RecordBatch {
    let ids = Int64Array::from_iter_values(start..start + rows);
    let values = Float64Array::from_iter_values(
        (start..start + rows).map(|i| (mix(i as u64) >> 11) as f64 / (1u64 << 53) as f64),
    );
    let keys = StringArray::from_iter_values(
        (start..start + rows).map(|i| format!("k{:03}", mix(i as u64 ^ 7) % 100)),
    );
    RecordBatch::try_from_iter([
        ("id", Arc::new(ids) as _),
        ("value", Arc::new(values) as _),
        ("key", Arc::new(keys) as _),
    ])
    .unwrap()
}

/// `files` parquet files of `rows` rows each, in row groups of `rg_rows`.
fn write_files(dir: &Path, files: i64, rows: i64, rg_rows: usize) -> Vec<RecordBatch> {
    let mut all = Vec::new();
    for f in 0..files {
        let b = batch(f * rows, rows);
        let file = std::fs::File::create(dir.join(format!("f{f:03}.parquet"))).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(rg_rows))
            .build();
        let mut w = ArrowWriter::try_new(file, b.schema(), Some(props)).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
        all.push(b);
    }
    all
}

pub(crate) fn concat(batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(&batches[0].schema(), batches).unwrap()
}

pub(crate) fn f64s(b: &RecordBatch, name: &str) -> Vec<f64> {
    b.column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

pub(crate) fn i64s(b: &RecordBatch, name: &str) -> Vec<i64> {
    b.column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

#[test]
fn read_parquet_returns_every_row_and_counts_from_footers() {
    let _rt = start();
    let dir = TempDir::new("read");
    let expected = concat(&write_files(dir.path(), 5, 20_000, 5_000));
    let ds = data::read_parquet(&[dir.str()]).unwrap();
    assert_eq!(ds.count().unwrap(), 100_000);
    let bytes_for_count = ds.bytes_read();
    let got = concat(&ds.take_all().unwrap());
    assert_eq!(got, expected);
    assert!(
        ds.bytes_read() > bytes_for_count,
        "count must not read data pages"
    );
    // A glob and a list name the same files.
    let glob = data::read_parquet(&[format!("{}/f00*.parquet", dir.str())]).unwrap();
    assert_eq!(glob.count().unwrap(), 100_000);
    let list = data::read_parquet(&[
        format!("{}/f000.parquet", dir.str()),
        format!("file://{}/f001.parquet", dir.str()),
    ])
    .unwrap();
    assert_eq!(
        concat(&list.take_all().unwrap()),
        concat(&[batch(0, 20_000), batch(20_000, 20_000)])
    );
}

#[test]
fn map_filter_write_matches_a_direct_computation() {
    let _rt = start();
    let dir = TempDir::new("mfw");
    let out = TempDir::new("mfw-out");
    let input = concat(&write_files(dir.path(), 4, 25_000, 10_000));
    let ds = data::read_parquet(&[dir.str()])
        .unwrap()
        .map_batches("double", None, |b| {
            let v = b
                .column_by_name("value")
                .unwrap()
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone();
            let doubled =
                volley::arrow::compute::kernels::numeric::mul(&v, &Float64Array::new_scalar(2.0))?;
            let mut cols = b.columns().to_vec();
            cols[1] = doubled;
            Ok(RecordBatch::try_new(b.schema(), cols)?)
        })
        .filter(col("value").gt(lit(0.5)))
        .unwrap();
    let written = ds.write_parquet(&out.str()).unwrap();
    let direct: Vec<f64> = f64s(&input, "value")
        .iter()
        .map(|v| v * 2.0)
        .filter(|v| *v > 0.5)
        .collect();
    assert_eq!(written.rows(), direct.len() as u64);
    assert!(
        written
            .files
            .iter()
            .all(|f| f.path.ends_with(".parquet") && f.path.contains("/part-"))
    );
    let back = concat(
        &data::read_parquet(&[out.str()])
            .unwrap()
            .take_all()
            .unwrap(),
    );
    assert_eq!(back.num_rows(), direct.len());
    let (a, b): (f64, f64) = (f64s(&back, "value").iter().sum(), direct.iter().sum());
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    // Names are deterministic: a second run writes the same names.
    let out2 = TempDir::new("mfw-out2");
    let again = ds.write_parquet(&out2.str()).unwrap();
    let names = |w: &data::WriteResult| {
        w.files
            .iter()
            .map(|f| f.path.rsplit('/').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&written), names(&again));
    assert!(
        ds.stats()
            .unwrap()
            .to_string()
            .contains("MapBatches(double)")
    );
}

#[test]
fn target_file_size_splits_output_files() {
    let _rt = start();
    let out = TempDir::new("split-out");
    let ds = data::range(400_000).unwrap().with_context(DataContext {
        target_file_size: 256 << 10,
        target_max_block_size: 64 << 20,
        ..DataContext::default()
    });
    let w = ds.write_parquet(&out.str()).unwrap();
    assert_eq!(w.rows(), 400_000);
    assert!(w.files.len() >= 4, "{} files", w.files.len());
    // Every file but each task's last reaches the target; none is far over it.
    for f in &w.files {
        assert!(f.bytes <= (256 << 10) * 2, "{f:?}");
    }
    let on_disk: u64 = w
        .files
        .iter()
        .map(|f| std::fs::metadata(&f.path).unwrap().len())
        .sum();
    assert_eq!(on_disk, w.bytes());
}

/// Rows of incompressible 64-character strings (about 20 MB for 300,000 rows).
pub(crate) fn noise(rows: i64) -> RecordBatch {
    let ids = Int64Array::from_iter_values(0..rows);
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let text = StringArray::from_iter_values((0..rows).map(|i| {
        (0..64u64)
            .map(|j| alphabet[(mix(i as u64 * 64 + j) % 62) as usize] as char)
            .collect::<String>()
    }));
    RecordBatch::try_from_iter([("id", Arc::new(ids) as _), ("text", Arc::new(text) as _)]).unwrap()
}

/// A file is written while it is produced, in parts; one larger than a part is whole on
/// disk, with no staging file left beside it, and its row groups are bounded in bytes.
#[test]
fn files_larger_than_an_upload_part_are_written_whole() {
    let _rt = start();
    let b = noise(300_000);
    let ds = data::from_batches(vec![b.clone()]).unwrap();
    for (format, out) in [
        ("parquet", TempDir::new("big-pq")),
        ("csv", TempDir::new("big-csv")),
    ] {
        let w = match format {
            "parquet" => ds.write_parquet(&out.str()),
            _ => ds.write_csv(&out.str()),
        }
        .unwrap();
        assert_eq!(w.rows(), 300_000);
        assert_eq!(w.files.len(), 1, "{:?}", w.files);
        assert!(w.bytes() > 16 << 20, "{format}: {} bytes", w.bytes());
        let names: Vec<String> = std::fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![format!("part-00000-0000.{format}")], "{format}");
        assert_eq!(
            std::fs::metadata(&w.files[0].path).unwrap().len(),
            w.bytes()
        );
        let back = concat(
            &match format {
                "parquet" => data::read_parquet(&[out.str()]),
                _ => data::read_csv(&[out.str()]),
            }
            .unwrap()
            .take_all()
            .unwrap(),
        );
        assert_eq!(back.column(1).as_ref(), b.column(1).as_ref(), "{format}");
    }
}

/// A write that fails midway, with a file partly on disk, names the operator and leaves no
/// partial or staging file: what is in the directory reads back whole.
#[test]
fn a_write_that_fails_midway_leaves_no_partial_file() {
    let _rt = start();
    // One input file, so one task reads, maps and writes its batches to one output file.
    let input = TempDir::new("failed-write-in");
    let b = noise(600_000);
    let f = std::fs::File::create(input.path().join("in.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(f, b.schema(), None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let ds = data::read_parquet(&[input.str()]).unwrap();
    let out = TempDir::new("failed-write");
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let err = ds
        .map_batches("fourth", None, move |b| {
            // Three batches (about 14 MiB, more than one write chunk) reach the file first.
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 3 {
                return Err(volley::UserError::msg("fourth batch refused"));
            }
            Ok(b)
        })
        .write_parquet(&out.str())
        .unwrap_err();
    assert!(err.to_string().contains("fourth batch refused"), "{err}");
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "staging file left: {name}");
        let path = out.path().join(&name).to_string_lossy().into_owned();
        data::read_parquet(&[path]).unwrap().take_all().unwrap();
    }
}

#[test]
fn projections_renames_and_new_columns() {
    let _rt = start();
    let b = batch(0, 1000);
    let ds = data::from_batches(vec![b.slice(0, 400), b.slice(400, 600)]).unwrap();
    let sel = concat(
        &ds.select_columns(&["key", "id"])
            .unwrap()
            .take_all()
            .unwrap(),
    );
    assert_eq!(
        sel.schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        vec!["key", "id"]
    );
    let dropped = ds.drop_columns(&["key"]).unwrap().schema().unwrap();
    assert_eq!(dropped.fields().len(), 2);
    let renamed = concat(
        &ds.rename_columns(&[("value", "v")])
            .unwrap()
            .take_all()
            .unwrap(),
    );
    assert_eq!(f64s(&renamed, "v"), f64s(&b, "value"));
    let plus = concat(
        &ds.with_column("id2", col("id") * lit(2i64))
            .unwrap()
            .take_all()
            .unwrap(),
    );
    assert_eq!(
        i64s(&plus, "id2"),
        (0..1000).map(|i| i * 2).collect::<Vec<_>>()
    );
    match ds.select_columns(&["nope"]) {
        Err(Error::InvalidArgument(m)) => assert!(
            m.contains("\"nope\"") && m.contains("[id, value, key]"),
            "{m}"
        ),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn sql_predicates_equal_expression_predicates() {
    let _rt = start();
    let b = batch(0, 5000);
    let ds = data::from_batches(vec![b.clone()]).unwrap();
    let a = ds
        .filter_sql("value > 0.25 AND key = 'k042'")
        .unwrap()
        .count()
        .unwrap();
    let e = ds
        .filter(col("value").gt(lit(0.25)).and(col("key").eq(lit("k042"))))
        .unwrap()
        .count()
        .unwrap();
    let keys = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
    let direct = f64s(&b, "value")
        .iter()
        .enumerate()
        .filter(|(i, v)| **v > 0.25 && keys.value(*i) == "k042")
        .count();
    assert_eq!((a, e), (direct as u64, direct as u64));
    assert!(matches!(
        ds.filter_sql("nonexistent > 1"),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn limit_stops_early_and_is_pushed_into_the_read() {
    let _rt = start();
    let dir = TempDir::new("limit");
    write_files(dir.path(), 8, 50_000, 10_000);
    let full = data::read_parquet(&[dir.str()]).unwrap();
    full.take_all().unwrap();
    let all_bytes = full.bytes_read();
    let ds = data::read_parquet(&[dir.str()]).unwrap();
    let footers = ds.bytes_read();
    let got = ds.limit(10).take_all().unwrap();
    assert_eq!(concat(&got), batch(0, 10));
    let limited = ds.bytes_read() - footers;
    assert!(
        limited * 10 < all_bytes - footers,
        "limit read {limited} of {} bytes",
        all_bytes - footers
    );
    let explain = ds.limit(10).explain().unwrap();
    assert!(explain.contains("limit=10"), "{explain}");
    // A limit below a filter means the first 10 rows, then the filter.
    let first_ten_over = ds
        .limit(10)
        .filter(col("value").gt(lit(0.5)))
        .unwrap()
        .count()
        .unwrap();
    let direct = f64s(&batch(0, 10), "value")
        .iter()
        .filter(|v| **v > 0.5)
        .count();
    assert_eq!(first_ten_over, direct as u64);
}

#[test]
fn projection_and_filter_pushdown_read_fewer_bytes() {
    let _rt = start();
    let dir = TempDir::new("push");
    // Row groups of 5,000 sorted ids: `id < 5000` touches one of 20.
    write_files(dir.path(), 1, 100_000, 5_000);
    let all = data::read_parquet(&[dir.str()]).unwrap();
    let f0 = all.bytes_read();
    all.take_all().unwrap();
    let all_bytes = all.bytes_read() - f0;

    let ds = data::read_parquet(&[dir.str()]).unwrap();
    let f1 = ds.bytes_read();
    let q = ds
        .filter(col("id").lt(lit(5000i64)))
        .unwrap()
        .select_columns(&["id", "value"])
        .unwrap();
    let explain = q.explain().unwrap();
    assert!(
        explain.contains("columns=[id, value], filter=id < Int64(5000)"),
        "{explain}"
    );
    let got = concat(&q.take_all().unwrap());
    assert_eq!(got.num_rows(), 5000);
    assert_eq!(i64s(&got, "id"), (0..5000).collect::<Vec<_>>());
    let pushed = ds.bytes_read() - f1;
    assert!(
        pushed * 10 < all_bytes,
        "pushdown read {pushed} of {all_bytes} bytes"
    );
    // An aggregate reads only its key and value columns.
    let agg = ds
        .groupby(&["key"])
        .sum("value")
        .unwrap()
        .explain()
        .unwrap();
    assert!(agg.contains("columns=[value, key]"), "{agg}");
}

#[test]
fn union_and_range() {
    let _rt = start();
    let a = data::range(100).unwrap();
    let b = data::range(50)
        .unwrap()
        .with_column("id", col("id") + lit(1000i64))
        .unwrap();
    let u = a.union(&b).unwrap();
    assert_eq!(u.count().unwrap(), 150);
    let ids: Vec<i64> = u
        .take_all()
        .unwrap()
        .iter()
        .flat_map(|b| i64s(b, "id"))
        .collect();
    let mut expected: Vec<i64> = (0..100).collect();
    expected.extend(1000..1050);
    assert_eq!(ids, expected);
}

#[test]
fn explain_matches_the_golden() {
    let _rt = start();
    let b = batch(0, 100);
    let ds = data::from_batches(vec![b.slice(0, 50), b.slice(50, 50)])
        .unwrap()
        .map_batches("first", Some(16), Ok)
        .map_batches("second", Some(16), Ok)
        .filter(col("value").gt(lit(0.5)))
        .unwrap()
        .limit(7);
    let got = ds.explain().unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/goldens/map_filter_limit.txt"
    );
    if std::env::var_os("VOLLEY_BLESS").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        got, want,
        "explain changed; rerun with VOLLEY_BLESS=1 if intended"
    );
}

#[test]
fn bad_inputs_give_errors_naming_the_file_or_operator() {
    let _rt = start();
    let dir = TempDir::new("bad");
    match data::read_parquet(&[format!("{}/missing", dir.str())]) {
        Err(Error::NotFound(m)) => assert!(m.contains("missing"), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Not parquet at all.
    std::fs::write(dir.path().join("junk.parquet"), b"this is not parquet").unwrap();
    match data::read_parquet(&[dir
        .path()
        .join("junk.parquet")
        .to_string_lossy()
        .to_string()])
    {
        Err(Error::InvalidData { location, .. }) => {
            assert!(location.ends_with("junk.parquet"), "{location}")
        }
        other => panic!("expected InvalidData, got {other:?}"),
    }
    // Truncated: a valid footer-less prefix.
    let good = TempDir::new("bad-good");
    write_files(good.path(), 1, 1000, 1000);
    let bytes = std::fs::read(good.path().join("f000.parquet")).unwrap();
    std::fs::write(dir.path().join("cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    match data::read_parquet(&[dir.path().join("cut.parquet").to_string_lossy().to_string()]) {
        Err(Error::InvalidData { location, .. }) => assert!(location.ends_with("cut.parquet")),
        other => panic!("expected InvalidData, got {other:?}"),
    }
    // Conflicting schemas.
    let mixed = TempDir::new("bad-mixed");
    write_files(mixed.path(), 1, 100, 100);
    let other =
        RecordBatch::try_from_iter([("id", Arc::new(StringArray::from(vec!["a"])) as _)]).unwrap();
    let f = std::fs::File::create(mixed.path().join("g.parquet")).unwrap();
    let mut w = ArrowWriter::try_new(f, other.schema(), None).unwrap();
    w.write(&other).unwrap();
    w.close().unwrap();
    match data::read_parquet(&[mixed.str()]) {
        Err(Error::InvalidData { location, message }) => {
            assert!(location.ends_with("g.parquet"), "{location}");
            assert!(message.contains("f000.parquet"), "{message}");
        }
        other => panic!("expected InvalidData, got {other:?}"),
    }
    let ds = data::from_batches(vec![batch(0, 10)]).unwrap();
    // A UDF error names the operator.
    let err = ds
        .map_batches("explode", None, |_| Err(volley::UserError::msg("kaboom")))
        .take_all()
        .unwrap_err();
    assert!(
        err.to_string().contains("MapBatches(explode)") && err.to_string().contains("kaboom"),
        "{err}"
    );
    // A UDF panic names the operator chain.
    let err = ds
        .map_batches("crash", None, |_| panic!("segfault-ish"))
        .take_all()
        .unwrap_err();
    match &err {
        Error::TaskFailed {
            task,
            cause: FailureCause::Panic,
            message,
            ..
        } => {
            assert!(task.contains("MapBatchesOp"), "{task}");
            assert!(message.contains("segfault-ish"), "{message}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    // A UDF that changes its schema midway names the operator.
    let two = data::from_batches(vec![batch(0, 10), batch(10, 10)]).unwrap();
    let err = two
        .map_batches("shifty", Some(5), |b| {
            if b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0)
                >= 5
            {
                Ok(b.project(&[0]).unwrap())
            } else {
                Ok(b)
            }
        })
        .take_all()
        .unwrap_err();
    assert!(err.to_string().contains("MapBatches(shifty)"), "{err}");
}

#[test]
fn a_slow_consumer_keeps_the_store_within_its_budget() {
    let budget: u64 = 256 << 20;
    let _rt = start_with(2.0, |c| c.object_store_memory = Some(budget));
    // 1 Gi rows of int64 = 8 GiB through a 256 MiB store, in 8 MiB blocks.
    let ctx = DataContext {
        target_max_block_size: 8 << 20,
        read_batch_rows: 1 << 20,
        ..DataContext::default()
    };
    let ds = data::range(1 << 30)
        .unwrap()
        .with_context(ctx)
        .map_batches("touch", None, Ok);
    let mut rows = 0u64;
    let mut max_objects = 0;
    for (i, b) in ds.iter_batches().unwrap().enumerate() {
        rows += b.unwrap().num_rows() as u64;
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_millis(5));
            max_objects = max_objects.max(volley::object_store_stats().unwrap().num_objects);
        }
    }
    assert_eq!(rows, 1 << 30);
    let s = volley::object_store_stats().unwrap();
    assert!(s.peak_resident_bytes <= budget, "{s:?}");
    assert_eq!(
        s.spilled_objects_total, 0,
        "backpressure, not spilling, bounds the pipeline: {s:?}"
    );
    assert!(
        max_objects <= 16,
        "unconsumed blocks piled up: {max_objects}"
    );
}

fn sorted_i64(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

#[test]
fn sort_orders_rows_like_arrow() {
    let _rt = start();
    let b = batch(0, 20_000);
    let ds = data::from_batches((0..8).map(|i| b.slice(i * 2500, 2500)).collect())
        .unwrap()
        .with_context(DataContext {
            target_max_block_size: 64 << 10,
            ..DataContext::default()
        });
    let got = concat(&ds.sort(&["value"], false).unwrap().take_all().unwrap());
    let mut want = f64s(&b, "value");
    want.sort_by(f64::total_cmp);
    assert_eq!(f64s(&got, "value"), want);
    // Rows stay whole: ids follow their values.
    let ids = i64s(&got, "id");
    let vals = f64s(&b, "value");
    assert!(
        ids.iter()
            .zip(f64s(&got, "value"))
            .all(|(i, v)| vals[*i as usize] == v)
    );
    // Two keys, descending.
    let got = concat(
        &ds.sort_by(&[("key", true), ("id", false)])
            .unwrap()
            .take_all()
            .unwrap(),
    );
    let keys: Vec<String> = got
        .column(2)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .iter()
        .map(|k| k.unwrap().to_string())
        .collect();
    let ids = i64s(&got, "id");
    for i in 1..keys.len() {
        assert!(
            keys[i - 1] > keys[i] || (keys[i - 1] == keys[i] && ids[i - 1] < ids[i]),
            "row {i}"
        );
    }
    assert!(ds.sort(&["nope"], false).is_err());
}

#[test]
fn sorting_four_times_the_store_spills_and_stays_ordered() {
    let budget: u64 = 64 << 20;
    let _rt = start_with(2.0, |c| c.object_store_memory = Some(budget));
    // 32 Mi random int64 keys = 256 MiB of input through a 64 MiB store.
    let n: u64 = 32 << 20;
    let ds = data::range(n)
        .unwrap()
        .with_context(DataContext {
            target_max_block_size: 8 << 20,
            ..DataContext::default()
        })
        .with_column(
            "k",
            (col("id") * lit(2654435761i64)) % lit(1_000_000_007i64),
        )
        .unwrap()
        .select_columns(&["k"])
        .unwrap();
    let sorted = ds.sort(&["k"], false).unwrap();
    let mut prev = i64::MIN;
    let mut rows = 0u64;
    for b in sorted.iter_batches().unwrap() {
        let b = b.unwrap();
        for v in i64s(&b, "k") {
            assert!(v >= prev, "out of order at row {rows}");
            prev = v;
            rows += 1;
        }
    }
    assert_eq!(rows, n);
    let s = volley::object_store_stats().unwrap();
    assert!(s.spilled_objects_total > 0, "expected spilling: {s:?}");
    assert!(s.peak_resident_bytes <= budget, "{s:?}");
}

#[test]
fn a_partition_larger_than_a_reducer_may_hold_is_merged_from_sorted_runs() {
    let budget: u64 = 64 << 20;
    let _rt = start_with(2.0, |c| c.object_store_memory = Some(budget));
    // 8 Mi rows of (k, id), 128 MiB, whose sort key has two values: two partitions of
    // 64 MiB, for reducers that may hold 4 MiB (twice a 2 MiB block).
    let n: u64 = 8 << 20;
    let sorted = data::range(n)
        .unwrap()
        .with_context(DataContext {
            target_max_block_size: 2 << 20,
            ..DataContext::default()
        })
        .with_column("k", col("id") % lit(2i64))
        .unwrap()
        .select_columns(&["k", "id"])
        .unwrap()
        .sort(&["k"], false)
        .unwrap();
    let (mut prev, mut rows, mut zeros, mut id_sum) = (i64::MIN, 0u64, 0u64, 0i128);
    for b in sorted.iter_batches().unwrap() {
        let b = b.unwrap();
        for (k, id) in i64s(&b, "k").into_iter().zip(i64s(&b, "id")) {
            assert!(k >= prev, "out of order at row {rows}");
            assert_eq!(k, id % 2, "row {rows} lost its pairing");
            prev = k;
            rows += 1;
            zeros += u64::from(k == 0);
            id_sum += i128::from(id);
        }
    }
    assert_eq!((rows, zeros), (n, n / 2));
    assert_eq!(
        id_sum,
        i128::from(n) * i128::from(n - 1) / 2,
        "a row was lost or doubled"
    );
    let stats = sorted.stats().unwrap();
    let sort = stats
        .operators
        .iter()
        .find(|o| o.name.contains("SortOp"))
        .expect("the sort operator");
    // Sorting a partition in memory holds it twice (128 MiB); the runs hold a few MiB each.
    assert!(
        sort.peak_bytes < 32 << 20,
        "the reducers held {} MiB at once: {stats}",
        sort.peak_bytes >> 20
    );
}

#[test]
fn groupby_aggregates_match_datafusion() {
    let _rt = start();
    let b = batch(0, 30_000);
    let ds = data::from_batches((0..6).map(|i| b.slice(i * 5000, 5000)).collect()).unwrap();
    let aggs = [
        data::Agg::count(),
        data::Agg::sum("id"),
        data::Agg::min("value"),
        data::Agg::max("value"),
        data::Agg::mean("value"),
        data::Agg::std("value"),
    ];
    let got = concat(
        &ds.groupby(&["key"])
            .aggregate(&aggs)
            .unwrap()
            .sort(&["key"], false)
            .unwrap()
            .take_all()
            .unwrap(),
    );
    // The same query in DataFusion directly.
    let ctx = volley::datafusion::prelude::SessionContext::new();
    ctx.register_batch("t", b.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let want = rt
        .block_on(async {
            ctx.sql("SELECT key, count(*) AS c, sum(id) AS s, min(value) AS mn, max(value) AS mx, avg(value) AS m, stddev(value) AS sd FROM t GROUP BY key ORDER BY key")
                .await?
                .collect()
                .await
        })
        .unwrap();
    let want = concat(&want);
    assert_eq!(got.num_rows(), want.num_rows());
    let schema = got.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "key",
            "count()",
            "sum(id)",
            "min(value)",
            "max(value)",
            "mean(value)",
            "std(value)"
        ]
    );
    assert_eq!(got.column(0), want.column(0));
    assert_eq!(got.column(1), want.column(1));
    assert_eq!(got.column(2), want.column(2));
    assert_eq!(got.column(3), want.column(3));
    assert_eq!(got.column(4), want.column(4));
    let close = |a: &dyn Array, b: &dyn Array| {
        let a = a.as_any().downcast_ref::<Float64Array>().unwrap();
        let b = b.as_any().downcast_ref::<Float64Array>().unwrap();
        a.values()
            .iter()
            .zip(b.values())
            .all(|(x, y)| (x - y).abs() <= 1e-9 * y.abs().max(1.0))
    };
    assert!(
        close(got.column(5).as_ref(), want.column(5).as_ref()),
        "mean differs"
    );
    assert!(
        close(got.column(6).as_ref(), want.column(6).as_ref()),
        "std differs"
    );
    // Shorthands.
    let counts = concat(&ds.groupby(&["key"]).count().unwrap().take_all().unwrap());
    assert_eq!(counts.num_rows(), want.num_rows());
    assert!(ds.groupby(&["nope"]).count().is_err());
}

#[test]
fn repartition_and_random_shuffle_keep_every_row() {
    let _rt = start();
    let ds = data::range(10_000).unwrap();
    let parts = ds.repartition(4).unwrap();
    let blocks = parts.take_all().unwrap();
    assert_eq!(
        sorted_i64(blocks.iter().flat_map(|b| i64s(b, "id")).collect()),
        (0..10_000).collect::<Vec<_>>()
    );
    let sizes: Vec<usize> = blocks.iter().map(|b| b.num_rows()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 10_000);
    assert!(sizes.iter().all(|s| (2400..=2600).contains(s)), "{sizes:?}");

    let ids = |seed: u64| -> Vec<i64> {
        ds.random_shuffle(Some(seed))
            .take_all()
            .unwrap()
            .iter()
            .flat_map(|b| i64s(b, "id"))
            .collect()
    };
    let (a, b, c) = (ids(7), ids(7), ids(8));
    assert_eq!(a, b, "same seed, same order");
    assert_ne!(a, c, "another seed, another order");
    assert_ne!(a, (0..10_000).collect::<Vec<_>>());
    assert_eq!(sorted_i64(a), (0..10_000).collect::<Vec<_>>());
}

#[test]
fn csv_and_json_round_trip() {
    let _rt = start();
    let out = TempDir::new("text");
    let b = batch(0, 5000);
    let ds = data::from_batches(vec![b.slice(0, 2500), b.slice(2500, 2500)]).unwrap();
    let csv = ds.write_csv(&format!("{}/csv", out.str())).unwrap();
    assert_eq!(csv.rows(), 5000);
    assert!(csv.files.iter().all(|f| f.path.ends_with(".csv")));
    let back = concat(
        &data::read_csv(&[format!("{}/csv", out.str())])
            .unwrap()
            .take_all()
            .unwrap(),
    );
    assert_eq!(i64s(&back, "id"), (0..5000).collect::<Vec<_>>());
    assert_eq!(f64s(&back, "value"), f64s(&b, "value"));
    let json = ds.write_json(&format!("{}/json", out.str())).unwrap();
    assert_eq!(json.rows(), 5000);
    let back = data::read_json(&[format!("{}/json", out.str())]).unwrap();
    assert_eq!(back.count().unwrap(), 5000);
    let sum: f64 = back
        .take_all()
        .unwrap()
        .iter()
        .map(|b| f64s(b, "value").iter().sum::<f64>())
        .sum();
    assert!((sum - f64s(&b, "value").iter().sum::<f64>()).abs() < 1e-6);
    // A malformed CSV file names itself.
    std::fs::write(out.path().join("bad.csv"), "id,value\n1,2\n3\n").unwrap();
    let err = data::read_csv(&[out.path().join("bad.csv").to_string_lossy().to_string()])
        .and_then(|d| d.take_all())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidData { .. }), "{err:?}");
    assert!(err.to_string().contains("bad.csv"), "{err}");
}

#[test]
fn sized_batches_splits_and_train_test_split() {
    let _rt = start();
    let ds = data::range(1003).unwrap();
    let sizes: Vec<usize> = ds
        .iter_batches_sized(100)
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .collect();
    assert_eq!(sizes, [vec![100; 10], vec![3]].concat());
    let ids: Vec<i64> = ds
        .iter_batches_sized(7)
        .unwrap()
        .flat_map(|b| i64s(&b.unwrap(), "id"))
        .collect();
    assert_eq!(ids, (0..1003).collect::<Vec<_>>());
    // Small blocks, so cuts fall inside blocks.
    let small = ds.clone().with_context(DataContext {
        read_batch_rows: 64,
        target_max_block_size: 1,
        ..DataContext::default()
    });
    let parts = small.split(4, false).unwrap();
    let counts: Vec<u64> = parts.iter().map(|p| p.count().unwrap()).collect();
    assert_eq!(counts, [250, 251, 251, 251]);
    let ids: Vec<i64> = parts
        .iter()
        .flat_map(|p| p.take_all().unwrap())
        .flat_map(|b| i64s(&b, "id"))
        .collect();
    assert_eq!(
        ids,
        (0..1003).collect::<Vec<_>>(),
        "consecutive rows, each once"
    );
    let equal = small.split(4, true).unwrap();
    let counts: Vec<u64> = equal.iter().map(|p| p.count().unwrap()).collect();
    assert_eq!(counts, [250; 4]);
    let firsts: Vec<i64> = equal
        .iter()
        .map(|p| i64s(&p.take(1).unwrap()[0], "id")[0])
        .collect();
    assert_eq!(firsts, [0, 250, 500, 750]);
    let (train, test) = ds.train_test_split(0.25, Some(3)).unwrap();
    assert_eq!((train.count().unwrap(), test.count().unwrap()), (752, 251));
    let mut all: Vec<i64> = train
        .take_all()
        .unwrap()
        .iter()
        .chain(test.take_all().unwrap().iter())
        .flat_map(|b| i64s(b, "id"))
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..1003).collect::<Vec<_>>());
}
