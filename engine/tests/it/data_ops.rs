//! Volley Data's row functions, zip, join, map_groups, materialize, streaming_split, actor
//! pools, per-task resources, progress and exchange spilling — each checked against a direct
//! computation on the same data.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use volley::arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use volley::data::{self, Compute, DataContext, MapOptions, Progress, ProgressSink, col, lit};
use volley::{Error, UserError};

use crate::data::{batch, concat, f64s, i64s};
use crate::{start, start_with};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Item {
    id: i64,
    name: String,
    score: f64,
}

fn items(n: i64) -> Vec<Item> {
    (0..n)
        .map(|i| Item {
            id: i,
            name: format!("n{}", i % 7),
            score: i as f64 * 0.5,
        })
        .collect()
}

fn strs(b: &RecordBatch, name: &str) -> Vec<String> {
    let a = b.column_by_name(name).unwrap();
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len()).map(|i| a.value(i).to_string()).collect()
}

#[test]
fn from_items_map_and_flat_map_over_rows() {
    let _rt = start();
    let ds = data::from_items(&items(1000)).unwrap();
    let schema = ds.schema().unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        ["id", "name", "score"],
        "columns in the struct's order"
    );
    assert_eq!(ds.count().unwrap(), 1000);
    let back = concat(&ds.take_all().unwrap());
    assert_eq!(i64s(&back, "id"), (0..1000).collect::<Vec<_>>());
    assert_eq!(strs(&back, "name")[8], "n1");

    #[derive(Serialize)]
    struct Doubled {
        id: i64,
        double: f64,
    }
    let mapped = ds.map("double", |r: Item| {
        Ok(Doubled {
            id: r.id,
            double: r.score * 2.0,
        })
    });
    let out = concat(&mapped.take_all().unwrap());
    assert_eq!(out.num_rows(), 1000);
    let direct: f64 = items(1000).iter().map(|r| r.score * 2.0).sum();
    assert_eq!(f64s(&out, "double").iter().sum::<f64>(), direct);
    assert!(mapped.explain().unwrap().contains("Map: double"));

    // Every third row twice, the others not at all.
    let flat = ds.flat_map("thirds", |r: Item| {
        Ok(if r.id % 3 == 0 {
            vec![r.clone(), r]
        } else {
            vec![]
        })
    });
    let out = concat(&flat.take_all().unwrap());
    let expected: Vec<i64> = (0..1000)
        .filter(|i| i % 3 == 0)
        .flat_map(|i| [i, i])
        .collect();
    assert_eq!(i64s(&out, "id"), expected);

    // Rows that do not fit the function's type: an error naming the operator.
    #[derive(Deserialize)]
    struct Wrong {
        #[allow(dead_code)]
        missing: i64,
    }
    let err = ds
        .map("wrong_type", |_: Wrong| Ok(serde_json::json!({"x": 1})))
        .take_all()
        .unwrap_err();
    assert!(
        err.to_string().contains("map wrong_type") && err.to_string().contains("missing"),
        "{err}"
    );
    assert!(matches!(
        data::from_items::<Item>(&[]),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn zip_pairs_rows_across_different_block_boundaries() {
    let _rt = start();
    // Left: uneven in-memory batches; right: a range with a computed column.
    let left = data::from_batches(vec![batch(0, 10), batch(10, 333), batch(343, 657)]).unwrap();
    let right = data::range(1000)
        .unwrap()
        .with_column("sq", col("id") * col("id"))
        .unwrap();
    let zipped = left.zip(&right);
    let schema = zipped.schema().unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "value", "key", "id_1", "sq"]);
    let out = concat(&zipped.take_all().unwrap());
    assert_eq!(out.num_rows(), 1000);
    assert_eq!(i64s(&out, "id"), i64s(&out, "id_1"));
    let sq: Vec<i64> = i64s(&out, "id").iter().map(|i| i * i).collect();
    assert_eq!(i64s(&out, "sq"), sq);
    assert_eq!(f64s(&out, "value"), f64s(&batch(0, 1000), "value"));

    let err = data::range(10)
        .unwrap()
        .zip(&data::range(11).unwrap())
        .take_all()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("10") && m.contains("11")),
        "{err}"
    );
}

