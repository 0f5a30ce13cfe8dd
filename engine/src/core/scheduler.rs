//! The node's scheduler: ready queues matched against available resources, placement-group
//! bundles, and the bookkeeping of worker threads.
//!
//! Ready tasks wait in one FIFO queue per *shape* (resource demand + placement-group
//! binding); a worker takes the first queue (round robin) whose head fits. A task that blocks
//! in `get`/`wait` hands its resources back while it waits (`Scheduler::block`) and takes
//! them back afterwards (`Scheduler::unblock`), possibly going briefly into debt — so
//! nested tasks can never deadlock a node.
//!
//! Where work runs is decided over a [`ClusterView`] (the nodes, their totals and what is
//! free): [`decide`] applies the task's strategy through a [`SchedulingPolicy`] and answers
//! [`Decision::Local`] (queue it here) or [`Decision::Forward`] (send it to that node).
//! Locally the view is the scheduler itself, one node; the cluster adds the head's view of
//! every node, and placement-group bundles are reserved over the same view.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::core::ids::{NodeId, ObjectId, PlacementGroupId};
use crate::core::placement::{NodeView, PlacementGroupState, PlacementStrategy, place};
use crate::core::resources::ResourceSet;
use crate::core::task::{SchedulingStrategy, TaskSpec};
use crate::error::{Error, Result};

/// What a scheduler decides over: the nodes it may place work on.
pub trait ClusterView {
    /// The node this scheduler runs on.
    fn local(&self) -> NodeId;
    /// Every node with its totals and what is free now, the local one first.
    fn nodes(&self) -> Vec<NodeTotals>;
}

/// Where a task or an actor goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Queue it on this node.
    Local,
    /// Send it to that node (which decides again over its own view).
    Forward(NodeId),
}

/// Decides where `demand` runs under `strategy` (not a placement group's: its bundles were
/// placed when it was reserved) over `view`. An error when no node can ever run it.
pub fn decide(
    view: &dyn ClusterView,
    demand: &ResourceSet,
    strategy: &SchedulingStrategy,
) -> Result<Decision> {
    let nodes = view.nodes();
    let chosen = match strategy {
        SchedulingStrategy::Default | SchedulingStrategy::PlacementGroup { .. } => {
            HybridPolicy.select(demand, &nodes)?
        }
        SchedulingStrategy::Spread => SpreadPolicy.select(demand, &nodes)?,
        SchedulingStrategy::NodeAffinity { node, soft } => NodeAffinityPolicy {
            node: *node,
            soft: *soft,
        }
        .select(demand, &nodes)?,
    };
    Ok(if chosen == view.local() {
        Decision::Local
    } else {
        Decision::Forward(chosen)
    })
}

/// Picks a node for a demand from the cluster view.
pub trait SchedulingPolicy: Send + Sync {
    /// The node to run on, or an error when no node can ever run it.
    fn select(&self, demand: &ResourceSet, nodes: &[NodeTotals]) -> Result<NodeId>;
}

/// A node's totals and current availability, as the policy sees them.
#[derive(Clone, Debug)]
pub struct NodeTotals {
    /// The node.
    pub id: NodeId,
    /// Its total resources.
    pub total: ResourceSet,
    /// Available now.
    pub available: ResourceSet,
}

fn infeasible(demand: &ResourceSet, nodes: &[NodeTotals]) -> Error {
    let totals: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}: {}", n.id, n.total))
        .collect();
    Error::Infeasible(format!(
        "demand {demand} exceeds every node's total resources ({})",
        totals.join("; ")
    ))
}

/// Hybrid (Ray's default): the first node (local) while it is under half busy, else the
/// least busy node that can ever run the demand.
#[derive(Debug)]
pub struct HybridPolicy;

