//! Placement groups: bundles of resources reserved atomically, all or nothing.
//!
//! [`place`] is pure: given the bundles, the strategy and the nodes' available resources it
//! returns a node for every bundle, or `None` when the group cannot be placed now. The
//! scheduler applies a placement under its lock, so a group never holds part of its bundles.

use std::sync::Arc;
use std::time::Duration;

use crate::core::api::ObjectRef;
use crate::core::ids::{NodeId, PlacementGroupId};
use crate::core::resources::ResourceSet;
use crate::error::Result;

/// How bundles spread over nodes (Ray's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PlacementStrategy {
    /// As few nodes as possible; best effort.
    #[default]
    Pack,
    /// As many nodes as possible; best effort.
    Spread,
    /// All bundles on one node, or not at all.
    StrictPack,
    /// Every bundle on a different node, or not at all.
    StrictSpread,
}

/// One node's view for placement.
#[derive(Clone, Debug)]
pub struct NodeView {
    /// The node.
    pub id: NodeId,
    /// Resources available there now.
    pub available: ResourceSet,
}

/// Assigns each bundle a node index, or `None` when the group cannot be placed now.
pub fn place(
    bundles: &[ResourceSet],
    strategy: PlacementStrategy,
    nodes: &[NodeView],
) -> Option<Vec<usize>> {
    if nodes.is_empty() {
        return None;
    }
    let mut avail: Vec<ResourceSet> = nodes.iter().map(|n| n.available.clone()).collect();
    match strategy {
        PlacementStrategy::StrictPack => {
            let mut sum = ResourceSet::new();
            bundles.iter().for_each(|b| sum.add(b));
            let node = avail.iter().position(|a| sum.fits_in(a))?;
            Some(vec![node; bundles.len()])
        }
        PlacementStrategy::StrictSpread => {
            if bundles.len() > nodes.len() {
                return None;
            }
            let mut used = vec![false; nodes.len()];
            let mut out = Vec::with_capacity(bundles.len());
            for b in bundles {
                let node = (0..nodes.len()).find(|&i| !used[i] && b.fits_in(&avail[i]))?;
                used[node] = true;
                avail[node].sub(b);
                out.push(node);
            }
            Some(out)
        }
        PlacementStrategy::Pack => {
            // One node if possible, else first fit.
            let mut sum = ResourceSet::new();
            bundles.iter().for_each(|b| sum.add(b));
            if let Some(node) = avail.iter().position(|a| sum.fits_in(a)) {
                return Some(vec![node; bundles.len()]);
            }
            first_fit(bundles, &mut avail, 0, false)
        }
        PlacementStrategy::Spread => first_fit(bundles, &mut avail, 0, true),
    }
}

fn first_fit(
    bundles: &[ResourceSet],
    avail: &mut [ResourceSet],
    start: usize,
    rotate: bool,
) -> Option<Vec<usize>> {
    let n = avail.len();
    let mut out = Vec::with_capacity(bundles.len());
    let mut next = start;
    for b in bundles {
        let node = (0..n)
            .map(|k| (next + k) % n)
            .find(|&i| b.fits_in(&avail[i]))?;
        avail[node].sub(b);
        out.push(node);
        if rotate {
            next = (node + 1) % n;
        }
    }
    Some(out)
}

/// A placement group's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlacementGroupState {
    /// Waiting for resources; `infeasible` when the cluster as it is can never place it.
    Pending {
        /// No amount of waiting helps with the current nodes.
        infeasible: bool,
    },
    /// Bundles reserved.
    Created,
    /// Removed; its bundles are free again.
    Removed,
}

/// A handle on a placement group.
#[derive(Clone)]
pub struct PlacementGroup {
    pub(crate) id: PlacementGroupId,
    pub(crate) bundles: Arc<Vec<ResourceSet>>,
    pub(crate) strategy: PlacementStrategy,
    pub(crate) ready: ObjectRef<bool>,
}

impl PlacementGroup {
    /// Its id.
    pub fn id(&self) -> PlacementGroupId {
        self.id
    }

    /// The bundles it reserves.
    pub fn bundles(&self) -> &[ResourceSet] {
        &self.bundles
    }

    /// Its strategy.
    pub fn strategy(&self) -> PlacementStrategy {
        self.strategy
    }

    /// A ref sealed (with `true`) once the bundles are reserved: `get` it with a timeout, or
    /// pass it to `wait`.
    pub fn ready(&self) -> ObjectRef<bool> {
        self.ready.clone()
    }

