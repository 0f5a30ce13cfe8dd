use std::time::{Duration, Instant};

use volley::{CancelOptions, Error, Multi};

use crate::{start, start_with};

#[test]
fn fan_out_fan_in_of_100k_trivial_tasks() {
    let _rt = start();
    let inc = volley::task(|x: u64| Ok(x + 1));
    let refs: Vec<_> = (0..100_000u64).map(|i| inc.remote((i,)).unwrap()).collect();
    let values = volley::get_all(&refs, None).unwrap();
    assert_eq!(values.len(), 100_000);
    assert_eq!(values.iter().sum::<u64>(), (1..=100_000u64).sum::<u64>());
    // Fan in: one task over all results.
    let sum = volley::task(|v: Vec<u64>| Ok(v.iter().sum::<u64>()));
    assert_eq!(
        volley::get(&sum.remote((values,)).unwrap()).unwrap(),
        5_000_050_000
    );
    drop(refs);
    assert_eq!(volley::object_store_stats().unwrap().num_objects, 0);
}

#[test]
fn dependency_chain_of_10k() {
    let _rt = start();
    let inc = volley::task(|x: u64| Ok(x + 1));
    let mut r = volley::put(0u64).unwrap();
    for _ in 0..10_000 {
        r = inc.remote((&r,)).unwrap();
    }
    assert_eq!(
        volley::get_timeout(&r, Duration::from_secs(120)).unwrap(),
        10_000
    );
}

#[test]
fn tasks_submit_tasks_three_levels_deep() {
    // One CPU: parents block in get while children run, so a parent must give its CPU back.
    let _rt = start_with(1.0, |_| {});
    let top = volley::task(move |x: u64| {
        let mid = volley::task(move |x: u64| {
            let leaf = volley::task(|x: u64| Ok(x * 2));
            let a = leaf.remote((x,))?;
            let b = leaf.remote((x + 1,))?;
            Ok(volley::get(&a)? + volley::get(&b)?)
        });
        let refs: Vec<_> = (0..3)
            .map(|i| mid.remote((x + i,)))
            .collect::<Result<_, _>>()?;
        Ok(volley::get_all(&refs, None)?.into_iter().sum::<u64>())
    });
    let r = top.remote((10,)).unwrap();
    // mid(x) = 2x + 2(x+1) = 4x + 2; top(10) = mid(10) + mid(11) + mid(12) = 42 + 46 + 50
    assert_eq!(
        volley::get_timeout(&r, Duration::from_secs(60)).unwrap(),
        138
    );
}