#[test]
fn map_groups_calls_the_function_once_per_whole_group() {
    let _rt = start();
    let input = batch(0, 20_000);
    let ds = data::from_batches(vec![input.slice(0, 7_000), input.slice(7_000, 13_000)])
        .unwrap()
        .repartition(4)
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let out = ds
        .groupby(&["key"])
        .map_groups("summarize", move |g| {
            c.fetch_add(1, Ordering::Relaxed);
            let keys = strs(&g, "key");
            if keys.iter().any(|k| *k != keys[0]) {
                return Err(UserError::msg("a group with two keys"));
            }
            let sum: f64 = f64s(&g, "value").iter().sum();
            Ok(RecordBatch::try_from_iter([
                (
                    "key",
                    Arc::new(StringArray::from(vec![keys[0].clone()])) as _,
                ),
                (
                    "rows",
                    Arc::new(Int64Array::from(vec![g.num_rows() as i64])) as _,
                ),
                ("sum", Arc::new(Float64Array::from(vec![sum])) as _),
            ])?)
        })
        .unwrap()
        .sort(&["key"], false)
        .unwrap();
    let got = concat(&out.take_all().unwrap());
    let mut direct: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    for (k, v) in strs(&input, "key").into_iter().zip(f64s(&input, "value")) {
        let e = direct.entry(k).or_default();
        e.0 += 1;
        e.1 += v;
    }
    assert_eq!(got.num_rows(), direct.len());
    assert_eq!(calls.load(Ordering::Relaxed), direct.len());
    for (i, (k, (rows, sum))) in direct.iter().enumerate() {
        assert_eq!(&strs(&got, "key")[i], k);
        assert_eq!(i64s(&got, "rows")[i], *rows);
        assert!((f64s(&got, "sum")[i] - sum).abs() < 1e-9);
    }
    let err = ds.groupby(&["nope"]).map_groups("x", Ok).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn materialize_runs_the_plan_once_and_reads_blocks_from_the_store() {
    let _rt = start();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let ds = data::range(50_000)
        .unwrap()
        .map_batches("counted", None, move |b| {
            c.fetch_add(1, Ordering::Relaxed);
            Ok(b)
        })
        .materialize()
        .unwrap();
    let after = calls.load(Ordering::Relaxed);
    assert!(after > 0);
    assert!(volley::object_store_stats().unwrap().num_objects > 0);
    assert_eq!(ds.count().unwrap(), 50_000);
    let ids: Vec<i64> = ds
        .take_all()
        .unwrap()
        .iter()
        .flat_map(|b| i64s(b, "id"))
        .collect();
    assert_eq!(ids, (0..50_000).collect::<Vec<_>>());
    let sum: i64 = ds
        .filter(col("id").lt(lit(100i64)))
        .unwrap()
        .take_all()
        .unwrap()
        .iter()
        .flat_map(|b| i64s(b, "id"))
        .sum();
    assert_eq!(sum, (0..100).sum::<i64>());
    assert_eq!(calls.load(Ordering::Relaxed), after, "the map ran again");
    assert!(ds.explain().unwrap().contains("FromRefs"));
    drop(ds);
}

fn consume(it: data::SplitIter) -> std::thread::JoinHandle<(Vec<i64>, Option<String>)> {
    std::thread::spawn(move || {
        let mut ids = Vec::new();
        for b in it {
            match b {
                Ok(b) => ids.extend(i64s(&b, "id")),
                Err(e) => return (ids, Some(e.to_string())),
            }
        }
        (ids, None)
    })
}

fn small_blocks() -> DataContext {
    DataContext {
        read_batch_rows: 1000,
        target_max_block_size: 64 << 10,
        ..DataContext::default()
    }
}

#[test]
fn streaming_split_deals_equal_shards_to_concurrent_consumers() {
    let _rt = start();
    let ds = data::range(10_000).unwrap().with_context(small_blocks());
    for equal in [true, false] {
        let shards: Vec<_> = ds
            .streaming_split(3, equal)
            .unwrap()
            .into_iter()
            .map(consume)
            .collect();
        let results: Vec<Vec<i64>> = shards
            .into_iter()
            .map(|h| {
                let (ids, err) = h.join().unwrap();
                assert_eq!(err, None);
                ids
            })
            .collect();
        let total: usize = results.iter().map(|r| r.len()).sum();
        let distinct: HashSet<i64> = results.iter().flatten().copied().collect();
        assert_eq!(distinct.len(), total, "a row went to two consumers");
        if equal {
            for r in &results {
                assert_eq!(r.len(), 3333, "equal shards");
            }
        } else {
            // Shares may differ (a late consumer's queued batches go to one that is ready
            // once the dataset ends), but every row arrives once.
            assert_eq!(total, 10_000);
        }
    }
}

#[test]
fn streaming_split_detects_a_vanished_consumer() {
    let _rt = start();
    let ds = data::range(20_000).unwrap().with_context(small_blocks());
    for equal in [true, false] {
        let mut its = ds.streaming_split(2, equal).unwrap();
        let survivor = consume(its.pop().unwrap());
        let mut quitter = its.pop().unwrap();
        // The survivor may have taken everything before the quitter asks (equal=false).
        let first = quitter.next().map_or(0, |b| b.unwrap().num_rows());
        drop(quitter);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(survivor.join().unwrap()));
        let (ids, err) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the other consumer hung");
        if equal {
            let err = err.expect("equal shards cannot survive a vanished consumer");
            assert!(err.contains("consumer 0 of 2 went away"), "{err}");
        } else {
            assert_eq!(err, None);
            assert_eq!(ids.len() + first, 20_000, "the rest goes to the survivor");
        }
    }
}

