use std::sync::Arc;

use volley::arrow::array::{Int64Array, RecordBatch};
use volley::{Block, ObjectRef};

use crate::start_with;

const BLOCK_ROWS: i64 = 8 << 20; // 8 Mi int64 = 64 MiB

fn block(seed: i64) -> Block {
    let values = Int64Array::from_iter_values((0..BLOCK_ROWS).map(|i| i.wrapping_mul(31) ^ seed));
    Block::from(RecordBatch::try_from_iter([("v", Arc::new(values) as _)]).unwrap())
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn four_times_the_budget_spills_and_reads_back_identical() {
    let budget: u64 = 256 << 20;
    let _rt = start_with(2.0, |c| c.object_store_memory = Some(budget));
    let mut refs: Vec<ObjectRef<Block>> = Vec::new();
    for seed in 0..16 {
        refs.push(volley::put(block(seed)).unwrap());
        let s = volley::object_store_stats().unwrap();
        assert!(
            s.resident_bytes <= budget,
            "resident {} > budget {budget}",
            s.resident_bytes
        );
    }
    let stats = volley::object_store_stats().unwrap();
    assert!(stats.spilled_objects_total >= 12, "{stats:?}");
    let spill_dir = volley::get_runtime_context()
        .unwrap()
        .session_dir
        .join("spill");
    assert!(!files_under(&spill_dir).is_empty());
    for (seed, r) in refs.iter().enumerate() {
        let got = volley::get(r).unwrap();
        assert!(
            got == block(seed as i64),
            "block {seed} differs after spill/restore"
        );
        drop(got);
        let s = volley::object_store_stats().unwrap();
        assert!(s.resident_bytes <= budget);
    }
    let stats = volley::object_store_stats().unwrap();
    assert!(stats.peak_resident_bytes <= budget, "{stats:?}");
    assert!(stats.restored_objects_total >= 12, "{stats:?}");
    drop(refs);
    let stats = volley::object_store_stats().unwrap();
    assert_eq!(
        (stats.num_objects, stats.resident_bytes),
        (0, 0),
        "{stats:?}"
    );
    assert!(
        files_under(&spill_dir).is_empty(),
        "spill files left: {:?}",
        files_under(&spill_dir)
    );
}

#[test]
fn any_object_store_url_works_as_spill_target() {
    let _rt = start_with(2.0, |c| {
        c.object_store_memory = Some(160 << 20);
        c.spill_url = Some("memory:///spill".to_string());
    });
    assert_eq!(volley::spill_url().unwrap(), "memory:///spill");
    let refs: Vec<_> = (0..4).map(|s| volley::put(block(s)).unwrap()).collect();
    assert!(volley::object_store_stats().unwrap().spilled_objects_total >= 2);
    for (s, r) in refs.iter().enumerate() {
        assert!(volley::get(r).unwrap() == block(s as i64));
    }
}

#[test]
fn spilled_arguments_are_restored_for_tasks() {
    let _rt = start_with(2.0, |c| c.object_store_memory = Some(160 << 20));
    let refs: Vec<_> = (0..4).map(|s| volley::put(block(s)).unwrap()).collect();
    let first = volley::task(|b: Block| {
        let col = b.batches()[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone();
        Ok(col.value(1))
    });
    let outs: Vec<_> = refs.iter().map(|r| first.remote((r,)).unwrap()).collect();
    let got = volley::get_all(&outs, None).unwrap();
    assert_eq!(got, (0..4).map(|s| 31 ^ s).collect::<Vec<i64>>());
}

#[test]
fn a_bad_spill_url_is_an_error_naming_it() {
    let mut c = volley::Config::builtin();
    c.spill_url = Some("nosuchscheme://x/y".to_string());
    let _lock = crate::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let err = volley::init(c).unwrap_err();
    assert!(err.to_string().contains("nosuchscheme://x/y"), "{err}");
    assert!(!volley::is_initialized());
}