impl SchedulingPolicy for HybridPolicy {
    fn select(&self, demand: &ResourceSet, nodes: &[NodeTotals]) -> Result<NodeId> {
        let feasible: Vec<&NodeTotals> =
            nodes.iter().filter(|n| demand.fits_in(&n.total)).collect();
        let first = feasible.first().ok_or_else(|| infeasible(demand, nodes))?;
        let busy = |n: &NodeTotals| {
            let t = n.total.get(&crate::core::resources::ResourceName::Cpu);
            let a = n.available.get(&crate::core::resources::ResourceName::Cpu);
            if t == 0.0 { 1.0 } else { 1.0 - a / t }
        };
        if busy(first) < 0.5 {
            return Ok(first.id);
        }
        let best = feasible
            .iter()
            .min_by(|a, b| busy(a).total_cmp(&busy(b)))
            .map(|n| n.id)
            .unwrap_or(first.id);
        Ok(best)
    }
}

/// Spread: the least busy feasible node.
#[derive(Debug)]
pub struct SpreadPolicy;

impl SchedulingPolicy for SpreadPolicy {
    fn select(&self, demand: &ResourceSet, nodes: &[NodeTotals]) -> Result<NodeId> {
        nodes
            .iter()
            .filter(|n| demand.fits_in(&n.total))
            .max_by(|a, b| {
                let cpu = crate::core::resources::ResourceName::Cpu;
                a.available.get(&cpu).total_cmp(&b.available.get(&cpu))
            })
            .map(|n| n.id)
            .ok_or_else(|| infeasible(demand, nodes))
    }
}

/// Node affinity: the named node; with `soft`, any feasible node when it cannot.
#[derive(Debug)]
pub struct NodeAffinityPolicy {
    /// The node.
    pub node: NodeId,
    /// Fall back to others.
    pub soft: bool,
}

impl SchedulingPolicy for NodeAffinityPolicy {
    fn select(&self, demand: &ResourceSet, nodes: &[NodeTotals]) -> Result<NodeId> {
        match nodes.iter().find(|n| n.id == self.node) {
            Some(n) if demand.fits_in(&n.total) => Ok(n.id),
            _ if self.soft => HybridPolicy.select(demand, nodes),
            Some(_) => Err(infeasible(demand, nodes)),
            None => Err(Error::Infeasible(format!(
                "node affinity to node {} which is not in the cluster",
                self.node
            ))),
        }
    }
}

/// Where a running task's resources came from.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) resources: Arc<ResourceSet>,
    pub(crate) bundle: Option<(PlacementGroupId, usize)>,
}

struct ShapeQueue {
    demand: Arc<ResourceSet>,
    group: Option<(PlacementGroupId, Option<usize>)>,
    tasks: VecDeque<Box<TaskSpec>>,
}

struct Group {
    bundles: Vec<ResourceSet>,
    strategy: PlacementStrategy,
    state: PlacementGroupState,
    /// Per bundle: what is still free inside the reservation.
    free: Vec<ResourceSet>,
    ready: ObjectId,
}

struct SchedState {
    queues: Vec<ShapeQueue>,
    rr: usize,
    queued: usize,
    total: ResourceSet,
    available: ResourceSet,
    debt: ResourceSet,
    groups: HashMap<PlacementGroupId, Group>,
    pending_groups: Vec<PlacementGroupId>,
    /// Parked workers nobody has signalled.
    idle: usize,
    /// Workers signalled or just started that have not yet taken a task.
    waking: usize,
    threads: usize,
    max_threads: usize,
    closed: bool,
}

/// The scheduler of one node.
pub(crate) struct Scheduler {
    st: Mutex<SchedState>,
    work: Condvar,
    resources_freed: Condvar,
    node: NodeId,
}

/// What the caller must do after releasing resources.
#[must_use]
pub(crate) struct Released {
    /// Placement groups now created: seal their ready objects.
    pub(crate) groups_ready: Vec<ObjectId>,
    /// Start a worker thread (already counted).
    pub(crate) spawn_worker: bool,
}

impl Scheduler {
    pub(crate) fn new(node: NodeId, total: ResourceSet, max_threads: usize) -> Self {
        Scheduler {
            st: Mutex::new(SchedState {
                queues: Vec::new(),
                rr: 0,
                queued: 0,
                available: total.clone(),
                total,
                debt: ResourceSet::new(),
                groups: HashMap::new(),
                pending_groups: Vec::new(),
                idle: 0,
                waking: 0,
                threads: 0,
                max_threads,
                closed: false,
            }),
            work: Condvar::new(),
            resources_freed: Condvar::new(),
            node,
        }
    }

