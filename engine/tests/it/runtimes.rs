//! Two runtimes in one process (issue 19): each `volley::Runtime` has its own node — store,
//! scheduler, worker threads, session directory and shared-memory prefix — and the free
//! functions run on the runtime the calling thread entered (or whose task it runs).

use std::path::PathBuf;

use volley::arrow::array::{Array, Int64Array};
use volley::{Config, Runtime};

use crate::shm_segments;

fn config(num_cpus: f64, store: u64) -> Config {
    let mut c = Config::builtin();
    c.num_cpus = Some(num_cpus);
    c.object_store_memory = Some(store);
    c
}

/// What the runtime leaves on disk: its session directory and its segments.
fn leftovers(rt: &Runtime) -> (PathBuf, String) {
    let ctx = rt.enter(volley::get_runtime_context).unwrap();
    (ctx.session_dir, format!("volley-{}-", ctx.node_id))
}

/// Sum of `id * 2` over `0..n`, through a data pipeline on the current runtime.
fn pipeline_sum(n: u64) -> i64 {
    let ds = volley::data::range(n)
        .unwrap()
        .map_batches("double", None, |b| {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let doubled = Int64Array::from_iter_values(ids.values().iter().map(|v| v * 2));
            Ok(volley::arrow::array::RecordBatch::try_from_iter([(
                "double",
                std::sync::Arc::new(doubled) as _,
            )])?)
        });
    ds.take_all()
        .unwrap()
        .iter()
        .map(|b| {
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            (0..col.len()).map(|i| col.value(i)).sum::<i64>()
        })
        .sum()
}

#[test]
fn two_runtimes_in_one_process_each_with_their_own_store() {
    // Other tests count the process's threads; under `cargo test` they share this process.
    let _lock = crate::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    volley::shutdown();
    let a = Runtime::start(config(2.0, 256 << 20)).unwrap();
    let b = Runtime::start(config(1.0, 128 << 20)).unwrap();
    assert_ne!(a.node_id(), b.node_id());
    // No default runtime: outside `enter` the free functions have none.
    assert!(matches!(
        volley::put(1u8),
        Err(volley::Error::NotInitialized)
    ));

    // Each store holds its own objects; a ref of one is not an object of the other.
    let xa = a.enter(|| volley::put(vec![7u8; 4096])).unwrap();
    let xb = b.enter(|| volley::put(vec![9u8; 16])).unwrap();
    let stats = |rt: &Runtime| rt.enter(volley::object_store_stats).unwrap();
    assert_eq!((stats(&a).num_objects, stats(&b).num_objects), (1, 1));
    assert_eq!((stats(&a).budget, stats(&b).budget), (256 << 20, 128 << 20));
    assert_eq!(a.enter(|| volley::get(&xa)).unwrap(), vec![7u8; 4096]);
    assert!(
        b.enter(|| volley::get_timeout(&xa, std::time::Duration::from_millis(50)))
            .is_err()
    );
    let cpus = |rt: &Runtime| {
        rt.enter(volley::cluster_resources)
            .unwrap()
            .get(&volley::ResourceName::Cpu)
    };
    assert_eq!((cpus(&a), cpus(&b)), (2.0, 1.0));

    // Tasks run on their runtime's threads, and what they call runs there too.
    let whose = volley::task(|x: u64| {
        let inner = volley::put(x)?;
        let node = volley::get_runtime_context()?.node_id.to_string();
        Ok((node, volley::get(&inner)?))
    });
    let on = |rt: &Runtime| {
        rt.enter(|| volley::get(&whose.remote((5,)).unwrap()))
            .unwrap()
    };
    assert_eq!(on(&a), (a.node_id().to_string(), 5));
    assert_eq!(on(&b), (b.node_id().to_string(), 5));

    // Actors, and both runtimes busy at once from two threads.
    let counter = b.enter(|| volley::actor(|| 0u64).spawn()).unwrap();
    std::thread::scope(|s| {
        let ta = s.spawn(|| {
            a.enter(|| {
                let refs: Vec<_> = (0..200).map(|i| whose.remote((i,)).unwrap()).collect();
                volley::get_all(&refs, None).unwrap()
            })
        });
        let tb = s.spawn(|| {
            b.enter(|| {
                let refs: Vec<_> = (0..200)
                    .map(|_| {
                        counter
                            .call(|n: &mut u64| {
                                *n += 1;
                                Ok(*n)
                            })
                            .unwrap()
                    })
                    .collect();
                volley::get_all(&refs, None).unwrap()
            })
        });
        let got_a = ta.join().unwrap();
        assert!(
            got_a
                .iter()
                .all(|(node, _)| *node == a.node_id().to_string())
        );
        assert_eq!(
            got_a.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            (0..200).collect::<Vec<_>>()
        );
        assert_eq!(tb.join().unwrap(), (1..=200).collect::<Vec<_>>());
    });

    // A data pipeline on each.
    let expected: i64 = (0..10_000i64).map(|i| i * 2).sum();
    assert_eq!(a.enter(|| pipeline_sum(10_000)), expected);
    assert_eq!(b.enter(|| pipeline_sum(10_000)), expected);

    // Stopping one leaves the other running; each leaves nothing behind.
    let (dir_a, prefix_a) = leftovers(&a);
    let (dir_b, prefix_b) = leftovers(&b);
    assert!(dir_a.exists() && dir_b.exists() && dir_a != dir_b);
    drop(xa);
    a.shutdown();
    assert!(!dir_a.exists() && shm_segments(&prefix_a) == 0);
    assert_eq!(b.enter(|| volley::get(&xb)).unwrap(), vec![9u8; 16]);
    drop((xb, counter));
    drop(b); // an owned runtime stops when dropped
    assert!(!dir_b.exists() && shm_segments(&prefix_b) == 0);
}
