use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use volley::{Blame, Error, FailureCause, UserError};

use crate::start;

#[test]
fn a_task_failing_twice_succeeds_with_max_retries_3() {
    let _rt = start();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let flaky = volley::task(move || {
        if r.fetch_add(1, Ordering::SeqCst) < 2 {
            panic!("simulated crash");
        }
        Ok("ok".to_string())
    })
    .max_retries(3);
    assert_eq!(volley::get(&flaky.remote(()).unwrap()).unwrap(), "ok");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[test]
fn exhausted_retries_give_an_error_naming_the_task() {
    let _rt = start();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let always = volley::task(move || -> volley::TaskResult<u8> {
        r.fetch_add(1, Ordering::SeqCst);
        panic!("disk on fire");
    })
    .name("load_partition")
    .max_retries(2);
    let err = volley::get(&always.remote(()).unwrap()).unwrap_err();
    match &err {
        Error::TaskFailed {
            task,
            cause,
            message,
            attempts,
            payload: None,
        } => {
            assert!(task.starts_with("load_partition ("), "{task}");
            assert_eq!(*cause, FailureCause::Panic);
            assert!(message.contains("disk on fire"), "{message}");
            assert!(
                message.contains("retries.rs"),
                "panic location missing: {message}"
            );
            assert_eq!(*attempts, 3);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.blame(), Blame::UserCode);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[test]
fn user_errors_are_not_retried_without_retry_exceptions() {
    let _rt = start();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let bad = volley::task(move |path: String| -> volley::TaskResult<u64> {
        r.fetch_add(1, Ordering::SeqCst);
        let meta = std::fs::metadata(&path)?;
        Ok(meta.len())
    })
    .max_retries(3);
    let err =
        volley::get(&bad.remote(("/no/such/file.parquet".to_string(),)).unwrap()).unwrap_err();
    assert!(matches!(
        &err,
        Error::TaskFailed {
            cause: FailureCause::UserError,
            attempts: 1,
            ..
        }
    ));
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // With retry_exceptions the same error is retried up to max_retries.
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let retried = volley::task(move || -> volley::TaskResult<u8> {
        r.fetch_add(1, Ordering::SeqCst);
        Err(UserError::msg("still wrong"))
    })
    .max_retries(2)
    .retry_exceptions(true);
    let err = volley::get(&retried.remote(()).unwrap()).unwrap_err();
    assert!(err.to_string().contains("still wrong"), "{err}");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[test]
fn a_failed_dependency_fails_its_dependents() {
    let _rt = start();
    let bad = volley::task(|| -> volley::TaskResult<u32> { Err(UserError::msg("root cause")) });
    let plus = volley::task(|x: u32| Ok(x + 1));
    let a = bad.remote(()).unwrap();
    let b = plus.remote((&a,)).unwrap();
    let c = plus.remote((&b,)).unwrap();
    let err = volley::get(&c).unwrap_err();
    assert!(err.to_string().contains("root cause"), "{err}");
}
