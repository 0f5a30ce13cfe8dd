use std::sync::Arc;
use std::time::Duration;

use volley::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use volley::{Block, Error};

use crate::{start, start_with};

fn block(rows: i64) -> Block {
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from_iter_values(0..rows)) as _),
        (
            "key",
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("k{}", i % 7)),
            )) as _,
        ),
    ])
    .unwrap();
    Block::from(batch)
}

#[test]
fn arrow_objects_are_shared_not_copied_in_process() {
    let _rt = start();
    let b = block(1_000_000);
    let addr = b.batches()[0].column(0).to_data().buffers()[0].as_ptr();
    let r = volley::put(b).unwrap();
    let got = volley::get(&r).unwrap();
    assert_eq!(
        got.batches()[0].column(0).to_data().buffers()[0].as_ptr(),
        addr
    );
    // A task gets the same buffers too.
    let addr_in_task = volley::task(|b: Block| {
        Ok(b.batches()[0].column(0).to_data().buffers()[0].as_ptr() as usize)
    });
    assert_eq!(
        volley::get(&addr_in_task.remote((&r,)).unwrap()).unwrap(),
        addr as usize
    );
}

#[test]
fn gotten_blocks_pin_their_object() {
    let _rt = start();
    let r = volley::put(block(1000)).unwrap();
    let got = volley::get(&r).unwrap();
    assert!(volley::object_store_stats().unwrap().pinned_bytes > 0);
    drop(got);
    assert_eq!(volley::object_store_stats().unwrap().pinned_bytes, 0);
}

#[test]
fn values_round_trip_and_small_values_stay_small() {
    let _rt = start();
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Point {
        x: f64,
        label: String,
    }
    let r = volley::put(Point {
        x: 1.5,
        label: "a".into(),
    })
    .unwrap();
    assert_eq!(
        volley::get(&r).unwrap(),
        Point {
            x: 1.5,
            label: "a".into()
        }
    );
    let stats = volley::object_store_stats().unwrap();
    assert_eq!(stats.num_objects, 1);
    assert!(stats.resident_bytes < 64);
}

#[test]
fn an_object_bigger_than_the_store_is_refused() {
    let _rt = start_with(2.0, |c| c.object_store_memory = Some(1 << 20));
    match volley::put(block(1_000_000)) {
        Err(Error::ObjectStoreFull { needed, budget, .. }) => {
            assert!(needed > budget);
            assert_eq!(budget, 1 << 20);
        }
        other => panic!("expected ObjectStoreFull, got {other:?}"),
    }
}

#[test]
fn a_full_store_of_pinned_objects_fails_after_the_timeout_and_loses_nothing() {
    let _rt = start_with(2.0, |c| {
        c.object_store_memory = Some(40 << 20);
        c.object_store_full_timeout = Duration::from_millis(200);
    });
    let a = volley::put(block(1_000_000)).unwrap();
    let held = volley::get(&a).unwrap(); // pinned
    let b = volley::put(block(1_000_000)).unwrap();
    let held_b = volley::get(&b).unwrap();
    match volley::put(block(1_000_000)) {
        Err(e @ Error::ObjectStoreFull { .. }) => assert!(e.to_string().contains("pinned"), "{e}"),
        other => panic!("expected ObjectStoreFull, got {other:?}"),
    }
    assert_eq!(held.num_rows() + held_b.num_rows(), 2_000_000);
    drop((held, held_b));
    // Unpinned now: the third put spills and succeeds.
    let c = volley::put(block(1_000_000)).unwrap();
    assert_eq!(volley::get(&a).unwrap(), block(1_000_000));
    assert_eq!(volley::get(&c).unwrap().num_rows(), 1_000_000);
}

#[test]
fn segments_hold_the_ipc_encoding_and_die_with_the_object() {
    let _rt = start();
    let r = volley::put(block(10_000)).unwrap();
    let seg = volley::object_segment(&r).unwrap();
    assert!(seg.path.starts_with("/dev/shm") || seg.path.exists());
    let again = volley::object_segment(&r).unwrap();
    assert_eq!(seg.path, again.path, "materialized once");
    let mapped = volley::core::shm::map_segment(&seg.path).unwrap();
    match mapped.data() {
        volley::ObjectData::Arrow(b) => assert_eq!(*b, block(10_000)),
        other => panic!("not arrow: {other:?}"),
    }
    let meta = std::fs::metadata(&seg.path).unwrap();
    assert!(
        meta.permissions().readonly(),
        "segments are sealed read-only"
    );
    let stats = volley::object_store_stats().unwrap();
    assert_eq!(stats.num_segments, 1);
    drop(r);
    assert!(!seg.path.exists(), "segment outlived its object");
}