#[test]
fn streaming_split_leaves_no_rows_queued_for_a_consumer_that_never_reads() {
    let _rt = start();
    let ds = data::range(20_000).unwrap().with_context(small_blocks());
    let mut its = ds.streaming_split(2, false).unwrap();
    let reader = its.pop().unwrap();
    let idle = its.pop().unwrap();
    // `idle` never reads: its queue fills, the rest goes to `reader`, which takes what is
    // still queued for `idle` once the dataset has ended.
    let ids: Vec<i64> = reader.flat_map(|b| i64s(&b.unwrap(), "id")).collect();
    drop(idle);
    assert_eq!(
        ids.len(),
        20_000,
        "every row reaches the consumer that reads"
    );
    assert_eq!(ids.iter().copied().collect::<HashSet<i64>>().len(), 20_000);
}

static CTORS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn actor_pool_builds_state_once_per_actor_and_scales_within_bounds() {
    let _rt = start_with(4.0, |_| {});
    CTORS.store(0, Ordering::SeqCst);
    let opts = MapOptions {
        compute: Compute::Actors {
            min_size: 1,
            max_size: 3,
        },
        ..MapOptions::default()
    };
    let ds = data::range(200_000)
        .unwrap()
        .with_context(DataContext {
            read_batch_rows: 2_000,
            ..small_blocks()
        })
        .map_batches_actors(
            "add_offset",
            opts,
            || {
                CTORS.fetch_add(1, Ordering::SeqCst);
                Ok(1_000_000i64) // e.g. a loaded model
            },
            |offset, b| {
                std::thread::sleep(Duration::from_millis(2));
                let ids = i64s(&b, "id");
                Ok(RecordBatch::try_from_iter([(
                    "x",
                    Arc::new(Int64Array::from_iter_values(
                        ids.iter().map(|i| i + *offset),
                    )) as _,
                )])?)
            },
        )
        .unwrap();
    let out = ds.take_all().unwrap();
    let sum: i64 = out.iter().flat_map(|b| i64s(b, "x")).sum();
    assert_eq!(sum, (0..200_000i64).map(|i| i + 1_000_000).sum::<i64>());
    let ctors = CTORS.load(Ordering::SeqCst);
    assert!((1..=3).contains(&ctors), "{ctors} constructors");
    let stats = ds.stats().unwrap().to_string();
    assert!(stats.contains("actors"), "{stats}");
    assert!(ds.explain().unwrap().contains("compute=actors(1..3)"));

    // A failing constructor: the error names the operator and the cause.
    let err = data::range(10)
        .unwrap()
        .map_batches_actors(
            "loader",
            MapOptions::default(),
            || Err::<(), _>(UserError::msg("model file missing")),
            |_, b| Ok(b),
        )
        .unwrap()
        .take_all()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("MapBatches(loader)") && msg.contains("model file missing"),
        "{msg}"
    );
    let bad = MapOptions {
        compute: Compute::Actors {
            min_size: 0,
            max_size: 2,
        },
        ..MapOptions::default()
    };
    assert!(matches!(
        data::range(1)
            .unwrap()
            .map_batches_actors("x", bad, || Ok(()), |_, b| Ok(b)),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn map_batches_resources_bound_concurrency_and_infeasible_demands_fail() {
    let _rt = start_with(4.0, |c| {
        c.resources.insert("slot".into(), 1.0);
    });
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), most.clone());
    let opts = MapOptions {
        resources: vec![("slot".into(), 1.0)],
        ..MapOptions::default()
    };
    let ds = data::range(40_000)
        .unwrap()
        .with_context(small_blocks())
        .map_batches_with("one_at_a_time", opts, move |b| {
            let running = n.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(running, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
            n.fetch_sub(1, Ordering::SeqCst);
            Ok(b)
        })
        .unwrap();
    assert_eq!(ds.count().unwrap(), 40_000);
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "one slot: one task at a time"
    );

    let gpu = MapOptions {
        num_gpus: 1.0,
        ..MapOptions::default()
    };
    let err = data::range(10)
        .unwrap()
        .map_batches_with("needs_gpu", gpu, Ok)
        .unwrap()
        .take_all()
        .unwrap_err();
    assert!(matches!(err, Error::Infeasible(_)), "{err:?}");
    assert!(err.to_string().contains("GPU"), "{err}");
}

