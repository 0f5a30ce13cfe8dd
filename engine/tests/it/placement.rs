use std::time::Duration;

use volley::{Error, PlacementGroupState, PlacementStrategy, ResourceName, ResourceSet};

use crate::start;

fn cpus(n: f64) -> ResourceSet {
    ResourceSet::new().with(ResourceName::Cpu, n)
}

#[test]
fn bundles_are_reserved_atomically_and_used_by_tasks() {
    let _rt = start();
    let pg =
        volley::placement_group(vec![cpus(1.0), cpus(0.5)], PlacementStrategy::StrictPack).unwrap();
    assert!(pg.wait(Duration::from_secs(5)).unwrap());
    assert!(volley::get_timeout(&pg.ready(), Duration::from_secs(1)).unwrap());
    assert_eq!(pg.state().unwrap(), PlacementGroupState::Created);
    assert_eq!(
        volley::available_resources()
            .unwrap()
            .get(&ResourceName::Cpu),
        0.5
    );
    // A task in bundle 1 (0.5 CPU) runs from the reservation, not the node.
    let f = volley::task(|| Ok(volley::available_resources()?.get(&ResourceName::Cpu)))
        .num_cpus(0.5)
        .scheduling_strategy(pg.strategy_for(Some(1)));
    assert_eq!(volley::get(&f.remote(()).unwrap()).unwrap(), 0.5);
    // Too big for the bundle: refused.
    let g = volley::task(|| Ok(()))
        .num_cpus(1.0)
        .scheduling_strategy(pg.strategy_for(Some(1)));
    assert!(matches!(g.remote(()), Err(Error::Infeasible(_))));
    volley::remove_placement_group(&pg).unwrap();
    assert_eq!(
        volley::available_resources()
            .unwrap()
            .get(&ResourceName::Cpu),
        2.0
    );
    assert_eq!(pg.state().unwrap(), PlacementGroupState::Removed);
}

#[test]
fn an_infeasible_group_stays_pending_and_ready_times_out() {
    let _rt = start();
    // Two bundles on distinct nodes: a one-node cluster can never place it.
    let pg = volley::placement_group(vec![cpus(1.0), cpus(1.0)], PlacementStrategy::StrictSpread)
        .unwrap();
    assert!(!pg.wait(Duration::from_millis(100)).unwrap());
    assert!(matches!(
        volley::get_timeout(&pg.ready(), Duration::from_millis(50)),
        Err(Error::GetTimeout(..))
    ));
    assert_eq!(
        pg.state().unwrap(),
        PlacementGroupState::Pending { infeasible: true }
    );
    // Nothing was reserved.
    assert_eq!(
        volley::available_resources()
            .unwrap()
            .get(&ResourceName::Cpu),
        2.0
    );
}

#[test]
fn a_group_waits_for_resources_then_is_placed() {
    let _rt = start();
    let hog = volley::actor(|| ()).num_cpus(2.0).spawn().unwrap();
    volley::get(&hog.call(|_: &mut ()| Ok(())).unwrap()).unwrap();
    let pg = volley::placement_group(vec![cpus(1.0)], PlacementStrategy::Pack).unwrap();
    assert!(!pg.wait(Duration::from_millis(50)).unwrap());
    assert_eq!(
        pg.state().unwrap(),
        PlacementGroupState::Pending { infeasible: false }
    );
    volley::kill(&hog);
    assert!(pg.wait(Duration::from_secs(10)).unwrap());
    // Actors can live in a bundle too.
    let a = volley::actor(|| 7u8)
        .num_cpus(1.0)
        .scheduling_strategy(pg.strategy_for(Some(0)))
        .spawn()
        .unwrap();
    assert_eq!(
        volley::get(&a.call(|v: &mut u8| Ok(*v)).unwrap()).unwrap(),
        7
    );
}