    /// Decides where `demand` under `strategy` runs (see [`decide`]; this scheduler is the
    /// view). A task of a placement group runs where its bundle was reserved.
    pub(crate) fn decide(
        &self,
        demand: &ResourceSet,
        strategy: &SchedulingStrategy,
    ) -> Result<Decision> {
        match strategy {
            SchedulingStrategy::PlacementGroup {
                group,
                bundle_index,
            } => self.decide_in_group(demand, *group, *bundle_index),
            // Fast path: alone, the default and spread policies choose this node whenever
            // the demand fits its totals.
            SchedulingStrategy::Default | SchedulingStrategy::Spread
                if demand.fits_in(&self.st.lock().total) =>
            {
                Ok(Decision::Local)
            }
            _ => decide(self, demand, strategy),
        }
    }

    /// [`Scheduler::decide`] for work that must run on this node: forwarding it needs
    /// another node, which a node without a cluster never chooses.
    pub(crate) fn require_local(
        &self,
        demand: &ResourceSet,
        strategy: &SchedulingStrategy,
    ) -> Result<()> {
        match self.decide(demand, strategy)? {
            Decision::Local => Ok(()),
            Decision::Forward(other) => Err(Error::Infeasible(format!(
                "the scheduler chose node {other} over this node {} for {demand}, and this \
                 node is not part of a cluster that could forward the work there",
                self.node
            ))),
        }
    }

