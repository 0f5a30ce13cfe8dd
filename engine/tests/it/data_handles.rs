//! Datasets as data (`volley::data::DatasetHandle`): transformations are serializable steps
//! that give the rows the direct API gives, and a dataset lent to the node (for a task or an
//! actor in a worker process) lives exactly as long as a ref to its anchor does.

use volley::core::foreign;
use volley::data::{self, ContextSpec, DatasetHandle, Source, Step};

use crate::data::i64s;
use crate::start;

fn ids(h: &DatasetHandle) -> Vec<i64> {
    let (_, batches) = h.take(None).unwrap();
    let mut out: Vec<i64> = batches.iter().flat_map(|b| i64s(b, "id")).collect();
    out.sort_unstable();
    out
}

#[test]
fn steps_sent_as_data_give_the_rows_of_the_direct_api() {
    let _rt = start();
    let steps = vec![
        Step::Context(ContextSpec {
            max_tasks_in_flight: Some(2),
            ..ContextSpec::default()
        }),
        Step::FilterSql("id % 3 = 0".into()),
        Step::WithColumnsSql(vec![("twice".into(), "id * 2".into())]),
        Step::Sort(vec![("id".into(), true)], Vec::new()),
        Step::Limit(5),
    ];
    // Each step goes through its wire form, as a worker's request would.
    let mut h = DatasetHandle::open(Source::Range(100, None)).unwrap();
    for step in steps {
        let wire = serde_json::to_string(&step).unwrap();
        h = h.then(serde_json::from_str(&wire).unwrap(), None).unwrap();
    }
    let direct = data::range(100)
        .unwrap()
        .filter_sql("id % 3 = 0")
        .unwrap()
        .with_column_sql("twice", "id * 2")
        .unwrap()
        .sort_by(&[("id", true)])
        .unwrap()
        .limit(5);
    let (schema, got) = h.take(None).unwrap();
    let want = direct.take_all().unwrap();
    assert_eq!(schema.fields().len(), 2);
    let got_ids: Vec<i64> = got.iter().flat_map(|b| i64s(b, "id")).collect();
    let want_ids: Vec<i64> = want.iter().flat_map(|b| i64s(b, "id")).collect();
    assert_eq!(got_ids, vec![99, 96, 93, 90, 87]);
    assert_eq!(got_ids, want_ids);
    let twice: Vec<i64> = got.iter().flat_map(|b| i64s(b, "twice")).collect();
    assert_eq!(twice, vec![198, 192, 186, 180, 174]);

    // Two-dataset steps take their second dataset; a wrong arity is an error, not a panic.
    let a = DatasetHandle::open(Source::Range(3, None)).unwrap();
    let union = a.then(Step::Union, Some(&a)).unwrap();
    assert_eq!(ids(&union), vec![0, 0, 1, 1, 2, 2]);
    let err = a.then(Step::Union, None).unwrap_err().to_string();
    assert!(err.contains("union takes 2 datasets"), "{err}");
    let err = a
        .then(Step::Select(vec!["nope".into()]), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn a_lent_dataset_lives_while_a_ref_to_its_anchor_does() {
    let _rt = start();
    let h = DatasetHandle::open(Source::Range(10, None))
        .unwrap()
        .then(Step::FilterSql("id >= 7".into()), None)
        .unwrap();
    let anchor = h.lend().unwrap();
    let id = anchor.id();
    // In the node's process, the lent dataset comes back as itself.
    let back = DatasetHandle::lent(anchor.clone()).unwrap();
    assert!(back.here().is_some());
    assert_eq!(ids(&back), vec![7, 8, 9]);
    let kept = anchor.clone();
    drop(anchor);
    assert!(
        foreign::lent_value(id).is_ok(),
        "a clone of the anchor still holds it"
    );
    drop(kept);
    let err = foreign::lent_value(id).err().map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("freed")),
        "{err:?}"
    );
}