#[test]
fn progress_snapshots_and_stats_report_each_operator() {
    let _rt = start();
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let s = seen.clone();
    let ctx = DataContext {
        progress_sink: Some(ProgressSink(Arc::new(move |p: &Progress| {
            s.lock().unwrap().push(p.clone())
        }))),
        progress_interval: Duration::from_millis(20),
        enable_progress_bars: false,
        ..small_blocks()
    };
    let ds = data::range(20_000)
        .unwrap()
        .with_context(ctx)
        .map_batches("slow", None, |b| {
            std::thread::sleep(Duration::from_millis(5));
            Ok(b)
        });
    let mut rows = 0;
    for (i, b) in ds.iter_batches().unwrap().enumerate() {
        rows += b.unwrap().num_rows();
        if i == 2 {
            // A consumer that stops pulling holds the pipeline back.
            std::thread::sleep(Duration::from_millis(400));
        }
    }
    assert_eq!(rows, 20_000);
    let seen = seen.lock().unwrap();
    let last = seen.last().expect("no progress reported");
    assert!(last.finished);
    let map = last
        .operators
        .iter()
        .find(|o| o.name.contains("MapBatchesOp(slow)"))
        .expect("the map operator");
    assert_eq!(map.rows, 20_000);
    assert_eq!(map.tasks_active, 0);
    assert!(map.peak_bytes > 0);
    assert!(
        seen.iter()
            .any(|p| !p.finished && p.operators.iter().any(|o| o.tasks_active > 0)),
        "no snapshot saw a running task"
    );
    assert!(
        seen.iter().any(|p| p
            .operators
            .iter()
            .any(|o| o.backpressure.as_deref() == Some("consumer"))),
        "the slow consumer was not reported"
    );
    assert!(last.render_text().contains("MapBatchesOp(slow)"));
    let stats = ds.stats().unwrap();
    assert!(stats.to_string().contains("peak"), "{stats}");
    assert!(stats.operators.iter().all(|o| o.rows == 20_000));
}