    /// Waits up to `timeout` for the bundles; `false` if they are not reserved by then.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        let (ready, _) = crate::wait(std::slice::from_ref(&self.ready), 1, Some(timeout))?;
        Ok(!ready.is_empty())
    }

    /// Its state now.
    pub fn state(&self) -> Result<PlacementGroupState> {
        crate::core::node::current()?.sched.group_state(self.id)
    }

    /// A scheduling strategy that runs a task or actor in this group's bundle `index` (or any
    /// bundle with room, for `None`).
    pub fn strategy_for(&self, bundle_index: Option<usize>) -> crate::SchedulingStrategy {
        crate::SchedulingStrategy::PlacementGroup {
            group: self.id,
            bundle_index,
        }
    }
}

impl std::fmt::Debug for PlacementGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlacementGroup")
            .field("id", &self.id)
            .field("bundles", &self.bundles)
            .field("strategy", &self.strategy)
            .finish()
    }
}

/// Reserves `bundles` with `strategy`. The group may stay pending (see
/// [`PlacementGroup::wait`] and [`PlacementGroup::state`]).
///
/// ```
/// use volley::{PlacementStrategy, ResourceName, ResourceSet};
/// # let mut c = volley::Config::default(); c.num_cpus = Some(2.0);
/// # volley::init(c).unwrap();
/// let one_cpu = ResourceSet::new().with(ResourceName::Cpu, 1.0);
/// let pg = volley::placement_group(vec![one_cpu.clone(), one_cpu], PlacementStrategy::StrictPack).unwrap();
/// assert!(pg.wait(std::time::Duration::from_secs(5)).unwrap());
/// volley::remove_placement_group(&pg).unwrap();
/// # volley::shutdown();
/// ```
pub fn placement_group(
    bundles: Vec<ResourceSet>,
    strategy: PlacementStrategy,
) -> Result<PlacementGroup> {
    let node = crate::core::node::current()?;
    if bundles.is_empty() || bundles.iter().any(|b| b.is_empty()) {
        return Err(crate::Error::InvalidArgument(
            "a placement group needs at least one bundle, and no bundle may be empty".into(),
        ));
    }
    let id = PlacementGroupId(node.next_task_id());
    let ready_id = crate::ObjectId {
        task: id.0,
        index: 0,
    };
    node.store.create_pending(ready_id, 1);
    let ready = ObjectRef::from_raw(crate::RawRef::adopt(&node, ready_id));
    let placed = node
        .sched
        .create_group(id, bundles.clone(), strategy, ready_id);
    node.after_release(crate::core::scheduler::Released {
        groups_ready: placed,
        spawn_worker: false,
    });
    Ok(PlacementGroup {
        id,
        bundles: Arc::new(bundles),
        strategy,
        ready,
    })
}

/// Removes a group; its bundles are free again and tasks queued for it fail.
pub fn remove_placement_group(pg: &PlacementGroup) -> Result<()> {
    let node = crate::core::node::current()?;
    let released = node.sched.remove_group(pg.id)?;
    node.after_release(released);
    node.store.fail(
        pg.ready.id(),
        crate::Error::Infeasible(format!("placement group {} was removed", pg.id)),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::resources::ResourceName;

    fn cpus(n: f64) -> ResourceSet {
        ResourceSet::new().with(ResourceName::Cpu, n)
    }

    fn nodes(avail: &[f64]) -> Vec<NodeView> {
        avail
            .iter()
            .enumerate()
            .map(|(i, a)| NodeView {
                id: NodeId(i as u64),
                available: cpus(*a),
            })
            .collect()
    }

    #[test]
    fn strategies_place_as_documented() {
        let b = vec![cpus(1.0), cpus(1.0)];
        assert_eq!(
            place(&b, PlacementStrategy::StrictPack, &nodes(&[1.0, 2.0])),
            Some(vec![1, 1])
        );
        assert_eq!(
            place(&b, PlacementStrategy::StrictPack, &nodes(&[1.0, 1.0])),
            None
        );
        assert_eq!(
            place(&b, PlacementStrategy::StrictSpread, &nodes(&[4.0])),
            None
        );
        assert_eq!(
            place(&b, PlacementStrategy::StrictSpread, &nodes(&[1.0, 1.0])),
            Some(vec![0, 1])
        );
        assert_eq!(
            place(&b, PlacementStrategy::Pack, &nodes(&[1.0, 1.0])),
            Some(vec![0, 1])
        );
        assert_eq!(
            place(&b, PlacementStrategy::Spread, &nodes(&[2.0, 2.0])),
            Some(vec![0, 1])
        );
        assert_eq!(
            place(&b, PlacementStrategy::Spread, &nodes(&[2.0])),
            Some(vec![0, 0])
        );
        assert_eq!(
            place(&[cpus(3.0)], PlacementStrategy::Pack, &nodes(&[2.0])),
            None
        );
    }
}