    fn decide_in_group(
        &self,
        demand: &ResourceSet,
        group: PlacementGroupId,
        bundle_index: Option<usize>,
    ) -> Result<Decision> {
        let g = self.st.lock();
        let grp = g
            .groups
            .get(&group)
            .ok_or_else(|| Error::NotFound(format!("placement group {group}")))?;
        if grp.state == PlacementGroupState::Removed {
            return Err(Error::Infeasible(format!(
                "placement group {group} was removed"
            )));
        }
        let bundle = match bundle_index {
            Some(i) => Some(i).filter(|i| *i < grp.bundles.len()).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "placement group {group} has {} bundles, no bundle {i}",
                    grp.bundles.len()
                ))
            })?,
            None => (0..grp.bundles.len())
                .rev()
                .find(|i| demand.fits_in(&grp.bundles[*i]))
                .unwrap_or(0),
        };
        if !demand.fits_in(&grp.bundles[bundle]) {
            return Err(Error::Infeasible(format!(
                "demand {demand} does not fit in the bundles of placement group {group}"
            )));
        }
        // Every bundle of a local group is reserved on this node (see `try_place_groups`).
        Ok(Decision::Local)
    }

    /// Queues a ready task. Returns true when the caller should start a worker thread.
    pub(crate) fn enqueue(&self, task: Box<TaskSpec>) -> bool {
        let mut g = self.st.lock();
        if g.closed {
            drop(g);
            // Nobody will run it: the node is going away. The node fails its outputs.
            crate::core::node::fail_task_on_shutdown(&task);
            return false;
        }
        let group = match &task.strategy {
            SchedulingStrategy::PlacementGroup {
                group,
                bundle_index,
            } => Some((*group, *bundle_index)),
            _ => None,
        };
        let demand = task.resources.clone();
        let fits_now = fits(&g, &demand, group);
        let qi = match g.queues.iter().position(|q| {
            q.group == group && (Arc::ptr_eq(&q.demand, &demand) || *q.demand == *demand)
        }) {
            Some(i) => i,
            None => {
                g.queues.push(ShapeQueue {
                    demand,
                    group,
                    tasks: VecDeque::new(),
                });
                g.queues.len() - 1
            }
        };
        g.queues[qi].tasks.push_back(task);
        g.queued += 1;
        fits_now && self.wake_one(&mut g)
    }

    /// Gets one more worker on its way to the queues, unless one already is: signals a
    /// parked worker, or returns true when the caller must start a thread (already counted).
    fn wake_one(&self, g: &mut SchedState) -> bool {
        if g.waking > 0 {
            return false;
        }
        if g.idle > 0 {
            g.idle -= 1;
            g.waking += 1;
            self.work.notify_one();
            false
        } else if g.threads < g.max_threads {
            g.threads += 1;
            g.waking += 1;
            true
        } else {
            false
        }
    }

    /// A worker thread's wait for its next task (the thread is counted as waking: it just
    /// started, or it released its last task's resources); `None` when the node shuts
    /// down. With the task comes whether to start one more worker (more runnable work is
    /// queued).
    pub(crate) fn next_task(&self) -> Option<(Box<TaskSpec>, Grant, bool)> {
        let mut g = self.st.lock();
        let mut waking = true;
        loop {
            if g.closed {
                g.threads -= 1;
                self.resources_freed.notify_all();
                return None;
            }
            if let Some((t, grant)) = pop_runnable(&mut g) {
                if waking {
                    g.waking -= 1;
                }
                // Chain: if more work can run, get another worker going.
                let spawn = runnable_exists(&g) && self.wake_one(&mut g);
                return Some((t, grant, spawn));
            }
            if waking {
                g.waking -= 1;
            }
            g.idle += 1;
            self.work.wait(&mut g);
            // Only `wake_one` (which moved us from idle to waking) and shutdown signal here.
            waking = !g.closed;
        }
    }

    /// Gives a finished task's resources back.
    pub(crate) fn release(&self, grant: &Grant) -> Released {
        let mut g = self.st.lock();
        give_back(&mut g, grant);
        self.after_release(&mut g)
    }

    /// [`Scheduler::release`] from the worker thread that ran the task, which asks for its
    /// next task at once (and chains a wake-up from there when more can run): it counts as
    /// a worker on its way to the queues, and no other is woken or started here. Doing so
    /// started a thread for each release (or submit) that found no idle one, and the pool
    /// crept up under a stream of small tasks.
    pub(crate) fn release_by_worker(&self, grant: &Grant) -> Released {
        let mut g = self.st.lock();
        // Counted as waking, so `after_release` wakes and starts no other thread.
        g.waking += 1;
        give_back(&mut g, grant);
        self.after_release(&mut g)
    }

    fn after_release(&self, g: &mut MutexGuard<'_, SchedState>) -> Released {
        let groups_ready = try_place_groups(g, self.node);
        self.resources_freed.notify_all();
        let spawn_worker = runnable_exists(g) && self.wake_one(g);
        Released {
            groups_ready,
            spawn_worker,
        }
    }

    /// The worker thread that took a task goes back to the queues while the task runs on
    /// (a parked worker-process call, which keeps its grant until [`Scheduler::release`]):
    /// it counts as a worker on its way to the queues, as after a release.
    pub(crate) fn detach(&self) {
        self.st.lock().waking += 1;
    }

    /// A running task blocks (in `get`, `wait`, a generator): its resources go back to the
    /// pool so another worker can use them.
    pub(crate) fn block(&self, grant: &Grant) -> Released {
        let mut g = self.st.lock();
        give_back(&mut g, grant);
        self.after_release(&mut g)
    }

    /// The blocked task resumes: it takes its resources back, going into debt if they are
    /// in use (paid back by the next releases).
    pub(crate) fn unblock(&self, grant: &Grant) {
        let mut g = self.st.lock();
        match grant.bundle {
            None => {
                let short = g.available.sub_with_shortfall(&grant.resources);
                g.debt.add(&short);
            }
            Some((id, i)) => {
                if let Some(b) = g.groups.get_mut(&id).and_then(|grp| grp.free.get_mut(i)) {
                    let short = b.sub_with_shortfall(&grant.resources);
                    g.debt.add(&short);
                }
            }
        }
    }

    /// Takes `demand` for a long-lived holder (an actor), waiting until it is available.
    pub(crate) fn acquire_blocking(
        &self,
        demand: &Arc<ResourceSet>,
        strategy: &SchedulingStrategy,
        give_up: &dyn Fn() -> bool,
    ) -> Result<Grant> {
        self.require_local(demand, strategy)?;
        let group = match strategy {
            SchedulingStrategy::PlacementGroup {
                group,
                bundle_index,
            } => Some((*group, *bundle_index)),
            _ => None,
        };
        let mut g = self.st.lock();
        loop {
            if g.closed {
                return Err(Error::Shutdown);
            }
            if give_up() {
                return Err(Error::Infeasible("gave up waiting for resources".into()));
            }
            if let Some(grant) = take(&mut g, demand, group) {
                return Ok(grant);
            }
            self.resources_freed
                .wait_for(&mut g, Duration::from_millis(200));
        }
    }

    /// Creates a placement group (pending until its bundles fit). Returns the ready objects to
    /// seal if it was placed at once.
    pub(crate) fn create_group(
        &self,
        id: PlacementGroupId,
        bundles: Vec<ResourceSet>,
        strategy: PlacementStrategy,
        ready: ObjectId,
    ) -> Vec<ObjectId> {
        let mut g = self.st.lock();
        let free = bundles.clone();
        g.groups.insert(
            id,
            Group {
                bundles,
                strategy,
                state: PlacementGroupState::Pending { infeasible: false },
                free,
                ready,
            },
        );
        g.pending_groups.push(id);
        try_place_groups(&mut g, self.node)
    }

    /// The group's state.
    pub(crate) fn group_state(&self, id: PlacementGroupId) -> Result<PlacementGroupState> {
        let g = self.st.lock();
        g.groups
            .get(&id)
            .map(|grp| grp.state.clone())
            .ok_or_else(|| Error::NotFound(format!("placement group {id}")))
    }

    /// Removes a group: its reserved resources (what tasks in it do not use) go back.
    pub(crate) fn remove_group(&self, id: PlacementGroupId) -> Result<Released> {
        let mut g = self.st.lock();
        let grp = g
            .groups
            .get_mut(&id)
            .ok_or_else(|| Error::NotFound(format!("placement group {id}")))?;
        let was = std::mem::replace(&mut grp.state, PlacementGroupState::Removed);
        let free: Vec<ResourceSet> = std::mem::take(&mut grp.free);
        g.pending_groups.retain(|p| *p != id);
        if was == PlacementGroupState::Created {
            for f in &free {
                let rest = g.debt.settle(f);
                g.available.add(&rest);
            }
        }
        let released = self.after_release(&mut g);
        // Tasks queued for this group can never run now.
        let mut dead = Vec::new();
        for q in &mut g.queues {
            if q.group.map(|(gid, _)| gid) == Some(id) {
                dead.extend(q.tasks.drain(..));
            }
        }
        g.queued -= dead.len();
        drop(g);
        for t in dead {
            crate::core::node::fail_task(
                t,
                Error::Infeasible(format!("placement group {id} was removed")),
            );
        }
        Ok(released)
    }

    /// Resources available now.
    pub(crate) fn available(&self) -> ResourceSet {
        self.st.lock().available.clone()
    }

    /// Total resources.
    pub(crate) fn total(&self) -> ResourceSet {
        self.st.lock().total.clone()
    }

    /// Stops the scheduler: parked workers exit; queued tasks are returned to be failed.
    #[allow(clippy::vec_box)] // tasks live boxed in the queues
    pub(crate) fn shutdown(&self) -> Vec<Box<TaskSpec>> {
        let mut g = self.st.lock();
        g.closed = true;
        let mut out = Vec::new();
        for q in &mut g.queues {
            out.extend(q.tasks.drain(..));
        }
        g.queued = 0;
        self.work.notify_all();
        self.resources_freed.notify_all();
        out
    }

    /// A worker thread that ends outside `next_task` (a panic in the engine) is counted out.
    pub(crate) fn thread_exited(&self) {
        let mut g = self.st.lock();
        g.threads = g.threads.saturating_sub(1);
        g.waking = g.waking.saturating_sub(1);
        self.resources_freed.notify_all();
    }
}