#[test]
fn an_exchange_spills_past_its_share_of_the_store() {
    let budget: u64 = 256 << 20;
    let _rt = start_with(2.0, |c| c.object_store_memory = Some(budget));
    // 16 Mi int64 keys (128 MiB) with a 64 MiB exchange share.
    let n: u64 = 16 << 20;
    let ds = data::range(n)
        .unwrap()
        .with_context(DataContext {
            target_max_block_size: 8 << 20,
            exchange_spill_fraction: 0.25,
            ..DataContext::default()
        })
        .with_column("k", (col("id") * lit(48271i64)) % lit(2_147_483_647i64))
        .unwrap()
        .select_columns(&["k"])
        .unwrap()
        .sort(&["k"], true)
        .unwrap();
    let mut prev = i64::MAX;
    let mut rows = 0u64;
    for b in ds.iter_batches().unwrap() {
        for v in i64s(&b.unwrap(), "k") {
            assert!(v <= prev, "out of order at row {rows}");
            prev = v;
            rows += 1;
        }
    }
    assert_eq!(rows, n);
    let s = volley::object_store_stats().unwrap();
    assert!(s.spilled_objects_total > 0, "{s:?}");
    assert!(
        s.peak_resident_bytes < budget / 2,
        "the exchange kept {} MiB resident: {s:?}",
        s.peak_resident_bytes >> 20
    );
    let sort = ds.stats().unwrap();
    assert!(
        sort.operators
            .iter()
            .any(|o| o.name.contains("SortOp") && o.peak_bytes > 0),
        "{sort}"
    );
}

/// `(k, v)` rows as a batch: `k` nullable int64 keys (duplicates and nulls), `v` int64.
fn keyed(name_v: &str, rows: &[(Option<i64>, i64)]) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "k",
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.0))) as _,
        ),
        (
            name_v,
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))) as _,
        ),
    ])
    .unwrap()
}

/// Rows of `(k, left v, right v)` of a join's output, sorted.
fn joined_rows(b: &RecordBatch, right_v: &str) -> Vec<(Option<i64>, Option<i64>, Option<i64>)> {
    let col = |n: &str| {
        b.column_by_name(n)
            .unwrap_or_else(|| panic!("no column {n} in {:?}", b.schema()))
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone()
    };
    let (k, l, r) = (col("k"), col("v"), col(right_v));
    let opt = |a: &Int64Array, i: usize| a.is_valid(i).then(|| a.value(i));
    let mut rows: Vec<_> = (0..b.num_rows())
        .map(|i| (opt(&k, i), opt(&l, i), opt(&r, i)))
        .collect();
    rows.sort();
    rows
}

