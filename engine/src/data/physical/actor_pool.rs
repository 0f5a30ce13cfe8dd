//! `ActorPool`: the actors of an actor-pool `map_batches`. Each actor builds the user's state
//! once (the constructor) and is then called with batches. The pool starts `min_size` actors
//! on first use and adds one (up to `max_size`) when every actor is busy and the cluster has
//! room for another. Dropping the pool drops the handles, which stops the actors and frees
//! their resources.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::RecordBatch;
use parking_lot::Mutex;

use crate::data::physical::TaskDemand;
use crate::data::udf::{ActorFactory, BatchFnMut};
use crate::error::{Error, Result, TaskResult, UserError};
use crate::{ActorHandle, Block, ResourceName};

/// The state inside one actor: the user's function, or why its constructor failed.
struct UdfActor {
    f: std::result::Result<Mutex<BatchFnMut>, String>,
}

impl UdfActor {
    fn call(&mut self, batch: RecordBatch) -> TaskResult<Block> {
        match &mut self.f {
            Ok(f) => Ok(Block::from((f.get_mut())(batch)?)),
            Err(e) => Err(UserError::msg(format!("the constructor failed: {e}"))),
        }
    }
}

struct Slot {
    handle: ActorHandle<UdfActor>,
    busy: AtomicUsize,
}

/// A pool of actors running one stateful function.
pub(crate) struct ActorPool {
    name: String,
    factory: Arc<ActorFactory>,
    min_size: usize,
    max_size: usize,
    demand: TaskDemand,
    actors: Mutex<Vec<Arc<Slot>>>,
}

impl ActorPool {
    pub(crate) fn new(
        name: String,
        factory: Arc<ActorFactory>,
        min_size: usize,
        max_size: usize,
        demand: TaskDemand,
    ) -> Self {
        ActorPool {
            name,
            factory,
            min_size,
            max_size,
            demand,
            actors: Mutex::new(Vec::new()),
        }
    }

    /// Actors started so far.
    pub(crate) fn size(&self) -> usize {
        self.actors.lock().len()
    }

    fn spawn(&self) -> Result<Arc<Slot>> {
        let factory = self.factory.clone();
        let mut b = crate::actor(move || UdfActor {
            f: factory().map(Mutex::new).map_err(|e| e.to_string()),
        })
        .num_cpus(self.demand.num_cpus)
        .num_gpus(self.demand.num_gpus);
        for (name, amount) in &self.demand.resources {
            b = b.resource(name, *amount);
        }
        Ok(Arc::new(Slot {
            handle: b.spawn()?,
            busy: AtomicUsize::new(0),
        }))
    }

    /// Whether the cluster could place one more actor now.
    fn room_for_another(&self) -> bool {
        let Ok(avail) = crate::available_resources() else {
            return false;
        };
        avail.get(&ResourceName::Cpu) >= self.demand.num_cpus
            && avail.get(&ResourceName::Gpu) >= self.demand.num_gpus
            && self
                .demand
                .resources
                .iter()
                .all(|(n, a)| avail.get(&ResourceName::parse(n)) >= *a)
    }

    /// The least busy actor (starting the pool, or one more actor, as needed).
    fn pick(&self) -> Result<Arc<Slot>> {
        let mut actors = self.actors.lock();
        while actors.len() < self.min_size {
            actors.push(self.spawn()?);
        }
        let best = actors
            .iter()
            .min_by_key(|s| s.busy.load(Ordering::Relaxed))
            .cloned()
            .ok_or_else(|| Error::Internal("an actor pool without actors".into()))?;
        if best.busy.load(Ordering::Relaxed) > 0
            && actors.len() < self.max_size
            && self.room_for_another()
        {
            let slot = self.spawn()?;
            actors.push(slot.clone());
            return Ok(slot);
        }
        Ok(best)
    }

    /// Runs the function on `batch` in one of the actors and waits for the result (a task
    /// waiting here hands its CPU back).
    pub(crate) fn call(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let slot = self.pick()?;
        slot.busy.fetch_add(1, Ordering::Relaxed);
        let result = slot
            .handle
            .call(move |a: &mut UdfActor| a.call(batch.clone()))
            .and_then(|r| crate::get(&r));
        slot.busy.fetch_sub(1, Ordering::Relaxed);
        let block = result.map_err(|e| match e {
            Error::TaskFailed {
                cause: crate::FailureCause::UserError,
                message,
                payload,
                ..
            } => super::udf_failed(format!("MapBatches({})", self.name), message, payload),
            other => other,
        })?;
        match block.batches() {
            [one] => Ok(one.clone()),
            many => Ok(arrow::compute::concat_batches(block.schema(), many)?),
        }
    }
}