fn fits(
    g: &SchedState,
    demand: &ResourceSet,
    group: Option<(PlacementGroupId, Option<usize>)>,
) -> bool {
    match group {
        None => demand.fits_in(&g.available),
        Some((id, idx)) => match g.groups.get(&id) {
            Some(grp) if grp.state == PlacementGroupState::Created => match idx {
                Some(i) => grp.free.get(i).is_some_and(|b| demand.fits_in(b)),
                None => grp.free.iter().any(|b| demand.fits_in(b)),
            },
            _ => false,
        },
    }
}

fn runnable_exists(g: &SchedState) -> bool {
    g.queued > 0
        && g.queues
            .iter()
            .any(|q| !q.tasks.is_empty() && fits(g, &q.demand, q.group))
}

fn take(
    g: &mut SchedState,
    demand: &Arc<ResourceSet>,
    group: Option<(PlacementGroupId, Option<usize>)>,
) -> Option<Grant> {
    match group {
        None => {
            if demand.fits_in(&g.available) {
                g.available.sub(demand);
                Some(Grant {
                    resources: demand.clone(),
                    bundle: None,
                })
            } else {
                None
            }
        }
        Some((id, idx)) => {
            let grp = g.groups.get_mut(&id)?;
            if grp.state != PlacementGroupState::Created {
                return None;
            }
            let i = match idx {
                Some(i) => {
                    Some(i).filter(|&i| grp.free.get(i).is_some_and(|b| demand.fits_in(b)))?
                }
                None => grp.free.iter().position(|b| demand.fits_in(b))?,
            };
            grp.free[i].sub(demand);
            Some(Grant {
                resources: demand.clone(),
                bundle: Some((id, i)),
            })
        }
    }
}

