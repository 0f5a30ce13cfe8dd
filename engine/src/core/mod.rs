//! Volley Core: tasks, actors and objects on one node (local mode), built so the cluster can
//! put Arrow Flight under the same store and scheduler.
//!
//! ```text
//!  driver thread ──submit──► node ── pending-args ──► scheduler queues ──► worker threads
//!        ▲                    │                                              │
//!        └──── get/wait ◄── store (budget · pins · refcounts · shm · spill) ◄─ seal
//! ```
//! Modules: [`ids`], [`resources`], [`object`] (values and their IPC encoding), [`shm`]
//! (segments), [`store`] internals, [`scheduler`] (policies), [`placement`], tasks and
//! actors, [`shipped`] (a task's spec as data).

pub mod actor;
pub mod api;
pub(crate) mod execute;
pub mod foreign;
pub mod generator;
pub mod ids;
pub mod layout;
pub(crate) mod node;
pub mod object;
pub mod options;
pub(crate) mod owners;
pub mod placement;
pub(crate) mod rebuild;
pub mod resources;
pub mod runtime;
pub mod scheduler;
pub(crate) mod session;
pub mod shipped;
pub mod shm;
pub(crate) mod signals;
pub(crate) mod spill;
pub mod store;
pub mod task;
pub mod transfer;
pub mod worker;