/// Each join kind with DataFusion's rows for `l JOIN r ON l.k = r.k` of two `keyed("v")`
/// batches: `k` (the right's where only the right has the row), `v` and the right's `v_1`.
fn datafusion_joins(lb: &RecordBatch, rb: &RecordBatch) -> Vec<(data::JoinType, RecordBatch)> {
    let ctx = volley::datafusion::prelude::SessionContext::new();
    ctx.register_batch("l", lb.clone()).unwrap();
    ctx.register_batch("r", rb.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    [
        (data::JoinType::Inner, "INNER"),
        (data::JoinType::LeftOuter, "LEFT OUTER"),
        (data::JoinType::RightOuter, "RIGHT OUTER"),
        (data::JoinType::FullOuter, "FULL OUTER"),
    ]
    .into_iter()
    .map(|(how, sql)| {
        let want = rt
            .block_on(async {
                ctx.sql(&format!(
                    "SELECT coalesce(l.k, r.k) AS k, l.v AS v, r.v AS v_1 FROM l {sql} JOIN r \
                     ON l.k = r.k"
                ))
                .await?
                .collect()
                .await
            })
            .unwrap();
        (how, concat(&want))
    })
    .collect()
}

#[test]
fn joins_match_datafusion_for_every_kind() {
    let _rt = start();
    // Keys 0..40 on the left, 20..60 on the right, each twice or thrice, and some nulls.
    let left: Vec<(Option<i64>, i64)> = (0..120)
        .map(|i| ((i % 9 != 0).then_some(i % 40), i))
        .collect();
    let right: Vec<(Option<i64>, i64)> = (0..90)
        .map(|i| ((i % 11 != 0).then_some(20 + i % 40), 1000 + i))
        .collect();
    let (lb, rb) = (keyed("v", &left), keyed("v", &right));
    let ctx_small = DataContext {
        read_batch_rows: 16,
        ..DataContext::default()
    };
    let ds_left = data::from_batches((0..4).map(|i| lb.slice(i * 30, 30)).collect())
        .unwrap()
        .with_context(ctx_small.clone());
    let ds_right = data::from_batches((0..3).map(|i| rb.slice(i * 30, 30)).collect())
        .unwrap()
        .with_context(ctx_small);
    for (how, want) in datafusion_joins(&lb, &rb) {
        let joined = ds_left
            .join(&ds_right, how, &["k"], &["k"], Some(5))
            .unwrap();
        let plan = joined.explain().unwrap();
        assert!(
            plan.contains(&format!("Join: {how} on [k] = [k]")),
            "{plan}"
        );
        let got = concat(&joined.take_all().unwrap());
        let names: Vec<String> = got
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        // The right's `v` is renamed; the key appears once.
        assert_eq!(names, ["k", "v", "v_1"], "{how}");
        assert_eq!(joined_rows(&got, "v_1"), joined_rows(&want, "v_1"), "{how}");
    }
    // Bad keys name the column and the side.
    let err = ds_left
        .join(&ds_right, data::JoinType::Inner, &["nope"], &["k"], None)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"nope\" is not a column of the left"),
        "{err}"
    );
    assert!(data::JoinType::parse("sideways").is_err());
}

#[test]
fn a_join_partition_larger_than_a_join_task_may_hold_is_joined_in_chunks() {
    let _rt = start_with(2.0, |c| c.object_store_memory = Some(64 << 20));
    // One partition of 9.6 MB on the left and 8 MB on the right, for a join task that may
    // hold 2 MiB of the right (twice a 1 MiB block): the right is read in chunks, and the
    // left streams past each. Keys repeat on both sides, and some are null.
    let left: Vec<(Option<i64>, i64)> = (0..600_000)
        .map(|i| ((i % 97 != 0).then_some(i % 400_000), i))
        .collect();
    let right: Vec<(Option<i64>, i64)> = (0..500_000)
        .map(|i| {
            (
                (i % 89 != 0).then_some(200_000 + i % 350_000),
                10_000_000 + i,
            )
        })
        .collect();
    let (lb, rb) = (keyed("v", &left), keyed("v", &right));
    let ctx_small = DataContext {
        target_max_block_size: 1 << 20,
        ..DataContext::default()
    };
    let blocks = |b: &RecordBatch| {
        data::from_batches(
            (0..b.num_rows())
                .step_by(32_768)
                .map(|i| b.slice(i, 32_768.min(b.num_rows() - i)))
                .collect(),
        )
        .unwrap()
        .with_context(ctx_small.clone())
    };
    let (ds_left, ds_right) = (blocks(&lb), blocks(&rb));
    for (how, want) in datafusion_joins(&lb, &rb) {
        let joined = ds_left
            .join(&ds_right, how, &["k"], &["k"], Some(1))
            .unwrap();
        let got = concat(&joined.take_all().unwrap());
        assert!(want.num_rows() > 300_000, "{how}: {}", want.num_rows());
        assert_eq!(joined_rows(&got, "v_1"), joined_rows(&want, "v_1"), "{how}");
        let stats = joined.stats().unwrap();
        let op = stats
            .operators
            .iter()
            .find(|o| o.name.contains("JoinOp"))
            .expect("the join operator");
        // Holding the partition whole would be 17.6 MB; a chunk and a probe block are 3 MiB.
        assert!(
            op.peak_bytes < 6 << 20,
            "{how}: the join task held {} MiB at once: {stats}",
            op.peak_bytes >> 20
        );
    }
}

