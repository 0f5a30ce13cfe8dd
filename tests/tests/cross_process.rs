//! A segment written by the store is mapped and read zero-copy by a separate process.

use std::process::Command;
use std::sync::Arc;

use volley::Block;
use volley::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};

#[test]
fn another_process_maps_a_store_segment_zero_copy() {
    let mut c = volley::Config::builtin();
    c.num_cpus = Some(2.0);
    c.object_store_memory = Some(512 << 20);
    volley::init(c).unwrap();
    let n = 2_000_000i64;
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from_iter_values(0..n)) as _),
        (
            "value",
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 * 0.5),
            )) as _,
        ),
        (
            "key",
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("k{}", i % 1000)),
            )) as _,
        ),
    ])
    .unwrap();
    let block = Block::try_new(
        batch.schema(),
        vec![batch.slice(0, 1_000_000), batch.slice(1_000_000, 1_000_000)],
    )
    .unwrap();
    let r = volley::put(block).unwrap();
    let seg = volley::object_segment(&r).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shm-reader"))
        .arg(&seg.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let expected_sum: i64 = (0..n).sum();
    assert_eq!(
        stdout.trim(),
        format!("rows={n} sum={expected_sum} zero_copy=true")
    );
    // The reader's mapping does not keep the segment: freeing the object removes the file.
    drop(r);
    assert!(!seg.path.exists());
    volley::shutdown();
}

#[test]
fn a_missing_segment_is_a_clear_error_in_the_reader() {
    let out = Command::new(env!("CARGO_BIN_EXE_shm-reader"))
        .arg("/dev/shm/volley-does-not-exist")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mapping shared-memory segment /dev/shm/volley-does-not-exist"),
        "{err}"
    );
}
