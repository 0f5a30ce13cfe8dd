//! Objects with owners (issue 19): a task output whose only copy is lost is rebuilt by
//! running its task again from the spec its owner kept (lineage reconstruction), lost
//! arguments first; what has no lineage stays lost, with an error naming why; an object of
//! another node is elsewhere, not lost.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use volley::Error;

static MADE: AtomicUsize = AtomicUsize::new(0);

/// Deletes every spill file under `dir`: the objects spilled there are lost.
fn lose_spill_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += lose_spill_files(&p);
        } else {
            std::fs::remove_file(&p).unwrap();
            n += 1;
        }
    }
    n
}

fn spill_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("volley-lineage-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_lost_task_output_is_rebuilt_from_its_lineage() {
    let dir = spill_dir("rebuilt");
    let url = dir.to_string_lossy().into_owned();
    let _rt = crate::start_with(2.0, |c| c.spill_url = Some(url));
    let make = volley::task(|n: u8| {
        MADE.fetch_add(1, Ordering::SeqCst);
        Ok(vec![n; 1 << 20])
    });
    let double = volley::task(|v: Vec<u8>| Ok(v.iter().map(|x| x * 2).collect::<Vec<u8>>()));

    let r = make.remote((7,)).unwrap();
    assert_eq!(volley::get(&r).unwrap(), vec![7u8; 1 << 20]);
    let made = MADE.load(Ordering::SeqCst);
    assert!(volley::spill(std::slice::from_ref(&r)).unwrap() > 0);
    assert_eq!(lose_spill_files(&dir), 1);
    assert_eq!(volley::get(&r).unwrap(), vec![7u8; 1 << 20]);
    assert_eq!(MADE.load(Ordering::SeqCst), made + 1, "the task ran again");

    // A lost output whose task's argument is lost too: the argument is rebuilt first.
    let a = make.remote((3,)).unwrap();
    let b = double.remote((&a,)).unwrap();
    assert_eq!(volley::get(&b).unwrap(), vec![6u8; 1 << 20]);
    let made = MADE.load(Ordering::SeqCst);
    volley::spill(std::slice::from_ref(&a)).unwrap();
    volley::spill(std::slice::from_ref(&b)).unwrap();
    assert_eq!(lose_spill_files(&dir), 2);
    assert_eq!(volley::get(&b).unwrap(), vec![6u8; 1 << 20]);
    assert_eq!(
        MADE.load(Ordering::SeqCst),
        made + 1,
        "the argument was rebuilt once"
    );
    assert_eq!(volley::get(&a).unwrap(), vec![3u8; 1 << 20]);

    // Without lineage an object stays lost, and the error says why: a put, and the output
    // of a task that may not run again.
    let p = volley::put(vec![1u8; 1 << 20]).unwrap();
    let once = make.clone().max_retries(0).remote((9,)).unwrap();
    volley::get(&once).unwrap();
    volley::spill(std::slice::from_ref(&p)).unwrap();
    volley::spill(std::slice::from_ref(&once)).unwrap();
    assert_eq!(lose_spill_files(&dir), 2);
    for lost in [volley::get(&p).map(drop), volley::get(&once).map(drop)] {
        match lost {
            Err(Error::ObjectLost { reason, .. }) => {
                assert!(reason.contains("spill file"), "{reason}")
            }
            other => panic!("expected ObjectLost, got {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_object_of_another_node_is_elsewhere_not_lost() {
    let _rt = crate::start();
    let other = volley::Runtime::start(volley::Config::builtin()).unwrap();
    let theirs = other.enter(|| volley::put(5u8)).unwrap();
    match volley::get(&theirs) {
        Err(Error::ObjectElsewhere { node, .. }) => assert_eq!(node, other.node_id().to_string()),
        r => panic!("expected ObjectElsewhere, got {r:?}"),
    }
    assert_eq!(other.enter(|| volley::get(&theirs)).unwrap(), 5);
}