#[test]
fn column_names_are_taken_exactly_on_every_path() {
    let _rt = start();
    let user = Arc::new(Int64Array::from_iter_values([3, 1, 2, 1]));
    let length = Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5, 3.5]));
    let b =
        RecordBatch::try_from_iter([("UserID", user as _), ("sepal.length", length as _)]).unwrap();
    let ds = data::from_batches(vec![b]).unwrap();
    let sums = concat(
        &ds.groupby(&["UserID"])
            .sum("sepal.length")
            .unwrap()
            .sort(&["UserID"], false)
            .unwrap()
            .take_all()
            .unwrap(),
    );
    assert_eq!(i64s(&sums, "UserID"), [1, 2, 3]);
    assert_eq!(f64s(&sums, "sum(sepal.length)"), [5.0, 2.5, 0.5]);
    let kept = concat(&ds.filter_sql("UserID > 1").unwrap().take_all().unwrap());
    assert_eq!(i64s(&kept, "UserID"), [3, 2]);
    // A function DataFusion's simplifier rewrites (coalesce, into CASE) evaluates too.
    let kept = ds.filter_sql("coalesce(UserID, 0) > 1").unwrap();
    assert_eq!(kept.count().unwrap(), 2);
    let kept = ds.filter(data::ident("UserID").eq(lit(1i64))).unwrap();
    assert_eq!(kept.count().unwrap(), 2);
    let dotted = concat(
        &ds.filter_sql("\"sepal.length\" > 2")
            .unwrap()
            .take_all()
            .unwrap(),
    );
    assert_eq!(f64s(&dotted, "sepal.length"), [2.5, 3.5]);
    let picked = ds.select_columns(&["sepal.length"]).unwrap();
    assert_eq!(picked.schema().unwrap().fields().len(), 1);
    assert_eq!(
        f64s(&concat(&picked.take_all().unwrap()), "sepal.length"),
        [0.5, 1.5, 2.5, 3.5]
    );
    let renamed = ds.rename_columns(&[("UserID", "User")]).unwrap();
    assert_eq!(
        i64s(&concat(&renamed.take_all().unwrap()), "User"),
        [3, 1, 2, 1]
    );
    let dropped = ds.drop_columns(&["sepal.length"]).unwrap();
    assert_eq!(
        i64s(&concat(&dropped.take_all().unwrap()), "UserID"),
        [3, 1, 2, 1]
    );
    let doubled = ds.with_column_sql("Twice", "UserID * 2").unwrap();
    assert_eq!(
        i64s(&concat(&doubled.take_all().unwrap()), "Twice"),
        [6, 2, 4, 2]
    );
    // One projection: "Old" sees UserID before it is replaced, which keeps its place.
    let both = ds
        .with_columns_sql(&[("UserID", "\"UserID\" * 10"), ("Old", "\"UserID\"")])
        .unwrap();
    let both = concat(&both.take_all().unwrap());
    assert_eq!(both.schema().field(0).name(), "UserID");
    assert_eq!(i64s(&both, "UserID"), [30, 10, 20, 10]);
    assert_eq!(i64s(&both, "Old"), [3, 1, 2, 1]);
}