#[test]
fn wait_honours_num_returns_and_timeouts() {
    let _rt = start();
    let gate = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let g = gate.clone();
    let slow = volley::task(move |x: u32| {
        while !g.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(x)
    })
    .num_cpus(0.0);
    let fast = volley::task(|x: u32| Ok(x)).num_cpus(0.0);
    let refs = vec![
        slow.remote((1,)).unwrap(),
        fast.remote((2,)).unwrap(),
        slow.remote((3,)).unwrap(),
        fast.remote((4,)).unwrap(),
    ];
    let (ready, rest) = volley::wait(&refs, 2, Some(Duration::from_secs(30))).unwrap();
    assert_eq!(ready.len(), 2);
    assert_eq!(volley::get_all(&ready, None).unwrap(), vec![2, 4]);
    assert_eq!(rest.len(), 2);
    // Asking for 3 while only 2 can be ready: returns after the timeout with what is ready.
    let t = Instant::now();
    let (ready, rest) = volley::wait(&refs, 3, Some(Duration::from_millis(200))).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!((ready.len(), rest.len()), (2, 2));
    // get with a timeout on a pending object.
    match volley::get_timeout(&refs[0], Duration::from_millis(50)) {
        Err(Error::GetTimeout(..)) => {}
        other => panic!("expected GetTimeout, got {other:?}"),
    }
    gate.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ready, rest) = volley::wait(&refs, 4, None).unwrap();
    assert_eq!((ready.len(), rest.len()), (4, 0));
    assert!(matches!(
        volley::wait(&refs, 5, None),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn multiple_returns_and_type_errors() {
    let _rt = start();
    let split = volley::task(|n: u32| Ok(Multi((0..n).collect::<Vec<u32>>()))).num_returns(3);
    let refs = split.remote((3,)).unwrap();
    assert_eq!(volley::get_all(&refs, None).unwrap(), vec![0, 1, 2]);
    // The function returns 2 values but 3 were declared: an error naming the task.
    let refs = split.remote((2,)).unwrap();
    let err = volley::get(&refs[0]).unwrap_err();
    assert!(
        err.to_string()
            .contains("returned 2 values but num_returns=3"),
        "{err}"
    );
    // A single-return function with num_returns != 1 is refused at submission.
    let one = volley::task(|| Ok(1u8)).num_returns(2);
    assert!(matches!(one.remote(()), Err(Error::InvalidArgument(_))));
}

#[test]
fn registered_functions_run_by_name() {
    let _rt = start();
    let _ = volley::register("it_mul", |a: i64, b: i64| Ok(a * b));
    let f = volley::function::<(i64, i64), i64>("it_mul").unwrap();
    let r = f.remote((6, 7)).unwrap();
    assert_eq!(volley::get(&r).unwrap(), 42);
    let wrong = volley::function::<(i64,), i64>("it_mul");
    assert!(matches!(wrong, Err(Error::InvalidArgument(m)) if m.contains("signature")));
    assert!(matches!(
        volley::function::<(), i64>("nope"),
        Err(Error::NotFound(_))
    ));
    assert!(volley::register("it_mul", |a: i64| Ok(a)).is_err());
}

#[test]
fn refs_nested_in_values_stay_refs() {
    let _rt = start();
    let inner = volley::put(String::from("inside")).unwrap();
    let outer = volley::put(vec![inner.clone()]).unwrap();
    let inner_id = inner.id();
    drop(inner);
    // The container keeps the nested object alive.
    let task = volley::task(|refs: Vec<volley::ObjectRef<String>>| {
        Ok(volley::get(&refs[0])?.to_uppercase())
    });
    let r = task.remote((&outer,)).unwrap();
    assert_eq!(volley::get(&r).unwrap(), "INSIDE");
    let got = volley::get(&outer).unwrap();
    assert_eq!(got[0].id(), inner_id);
    drop((got, outer, r));
    assert_eq!(volley::object_store_stats().unwrap().num_objects, 0);
}

#[test]
fn a_refused_task_gives_back_the_refs_nested_in_its_arguments() {
    let _rt = start();
    let inner = volley::put(String::from("inside")).unwrap();
    let task = volley::task(|refs: Vec<volley::ObjectRef<String>>| Ok(refs.len())).num_cpus(64.0);
    assert!(matches!(
        task.remote((vec![inner.clone()],)),
        Err(Error::Infeasible(_))
    ));
    drop(inner);
    assert_eq!(volley::object_store_stats().unwrap().num_objects, 0);
}

#[test]
fn streaming_returns_yield_blocks_one_by_one_with_backpressure() {
    let _rt = start();
    let produced = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let p = produced.clone();
    let producer = volley::streaming_task(move |out: &volley::Emitter<'_, u32>, n: u32| {
        for i in 0..n {
            out.emit(i)?;
            p.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    })
    .generator_backpressure_num_objects(2);
    let mut it = producer.remote((10,)).unwrap();
    let first = it.next().unwrap().unwrap();
    assert_eq!(volley::get(&first).unwrap(), 0);
    // With 2 unconsumed outputs at most, the producer cannot run ahead to the end.
    std::thread::sleep(Duration::from_millis(100));
    assert!(produced.load(std::sync::atomic::Ordering::SeqCst) <= 4);
    let rest: Vec<u32> = it.map(|r| volley::get(&r.unwrap()).unwrap()).collect();
    assert_eq!(rest, (1..10).collect::<Vec<_>>());

    // A dropped consumer stops the producer instead of hanging it.
    let p2 = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let p = p2.clone();
    let endless = volley::streaming_task(move |out: &volley::Emitter<'_, u32>| {
        let mut i = 0;
        loop {
            out.emit(i)?;
            p.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            i += 1;
        }
    })
    .generator_backpressure_num_objects(1)
    .max_retries(0);
    let mut it = endless.remote(()).unwrap();
    let _ = it.next().unwrap().unwrap();
    let task = it.task_id();
    drop(it);
    let t = Instant::now();
    // The task ends (its resources come back) within a bounded time.
    while volley::available_resources()
        .unwrap()
        .get(&volley::ResourceName::Cpu)
        < 2.0
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "producer of task {task} never stopped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(p2.load(std::sync::atomic::Ordering::SeqCst) < 10);
}

#[test]
fn cancel_fails_outputs_and_stops_cooperative_tasks() {
    let _rt = start_with(1.0, |_| {});
    let spin = volley::task(|| {
        let t = Instant::now();
        while !volley::is_cancelled() {
            if t.elapsed() > Duration::from_secs(30) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(true)
    });
    let running = spin.remote(()).unwrap();
    let queued = spin.remote(()).unwrap(); // waits: only 1 CPU
    volley::cancel(&queued, CancelOptions::default()).unwrap();
    volley::cancel(
        &running,
        CancelOptions {
            force: false,
            recursive: true,
        },
    )
    .unwrap();
    for r in [&running, &queued] {
        match volley::get_timeout(r, Duration::from_secs(10)) {
            Err(Error::TaskCancelled(name)) => assert!(name.contains("{{closure}}"), "{name}"),
            other => panic!("expected TaskCancelled, got {other:?}"),
        }
    }
}

#[test]
fn infeasible_demands_are_refused_with_a_clear_error() {
    let _rt = start();
    let f = volley::task(|| Ok(1u8)).num_cpus(8.0);
    match f.remote(()) {
        Err(Error::Infeasible(m)) => assert!(m.contains("CPU: 8"), "{m}"),
        other => panic!("expected Infeasible, got {other:?}"),
    }
    let g = volley::task(|| Ok(1u8)).resource("TPU", 1.0);
    assert!(matches!(g.remote(()), Err(Error::Infeasible(_))));
    let h = volley::task(|| Ok(1u8)).num_cpus(-1.0);
    assert!(matches!(h.remote(()), Err(Error::InvalidArgument(_))));
}

#[test]
fn fractional_cpus_run_concurrently() {
    let _rt = start_with(1.0, |_| {});
    let running = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let f = volley::task(move || {
        let now = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        p.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        r.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    })
    .num_cpus(0.25);
    let refs: Vec<_> = (0..8).map(|_| f.remote(()).unwrap()).collect();
    volley::get_all(&refs, None).unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=4).contains(&peak),
        "peak concurrency {peak} with 4 quarter-CPU slots"
    );
}

#[test]
fn refs_returned_by_a_task_outlive_the_task() {
    let _rt = start();
    let make = volley::task(|n: u8| {
        let refs: Vec<volley::ObjectRef<u8>> = (0..n).map(volley::put).collect::<Result<_, _>>()?;
        Ok(refs)
    });
    let out = make.remote((3,)).unwrap();
    let refs = volley::get(&out).unwrap();
    assert_eq!(volley::get_all(&refs, None).unwrap(), vec![0, 1, 2]);
    drop((out, refs));
    assert_eq!(volley::object_store_stats().unwrap().num_objects, 0);
}

#[test]
fn a_tasks_resources_are_free_once_its_result_can_be_read() {
    let _rt = start();
    let all = volley::task(|i: u64| Ok(i)).num_cpus(2.0);
    for i in 0..3000u64 {
        assert_eq!(volley::get(&all.remote((i,)).unwrap()).unwrap(), i);
        let free = volley::available_resources()
            .unwrap()
            .get(&volley::ResourceName::Cpu);
        assert_eq!(free, 2.0, "after task {i}, its CPUs were still held");
    }
}