fn give_back(g: &mut SchedState, grant: &Grant) {
    let rest = g.debt.settle(&grant.resources);
    match grant.bundle {
        None => g.available.add(&rest),
        Some((id, i)) => match g.groups.get_mut(&id) {
            Some(grp) if grp.state == PlacementGroupState::Created => {
                if let Some(b) = grp.free.get_mut(i) {
                    b.add(&rest);
                }
            }
            // The group was removed while the task ran: the resources return to the node.
            _ => g.available.add(&rest),
        },
    }
}

fn pop_runnable(g: &mut SchedState) -> Option<(Box<TaskSpec>, Grant)> {
    if g.queued == 0 {
        return None;
    }
    let n = g.queues.len();
    for k in 0..n {
        let qi = (g.rr + k) % n;
        if g.queues[qi].tasks.is_empty() {
            continue;
        }
        let demand = g.queues[qi].demand.clone();
        let group = g.queues[qi].group;
        if let Some(grant) = take(g, &demand, group) {
            let task = g.queues[qi].tasks.pop_front()?;
            g.queued -= 1;
            g.rr = (qi + 1) % n;
            // Drop shapes that emptied, keeping the vector short.
            if g.queues[qi].tasks.is_empty() && n > 8 {
                g.queues.swap_remove(qi);
                g.rr = 0;
            }
            return Some((task, grant));
        }
    }
    None
}

fn try_place_groups(g: &mut SchedState, node: NodeId) -> Vec<ObjectId> {
    let mut ready = Vec::new();
    if g.pending_groups.is_empty() {
        return ready;
    }
    let pending = std::mem::take(&mut g.pending_groups);
    for id in pending {
        let Some(grp) = g.groups.get(&id) else {
            continue;
        };
        let view = [NodeView {
            id: node,
            available: g.available.clone(),
        }];
        match place(&grp.bundles, grp.strategy, &view) {
            Some(_) => {
                let mut sum = ResourceSet::new();
                grp.bundles.iter().for_each(|b| sum.add(b));
                g.available.sub(&sum);
                if let Some(grp) = g.groups.get_mut(&id) {
                    grp.state = PlacementGroupState::Created;
                    ready.push(grp.ready);
                }
            }
            None => {
                let total_view = [NodeView {
                    id: node,
                    available: g.total.clone(),
                }];
                let infeasible = place(&grp.bundles, grp.strategy, &total_view).is_none();
                if let Some(grp) = g.groups.get_mut(&id) {
                    grp.state = PlacementGroupState::Pending { infeasible };
                }
                g.pending_groups.push(id);
            }
        }
    }
    ready
}

