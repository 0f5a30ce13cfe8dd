//! # Volley
//!
//! A distributed dataflow engine in Rust: tasks, actors and objects on a general core, with
//! Arrow blocks as first-class objects — what Ray Core does, natively.
//!
//! ```text
//!             volley::init(Config)                       volley::shutdown()
//!                    │                                           │
//!   task(f).remote(args) ──► scheduler ──► worker threads ──► object store ──► get / wait
//!   actor(new).spawn() ───► actor threads (mailbox, restarts)     │ budget, pins, refcounts
//!   put(value) ────────────────────────────────────────────────► │ shm segments (IPC)
//!                                                                 └► spill (object_store URL)
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use volley::arrow::array::{Float64Array, RecordBatch};
//!
//! volley::init(volley::Config::default()).unwrap();
//! // Fan out: each task builds an Arrow block; fan in: sum them.
//! let make = volley::task(|n: u32| {
//!     let values = Float64Array::from_iter_values((0..n).map(f64::from));
//!     Ok(volley::Block::from(RecordBatch::try_from_iter([("v", Arc::new(values) as _)])?))
//! });
//! let sum = volley::task(|b: volley::Block| {
//!     let col = b.batches()[0].column(0).as_any().downcast_ref::<Float64Array>().unwrap().clone();
//!     Ok(volley::arrow::compute::sum(&col).unwrap_or(0.0))
//! });
//! let blocks: Vec<_> = (1..=4).map(|n| make.remote((n * 10,)).unwrap()).collect();
//! let sums: Vec<_> = blocks.iter().map(|b| sum.remote((b,)).unwrap()).collect();
//! let total: f64 = volley::get_all(&sums, None).unwrap().into_iter().sum();
//! assert_eq!(total, 45.0 + 190.0 + 435.0 + 780.0);
//! volley::shutdown();
//! ```
//!
//! Layers run one way: `python → engine (this crate) → flight`. Inside, `core` knows nothing
//! of the data engine.

pub use arrow;
pub use datafusion;
pub use parquet;

pub mod cli;
pub mod config;
pub mod core;
pub mod data;
pub mod error;
pub mod io;
pub mod microbench;

pub use crate::config::Config;
pub use crate::core::actor::{
    ActorBuilder, ActorHandle, ActorOptions, PIPELINE_DEPTH, actor, get_actor, kill, try_actor,
};
pub use crate::core::api::{
    CancelOptions, ObjectRef, RawRef, RuntimeContext, SegmentInfo, available_resources, cancel,
    cancel_task, cluster_resources, get, get_all, get_runtime_context, get_timeout, init,
    is_cancelled, is_initialized, object_segment, object_store_stats, put, shutdown, spill,
    spill_url, wait,
};
pub use crate::core::generator::{ObjectRefGenerator, StreamingFunction, streaming_task};
pub use crate::core::ids::{ActorId, JobId, NodeId, ObjectId, PlacementGroupId, TaskId, WorkerId};
pub use crate::core::object::{Block, BytesFormat, ObjectData, Value};
pub use crate::core::placement::{
    PlacementGroup, PlacementGroupState, PlacementStrategy, placement_group, remove_placement_group,
};
pub use crate::core::resources::{ResourceName, ResourceSet};
pub use crate::core::runtime::Runtime;
pub use crate::core::shipped::{FunctionDescriptor, ShippedArg, ShippedData, ShippedTask};
pub use crate::core::store::StoreStats;
pub use crate::core::task::{
    Emitter, Multi, RemoteFunction, SchedulingStrategy, TaskOptions, function, register, task,
};
pub use crate::error::{Blame, Error, FailureCause, Result, TaskResult, UserError};

/// The README's Rust quick start, run as a doc-test.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeQuickStart;
