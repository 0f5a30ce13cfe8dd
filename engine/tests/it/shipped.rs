//! Work as data (issue 19): a task's spec, as its owner keeps it for lineage, travels as
//! bytes and runs on another runtime under its own id, so its outputs are the objects the
//! owner expects; a closure's spec, an object of another node and an unknown function are
//! refused with errors that say so.

use std::sync::Arc;

use volley::arrow::array::{Array, Int64Array, RecordBatch};
use volley::{Block, Config, Error, FunctionDescriptor, ObjectRef, Runtime, ShippedTask};

fn runtime() -> Runtime {
    let mut c = Config::builtin();
    c.num_cpus = Some(1.0);
    c.object_store_memory = Some(64 << 20);
    Runtime::start(c).unwrap()
}

fn block(n: i64) -> Block {
    let col = Arc::new(Int64Array::from_iter_values(0..n));
    let batch = RecordBatch::try_from_iter([("id", col as _)]).unwrap();
    Block::try_new(batch.schema(), vec![batch]).unwrap()
}

#[test]
fn a_task_spec_travels_as_bytes_and_runs_on_another_runtime() {
    let _lock = crate::SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    volley::shutdown();
    let scale = volley::register("shipped_scale", |v: Vec<i64>, k: i64| {
        Ok(v.iter().map(|x| x * k).collect::<Vec<i64>>())
    })
    .unwrap();
    let sum = volley::register("shipped_sum", |b: Block| {
        Ok(b.batches()
            .iter()
            .map(|b| {
                let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                ids.values().iter().sum::<i64>()
            })
            .sum::<i64>())
    })
    .unwrap();
    let a = runtime();
    let b = runtime();

    // A value argument (bincode) and an Arrow one (IPC), through bytes, run on b: the
    // outputs there are the objects a's refs name.
    let scaled = a.enter(|| scale.remote((vec![1, 2, 3], 10))).unwrap();
    let summed = a.enter(|| sum.remote((block(1000),))).unwrap();
    assert_eq!(a.enter(|| volley::get(&scaled)).unwrap(), vec![10, 20, 30]);
    assert_eq!(a.enter(|| volley::get(&summed)).unwrap(), 499_500);
    for (r, function) in [(scaled.id(), "shipped_scale"), (summed.id(), "shipped_sum")] {
        let spec = a.task_spec(r).unwrap();
        assert_eq!(
            spec.function,
            FunctionDescriptor::Registered(function.into())
        );
        assert_eq!(spec.outputs(), vec![r]);
        assert_eq!(spec.opts.name.as_deref(), Some(function));
        let shipped = ShippedTask::from_bytes(&spec.to_bytes().unwrap()).unwrap();
        assert_eq!(shipped, spec);
    }
    let on_b: Vec<ObjectRef<Vec<i64>>> =
        b.run_task_spec(a.task_spec(scaled.id()).unwrap()).unwrap();
    assert_eq!(on_b[0].id(), scaled.id());
    assert_eq!(b.enter(|| volley::get(&on_b[0])).unwrap(), vec![10, 20, 30]);
    let on_b: Vec<ObjectRef<i64>> = b.run_task_spec(a.task_spec(summed.id()).unwrap()).unwrap();
    assert_eq!(b.enter(|| volley::get(&on_b[0])).unwrap(), 499_500);
    let held = b.enter(volley::object_store_stats).unwrap().num_objects;
    drop(on_b);
    assert_eq!(
        b.enter(volley::object_store_stats).unwrap().num_objects,
        held - 1,
        "an output run for another node is freed with its last ref"
    );

    // A ref argument that lives on a is elsewhere for b (until nodes pull objects).
    let p = a.enter(|| volley::put(vec![5i64, 6])).unwrap();
    let from_ref = a.enter(|| scale.remote((&p, 2))).unwrap();
    assert_eq!(a.enter(|| volley::get(&from_ref)).unwrap(), vec![10, 12]);
    match b.run_task_spec::<Vec<i64>>(a.task_spec(from_ref.id()).unwrap()) {
        Err(Error::ObjectElsewhere { object, node }) => {
            assert_eq!(
                (object, node),
                (p.id().to_string(), a.node_id().to_string())
            )
        }
        r => panic!("expected ObjectElsewhere, got {r:?}"),
    }

    // What has no spec to ship, and what cannot run where it is sent.
    let closure = a
        .enter(|| volley::task(|x: i64| Ok(x + 1)).remote((1,)))
        .unwrap();
    a.enter(|| volley::get(&closure)).unwrap();
    match a.task_spec(closure.id()) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("volley::register"), "{m}"),
        r => panic!("expected InvalidArgument, got {r:?}"),
    }
    match a.task_spec(p.id()) {
        Err(Error::NotFound(m)) => assert!(m.contains("a put"), "{m}"),
        r => panic!("expected NotFound, got {r:?}"),
    }
    let mut unknown = a.task_spec(scaled.id()).unwrap();
    unknown.function = FunctionDescriptor::Registered("shipped_nowhere".into());
    match b.run_task_spec::<Vec<i64>>(unknown) {
        Err(Error::NotFound(m)) => assert!(m.contains("shipped_nowhere"), "{m}"),
        r => panic!("expected NotFound, got {r:?}"),
    }
    match a.run_task_spec::<Vec<i64>>(a.task_spec(scaled.id()).unwrap()) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("own task"), "{m}"),
        r => panic!("expected InvalidArgument, got {r:?}"),
    }
    assert!(matches!(
        ShippedTask::from_bytes(b"not a spec"),
        Err(Error::InvalidArgument(_))
    ));
    a.shutdown();
    b.shutdown();
}
