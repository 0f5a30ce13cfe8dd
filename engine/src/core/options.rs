//! Options of foreign (Python) tasks and actors, in Ray's names: plain data, so a task's
//! options travel with it from a worker process to its node (and, later, between nodes).

use serde::{Deserialize, Serialize};

use crate::core::task::{SchedulingStrategy, TaskOptions};

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
    pub strategy: SchedulingStrategy,
}

impl ForeignTaskOptions {
    /// The core's options of the task.
    pub(crate) fn to_core(&self) -> TaskOptions {
        let num_returns = self.num_returns.max(1);
        TaskOptions {
            name: Some(self.name.clone()),
            num_cpus: self.num_cpus,
            num_gpus: self.num_gpus,
            memory: self.memory,
            resources: self.resources.clone(),
            max_retries: self.max_retries,
            retry_exceptions: self.retry_exceptions,
            num_returns: num_returns as usize,
            scheduling_strategy: self.strategy.clone(),
            ..TaskOptions::default()
        }
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
    pub strategy: SchedulingStrategy,
}

impl ForeignActorOptions {
    /// The core's options of the resources the actor holds for its life.
    pub(crate) fn to_core(&self) -> TaskOptions {
        TaskOptions {
            name: Some(self.class_name.clone()),
            num_cpus: self.num_cpus,
            num_gpus: self.num_gpus,
            memory: self.memory,
            resources: self.resources.clone(),
            scheduling_strategy: self.strategy.clone(),
            ..TaskOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::{NodeId, PlacementGroupId, TaskId, WorkerId};

    #[test]
    fn a_task_s_options_travel_as_data_with_its_strategy() {
        let group = PlacementGroupId(TaskId {
            owner: WorkerId {
                node: NodeId(7),
                index: 0,
            },
            seq: 42,
        });
        for strategy in [
            SchedulingStrategy::Spread,
            SchedulingStrategy::NodeAffinity {
                node: NodeId(9),
                soft: true,
            },
            SchedulingStrategy::PlacementGroup {
                group,
                bundle_index: Some(1),
            },
        ] {
            let opts = ForeignTaskOptions {
                name: "f".into(),
                num_returns: 2,
                num_cpus: 0.5,
                num_gpus: 0.0,
                memory: 1 << 20,
                resources: vec![("x".into(), 1.0)],
                max_retries: Some(1),
                retry_exceptions: true,
                streaming: false,
                strategy: strategy.clone(),
            };
            // The wire form a worker sends its node (bincode, as `Request::Submit`).
            let wire = bincode::serialize(&opts).unwrap();
            let back: ForeignTaskOptions = bincode::deserialize(&wire).unwrap();
            let core = back.to_core();
            assert_eq!(core, opts.to_core());
            assert_eq!(core.scheduling_strategy, strategy);
            assert_eq!((core.num_returns, core.memory), (2, 1 << 20));
            let core_back: TaskOptions =
                bincode::deserialize(&bincode::serialize(&core).unwrap()).unwrap();
            assert_eq!(core_back, core);
        }
    }
}