/// The local view: this node alone.
impl ClusterView for Scheduler {
    fn local(&self) -> NodeId {
        self.node
    }

    fn nodes(&self) -> Vec<NodeTotals> {
        let g = self.st.lock();
        vec![NodeTotals {
            id: self.node,
            total: g.total.clone(),
            available: g.available.clone(),
        }]
    }
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("node", &self.node)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::resources::ResourceName;

    /// A view of two nodes (the local one first), as the cluster's will be.
    struct TwoNodes {
        nodes: Vec<NodeTotals>,
    }

    fn node(id: u64, total_cpus: f64, free_cpus: f64) -> NodeTotals {
        NodeTotals {
            id: NodeId(id),
            total: ResourceSet::new().with(ResourceName::Cpu, total_cpus),
            available: ResourceSet::new().with(ResourceName::Cpu, free_cpus),
        }
    }

    impl ClusterView for TwoNodes {
        fn local(&self) -> NodeId {
            self.nodes[0].id
        }
        fn nodes(&self) -> Vec<NodeTotals> {
            self.nodes.clone()
        }
    }

    fn cpus(n: f64) -> ResourceSet {
        ResourceSet::new().with(ResourceName::Cpu, n)
    }

    #[test]
    fn decisions_over_a_view_of_two_nodes() {
        let idle = TwoNodes {
            nodes: vec![node(1, 4.0, 4.0), node(2, 8.0, 8.0)],
        };
        let busy = TwoNodes {
            nodes: vec![node(1, 4.0, 1.0), node(2, 8.0, 8.0)],
        };
        let default = SchedulingStrategy::Default;
        // Hybrid: local while under half busy, then the least busy node.
        assert_eq!(
            decide(&idle, &cpus(1.0), &default).unwrap(),
            Decision::Local
        );
        assert_eq!(
            decide(&busy, &cpus(1.0), &default).unwrap(),
            Decision::Forward(NodeId(2))
        );
        // A demand only the other node can ever hold goes there.
        assert_eq!(
            decide(&idle, &cpus(6.0), &default).unwrap(),
            Decision::Forward(NodeId(2))
        );
        assert!(matches!(
            decide(&idle, &cpus(16.0), &default),
            Err(Error::Infeasible(_))
        ));
        // Spread: the least busy.
        assert_eq!(
            decide(&busy, &cpus(1.0), &SchedulingStrategy::Spread).unwrap(),
            Decision::Forward(NodeId(2))
        );
        // Node affinity: that node; a missing one is an error unless soft.
        let to = |n, soft| SchedulingStrategy::NodeAffinity {
            node: NodeId(n),
            soft,
        };
        assert_eq!(
            decide(&idle, &cpus(1.0), &to(2, false)).unwrap(),
            Decision::Forward(NodeId(2))
        );
        assert_eq!(
            decide(&idle, &cpus(1.0), &to(1, false)).unwrap(),
            Decision::Local
        );
        assert!(decide(&idle, &cpus(1.0), &to(9, false)).is_err());
        assert_eq!(
            decide(&idle, &cpus(1.0), &to(9, true)).unwrap(),
            Decision::Local
        );
    }

    #[test]
    fn a_node_alone_decides_local_or_refuses() {
        let s = Scheduler::new(NodeId(7), cpus(2.0), 4);
        let d = |demand: f64, strategy: SchedulingStrategy| s.decide(&cpus(demand), &strategy);
        assert_eq!(
            d(1.0, SchedulingStrategy::Default).unwrap(),
            Decision::Local
        );
        assert_eq!(d(2.0, SchedulingStrategy::Spread).unwrap(), Decision::Local);
        assert!(matches!(
            d(3.0, SchedulingStrategy::Default),
            Err(Error::Infeasible(_))
        ));
        let elsewhere = SchedulingStrategy::NodeAffinity {
            node: NodeId(8),
            soft: false,
        };
        assert!(d(1.0, elsewhere).is_err());
    }
}
