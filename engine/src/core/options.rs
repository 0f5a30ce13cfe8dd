//! Options of foreign (Python) tasks and actors, in Ray's names: plain data, so a task's
//! options travel with it from a worker process to its node (and, later, between nodes).

use serde::{Deserialize, Serialize};

use crate::core::ids::{NodeId, ObjectId, PlacementGroupId};
use crate::core::task::{SchedulingStrategy, TaskOptions};
use crate::error::{Error, Result};

/// Where a foreign task or actor may run (Ray's scheduling strategies), in wire form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum ForeignStrategy {
    /// Ray's `"DEFAULT"`.
    #[default]
    Default,
    /// Ray's `"SPREAD"`.
    Spread,
    /// Ray's `NodeAffinitySchedulingStrategy`.
    NodeAffinity {
        /// The node's id ([`NodeId`]'s value).
        node: u64,
        /// Run elsewhere when that node cannot.
        soft: bool,
    },
    /// Ray's `PlacementGroupSchedulingStrategy`.
    PlacementGroup {
        /// The group ([`PlacementGroupId::to_bytes`]).
        group: [u8; ObjectId::LEN],
        /// A bundle, or any bundle with room.
        bundle_index: Option<u32>,
    },
}

impl ForeignStrategy {
    /// The core's strategy.
    pub fn to_core(&self) -> Result<SchedulingStrategy> {
        Ok(match self {
            ForeignStrategy::Default => SchedulingStrategy::Default,
            ForeignStrategy::Spread => SchedulingStrategy::Spread,
            ForeignStrategy::NodeAffinity { node, soft } => SchedulingStrategy::NodeAffinity {
                node: NodeId(*node),
                soft: *soft,
            },
            ForeignStrategy::PlacementGroup {
                group,
                bundle_index,
            } => SchedulingStrategy::PlacementGroup {
                group: PlacementGroupId::from_bytes(group).ok_or_else(|| {
                    Error::InvalidArgument("a malformed placement group id".into())
                })?,
                bundle_index: bundle_index.map(|i| i as usize),
            },
        })
    }
}

/// Options of a foreign task (Ray's names).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForeignTaskOptions {
    /// Shown in errors.
    pub name: String,
    /// Outputs.
    pub num_returns: u32,
    /// CPUs (default 1).
    pub num_cpus: f64,
    /// GPUs.
    pub num_gpus: f64,
    /// Memory in bytes.
    pub memory: u64,
    /// Custom resources.
    pub resources: Vec<(String, f64)>,
    /// Retries on worker death; `None`: the config's default.
    pub max_retries: Option<i32>,
    /// Also retry exceptions.
    pub retry_exceptions: bool,
    /// A generator task: its outputs stream one by one (`submit_streaming_task`);
    /// `num_returns` is not used.
    pub streaming: bool,
    /// Where it may run.
    pub strategy: ForeignStrategy,
}

impl ForeignTaskOptions {
    /// The core's options of the task.
    pub(crate) fn to_core(&self) -> Result<TaskOptions> {
        let num_returns = self.num_returns.max(1);
        Ok(TaskOptions {
            name: Some(self.name.clone()),
            num_cpus: self.num_cpus,
            num_gpus: self.num_gpus,
            memory: self.memory,
            resources: self.resources.clone(),
            max_retries: self.max_retries,
            retry_exceptions: self.retry_exceptions,
            num_returns: num_returns as usize,
            scheduling_strategy: self.strategy.to_core()?,
            ..TaskOptions::default()
        })
    }
}

/// Options of a foreign actor (Ray's names).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForeignActorOptions {
    /// The class name, shown in errors.
    pub class_name: String,
    /// A name to find it by.
    pub name: Option<String>,
    /// CPUs held for its life (Ray: 0 once placed).
    pub num_cpus: f64,
    /// GPUs held for its life.
    pub num_gpus: f64,
    /// Memory in bytes held for its life.
    pub memory: u64,
    /// Custom resources held for its life.
    pub resources: Vec<(String, f64)>,
    /// Calls running at once (threads, or coroutines for an async actor).
    pub max_concurrency: u32,
    /// Restarts after its worker dies; -1 unlimited.
    pub max_restarts: i32,
    /// Retries of a call interrupted by a restart.
    pub max_task_retries: i32,
    /// Outlives its handles.
    pub detached: bool,
    /// Where it may run.
    pub strategy: ForeignStrategy,
}

impl ForeignActorOptions {
    /// The core's options of the resources the actor holds for its life.
    pub(crate) fn to_core(&self) -> Result<TaskOptions> {
        Ok(TaskOptions {
            name: Some(self.class_name.clone()),
            num_cpus: self.num_cpus,
            num_gpus: self.num_gpus,
            memory: self.memory,
            resources: self.resources.clone(),
            scheduling_strategy: self.strategy.to_core()?,
            ..TaskOptions::default()
        })
    }
}
