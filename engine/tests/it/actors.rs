use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use volley::{Error, FailureCause};

use crate::start;

#[derive(Default)]
struct Log(Vec<(usize, usize)>);

#[test]
fn calls_from_each_caller_run_in_submission_order() {
    let _rt = start();
    let log = volley::actor(Log::default).spawn().unwrap();
    let callers: Vec<_> = (0..4)
        .map(|c| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut last = None;
                for i in 0..500 {
                    last = Some(
                        log.call(move |l: &mut Log| {
                            l.0.push((c, i));
                            Ok(())
                        })
                        .unwrap(),
                    );
                }
                volley::get(&last.unwrap()).unwrap();
            })
        })
        .collect();
    for c in callers {
        c.join().unwrap();
    }
    let entries = volley::get(&log.call(|l: &mut Log| Ok(l.0.clone())).unwrap()).unwrap();
    assert_eq!(entries.len(), 2000);
    for c in 0..4 {
        let seq: Vec<usize> = entries.iter().filter(|e| e.0 == c).map(|e| e.1).collect();
        assert_eq!(
            seq,
            (0..500).collect::<Vec<_>>(),
            "caller {c} saw its calls reordered"
        );
    }
}

#[test]
fn max_concurrency_runs_calls_at_the_same_time() {
    let _rt = start();
    struct Meeting(AtomicUsize);
    let a = volley::actor(|| Meeting(AtomicUsize::new(0)))
        .max_concurrency(4)
        .spawn()
        .unwrap();
    // Each call waits until all four are inside: only possible if they overlap.
    let refs: Vec<_> = (0..4)
        .map(|_| {
            a.call_shared(|m: &Meeting| {
                m.0.fetch_add(1, Ordering::SeqCst);
                let t = Instant::now();
                while m.0.load(Ordering::SeqCst) < 4 {
                    if t.elapsed() > Duration::from_secs(10) {
                        return Ok(false);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(true)
            })
            .unwrap()
        })
        .collect();
    assert_eq!(volley::get_all(&refs, None).unwrap(), vec![true; 4]);
}

struct Counter {
    value: i64,
    checkpoint: Arc<AtomicI64>,
}

impl Counter {
    fn incr(&mut self) -> i64 {
        self.value += 1;
        self.checkpoint.store(self.value, Ordering::SeqCst);
        self.value
    }
}

#[test]
fn restart_after_panic_rebuilds_state_from_the_constructor() {
    let _rt = start();
    let checkpoint = Arc::new(AtomicI64::new(0));
    let built = Arc::new(AtomicUsize::new(0));
    let (cp, b) = (checkpoint.clone(), built.clone());
    let c = volley::actor(move || {
        b.fetch_add(1, Ordering::SeqCst);
        Counter {
            value: cp.load(Ordering::SeqCst),
            checkpoint: cp.clone(),
        }
    })
    .max_restarts(1)
    .spawn()
    .unwrap();
    for _ in 0..3 {
        c.call(|c: &mut Counter| Ok(c.incr())).unwrap();
    }
    let boom = c
        .call(|_: &mut Counter| -> volley::TaskResult<()> { panic!("boom") })
        .unwrap();
    match volley::get(&boom) {
        Err(Error::TaskFailed {
            cause: FailureCause::Panic,
            message,
            task,
            ..
        }) => {
            assert!(message.contains("boom"), "{message}");
            assert!(task.contains("Counter"), "{task}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    let r = c.call(|c: &mut Counter| Ok(c.incr())).unwrap();
    assert_eq!(
        volley::get(&r).unwrap(),
        4,
        "state rebuilt from the checkpoint"
    );
    assert_eq!(built.load(Ordering::SeqCst), 2);
    assert_eq!(c.num_restarts(), 1);
    // No restarts left: the next panic kills it, and later calls fail with ActorDied.
    let boom = c
        .call(|_: &mut Counter| -> volley::TaskResult<()> { panic!("again") })
        .unwrap();
    assert!(volley::get(&boom).is_err());
    let after = c.call(|c: &mut Counter| Ok(c.incr())).unwrap();
    match volley::get(&after) {
        Err(Error::ActorDied { reason, .. }) => assert!(reason.contains("again"), "{reason}"),
        other => panic!("expected ActorDied, got {other:?}"),
    }
    assert!(!c.is_alive());
}

#[test]
fn a_call_interrupted_by_a_panic_is_retried_on_the_new_instance() {
    let _rt = start();
    let attempts = Arc::new(AtomicUsize::new(0));
    let c = volley::actor(|| 0u64)
        .max_restarts(-1)
        .max_task_retries(2)
        .spawn()
        .unwrap();
    let a = attempts.clone();
    let r = c
        .call(move |_: &mut u64| {
            if a.fetch_add(1, Ordering::SeqCst) < 2 {
                panic!("flaky");
            }
            Ok("done".to_string())
        })
        .unwrap();
    assert_eq!(volley::get(&r).unwrap(), "done");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(c.num_restarts(), 2);
}

#[test]
fn named_actors_are_found_by_name_and_type() {
    let _rt = start();
    let a = volley::actor(|| 41i64).name("answer").spawn().unwrap();
    let b = volley::get_actor::<i64>("answer").unwrap();
    assert_eq!(b.id(), a.id());
    let r = b.call(|v: &mut i64| {
        *v += 1;
        Ok(*v)
    });
    assert_eq!(volley::get(&r.unwrap()).unwrap(), 42);
    assert!(matches!(
        volley::get_actor::<String>("answer"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        volley::get_actor::<i64>("question"),
        Err(Error::NotFound(_))
    ));
    assert!(
        volley::actor(|| 0i64).name("answer").spawn().is_err(),
        "names are unique"
    );
}

#[test]
fn kill_fails_queued_calls_and_frees_the_name() {
    let _rt = start();
    let a = volley::actor(|| 0u32).name("victim").spawn().unwrap();
    let slow = a
        .call(|_: &mut u32| {
            std::thread::sleep(Duration::from_millis(200));
            Ok(1u32)
        })
        .unwrap();
    let queued = a.call(|_: &mut u32| Ok(2u32)).unwrap();
    volley::kill(&a);
    for r in [&slow, &queued] {
        assert!(matches!(volley::get(r), Err(Error::ActorDied { .. })));
    }
    assert!(matches!(
        volley::get_actor::<u32>("victim"),
        Err(Error::NotFound(_))
    ));
    let later = a.call(|_: &mut u32| Ok(3u32)).unwrap();
    assert!(matches!(volley::get(&later), Err(Error::ActorDied { .. })));
    // The name can be used again.
    volley::actor(|| 0u32).name("victim").spawn().unwrap();
}

#[test]
fn actors_hold_their_resources_and_give_them_back() {
    let _rt = start();
    let cpu = volley::ResourceName::Cpu;
    let a = volley::actor(|| ()).num_cpus(1.5).spawn().unwrap();
    volley::get(&a.call(|_: &mut ()| Ok(())).unwrap()).unwrap();
    assert_eq!(volley::available_resources().unwrap().get(&cpu), 0.5);
    drop(a);
    let t = Instant::now();
    while volley::available_resources().unwrap().get(&cpu) != 2.0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "actor kept its CPUs after its handles went"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Holds the actor's thread in a call until the returned closure is called, so that the
/// calls queued meanwhile are all waiting when it is released.
fn hold<A: Send + Sync + 'static>(a: &volley::ActorHandle<A>) -> impl FnOnce() {
    let gate = Arc::new(AtomicUsize::new(0));
    let g = gate.clone();
    let held = a
        .call(move |_: &mut A| {
            while g.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
        .unwrap();
    move || {
        gate.store(1, Ordering::SeqCst);
        volley::get(&held).unwrap();
    }
}

/// An actor whose instance is its generation (0, then 1 after a restart), with one restart
/// and one retry per call; and the count of instances built.
fn generations() -> (volley::ActorHandle<usize>, Arc<AtomicUsize>) {
    let built = Arc::new(AtomicUsize::new(0));
    let b = built.clone();
    let a = volley::actor(move || b.fetch_add(1, Ordering::SeqCst))
        .max_restarts(1)
        .max_task_retries(1)
        .spawn()
        .unwrap();
    (a, built)
}

#[test]
fn pipelined_calls_start_ahead_and_finish_in_order() {
    let _rt = start();
    let started = Arc::new(AtomicUsize::new(0));
    let a = volley::actor(|| ()).spawn().unwrap();
    // Hold the actor's thread until every call is queued.
    let release = hold(&a);
    let refs: Vec<_> = (0..50usize)
        .map(|i| {
            let started = started.clone();
            a.call_pipelined(1, move |_: &()| {
                started.fetch_add(1, Ordering::SeqCst);
                let started = started.clone();
                // The first call finishes only once later calls were started: only
                // possible if the actor starts calls ahead of finishing them.
                Ok(move || {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while i == 0 && started.load(Ordering::SeqCst) < 10 {
                        assert!(Instant::now() < deadline, "calls were not started ahead");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Ok(i * 2)
                })
            })
            .unwrap()
        })
        .collect();
    release();
    let got: Vec<usize> = refs.iter().map(|r| volley::get(r).unwrap()).collect();
    assert_eq!(got, (0..50).map(|i| i * 2).collect::<Vec<_>>());
}

#[test]
fn pipelined_calls_lost_with_their_instance_are_retried_in_order() {
    let _rt = start();
    // The first instance "loses its worker" at call 5.
    let (a, built) = generations();
    let refs: Vec<_> = (0..40usize)
        .map(|i| {
            a.call_pipelined(1, move |generation: &usize| {
                let generation = *generation;
                Ok(move || {
                    if generation == 0 && i == 5 {
                        return Err(volley::UserError::worker_died("the worker went away"));
                    }
                    Ok((i, generation))
                })
            })
            .unwrap()
        })
        .collect();
    let got: Vec<(usize, usize)> = refs.iter().map(|r| volley::get(r).unwrap()).collect();
    assert_eq!(built.load(Ordering::SeqCst), 2, "one restart for one death");
    assert_eq!(a.num_restarts(), 1);
    for (i, (j, _)) in got.iter().enumerate() {
        assert_eq!(i, *j);
    }
    // Call 5 and the calls started after it ran again on the new instance.
    assert!(got[5..].iter().all(|(_, g)| *g == 1), "{got:?}");
}

#[test]
fn pipelined_calls_lost_without_restarts_fail_with_actor_died() {
    let _rt = start();
    let a = volley::actor(|| ()).spawn().unwrap();
    let refs: Vec<_> = (0..20usize)
        .map(|i| {
            a.call_pipelined(1, move |_: &()| {
                Ok(move || {
                    if i == 3 {
                        return Err(volley::UserError::worker_died("the worker went away"));
                    }
                    Ok(i)
                })
            })
            .unwrap()
        })
        .collect();
    for (i, r) in refs.iter().enumerate() {
        match volley::get(r) {
            Ok(v) => assert!(i < 3 && v == i, "call {i} gave {v}"),
            Err(Error::ActorDied { reason, .. }) => {
                assert!(i >= 3, "call {i} failed");
                assert!(reason.contains("went away"), "{reason}");
            }
            Err(e) => panic!("call {i}: {e}"),
        }
    }
    assert!(!a.is_alive());
}

#[test]
fn pipelined_calls_may_have_several_returns() {
    let _rt = start();
    let a = volley::actor(|| 7usize).spawn().unwrap();
    let refs = a
        .call_pipelined(2, |n: &usize| {
            let n = *n;
            Ok(move || Ok(volley::Multi(vec![n, n * 2])))
        })
        .unwrap();
    let got: Vec<usize> = refs.iter().map(|r| volley::get(r).unwrap()).collect();
    assert_eq!(got, vec![7, 14]);
    // A count that does not match fails each output with the reason.
    let wrong = a
        .call_pipelined(3, |_: &usize| Ok(|| Ok(volley::Multi(vec![1usize]))))
        .unwrap();
    for r in &wrong {
        let err = volley::get(r).unwrap_err().to_string();
        assert!(err.contains("num_returns=3"), "{err}");
    }
    // A single value cannot have two returns.
    assert!(a.call_pipelined(2, |_: &usize| Ok(|| Ok(1usize))).is_err());
}

#[test]
fn calls_finished_before_a_failed_start_are_not_run_again() {
    let _rt = start();
    let (a, built) = generations();
    let release = hold(&a);
    // Calls 0..30 start; call 30 cannot be sent (its worker went away after running them).
    let refs: Vec<_> = (0..60usize)
        .map(|i| {
            a.call_pipelined(1, move |generation: &usize| {
                let generation = *generation;
                if generation == 0 && i == 30 {
                    return Err(volley::UserError::worker_died("the worker went away"));
                }
                Ok(move || Ok((i, generation)))
            })
            .unwrap()
        })
        .collect();
    release();
    let got: Vec<(usize, usize)> = refs.iter().map(|r| volley::get(r).unwrap()).collect();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (0..60).collect::<Vec<_>>()
    );
    assert!(
        got[..30].iter().all(|g| g.1 == 0),
        "finished calls ran again: {got:?}"
    );
    assert!(got[30..].iter().all(|g| g.1 == 1), "{got:?}");
    assert_eq!(built.load(Ordering::SeqCst), 2);
}