#[test]
fn write_options_codec_min_rows_per_file_and_hive_partitions() {
    use volley::io::WriteOptions;
    let _rt = start();
    let dir = std::env::temp_dir().join(format!("volley-write-opts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    // Files close as soon as they can (1-byte target); with min_rows_per_file each holds at
    // least 300 rows but the write's last.
    let ctx = DataContext {
        target_file_size: 1,
        ..DataContext::default()
    };
    let ds = data::range(1000)
        .unwrap()
        .repartition(1)
        .unwrap()
        .with_context(ctx);
    let small = ds.write_parquet(&path("small")).unwrap();
    assert!(small.files.len() > 4, "{} files", small.files.len());
    let opts = WriteOptions {
        min_rows_per_file: Some(300),
        compression: Some("zstd".into()),
        ..WriteOptions::default()
    };
    let w = ds.write_parquet_with(&path("min"), &opts).unwrap();
    let rows: Vec<u64> = w.files.iter().map(|f| f.rows).collect();
    assert_eq!(rows.iter().sum::<u64>(), 1000);
    assert!(rows[..rows.len() - 1].iter().all(|&r| r >= 300), "{rows:?}");
    let back = data::read_parquet(&[path("min")]).unwrap();
    assert_eq!(
        i64s(
            &concat(&back.sort(&["id"], false).unwrap().take_all().unwrap()),
            "id"
        ),
        (0..1000).collect::<Vec<_>>()
    );
    // Twenty tasks of about 50 rows, each too few for a file: their rows gather into files
    // of at least 120 rows, all but the last, each closed as soon as it has them.
    let many = data::range(1000).unwrap().repartition(20).unwrap();
    let opts = WriteOptions {
        min_rows_per_file: Some(120),
        ..WriteOptions::default()
    };
    let w = many.write_parquet_with(&path("gathered"), &opts).unwrap();
    let mut rows: Vec<u64> = w.files.iter().map(|f| f.rows).collect();
    rows.sort_unstable();
    assert_eq!(rows.iter().sum::<u64>(), 1000);
    assert!(
        rows[1..].iter().all(|&r| (120..180).contains(&r)),
        "{rows:?}"
    );
    assert!(rows[0] < 180 && rows.len() <= 1000 / 120 + 1, "{rows:?}");
    let back = data::read_parquet(&[path("gathered")]).unwrap();
    let ids = i64s(&concat(&back.take_all().unwrap()), "id");
    assert_eq!(ids.iter().sum::<i64>(), (0..1000i64).sum::<i64>());
    let bad = WriteOptions {
        compression: Some("brotli".into()),
        ..WriteOptions::default()
    };
    let err = ds.write_parquet_with(&path("bad"), &bad).unwrap_err();
    assert!(err.to_string().contains("brotli"), "{err}");

    // Hive partitions: a directory per value, the column left out of the files.
    let parts = data::range(100)
        .unwrap()
        .with_column_sql("bucket", "id % 3")
        .unwrap();
    let opts = WriteOptions {
        partition_cols: vec!["bucket".into()],
        ..WriteOptions::default()
    };
    let w = parts.write_parquet_with(&path("hive"), &opts).unwrap();
    let mut dirs: Vec<String> = w
        .files
        .iter()
        .map(|f| {
            let p = std::path::Path::new(&f.path);
            let d = p.parent().unwrap().file_name().unwrap();
            d.to_string_lossy().into_owned()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    assert_eq!(dirs, ["bucket=0", "bucket=1", "bucket=2"]);
    assert_eq!(w.files.iter().map(|f| f.rows).sum::<u64>(), 100);
    let err = parts
        .write_parquet_with(
            &path("nope"),
            &WriteOptions {
                partition_cols: vec!["nope".into()],
                ..WriteOptions::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("\"nope\""), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
