//! Volley Data: lazy datasets of Arrow blocks, run on Volley Core.
//!
//! ```text
//!  Dataset (lazy) ── LogicalPlan (closed enum) ── optimizer rules (one per file)
//!        │                                              │
//!   consume (iter_batches / take / count / write_parquet) ▼
//!        └──► planner ──► PhysicalPlan: pipelines of SourceOp → row ops (fused per task)
//!                              │
//!                 streaming executor: one core streaming task per read fragment,
//!                 blocks emitted into the object store with backpressure (≤ 2 unconsumed
//!                 per task), bounded tasks in flight (pipeline byte budget), limit stops
//!                 upstream work early
//! ```
//!
//! ```
//! use volley::data::{self, col, lit};
//! volley::init(volley::Config::default()).unwrap();
//! let ds = data::range(1000).unwrap().filter(col("id").gt_eq(lit(990i64))).unwrap();
//! assert_eq!(ds.count().unwrap(), 10);
//! volley::shutdown();
//! ```
//!
//! `data` uses the core's public API only; the core knows nothing of it.

mod context;
mod dataset;
mod executor;
mod expr;
mod handle;
mod logical;
mod optimizer;
pub(crate) mod physical;
mod planner;
mod progress;
mod split;
mod udf;

pub use context::DataContext;
pub use datafusion::logical_expr::Expr;
/// `col("UserID")` normalizes its name as SQL does (it reads `userid`); `ident` takes it
/// exactly, as every method taking a column name does.
pub use datafusion::prelude::{col, ident, lit};
pub use dataset::{
    Dataset, ExecStats, FileFormat, GroupedData, WriteResult, from_batches, from_items, range,
    range_in_blocks, read_csv, read_files, read_json, read_parquet,
};
pub use handle::{Batches, ContextSpec, DatasetHandle, ForeignMap, Source, Step, serve_in_node};
pub use logical::{LogicalPlan, MapKind};
pub use physical::OpSpread;
pub use physical::{Agg, AggKind, JoinSpec, JoinType};
pub use progress::{OperatorProgress, Progress, ProgressSink};
pub use split::SplitIter;
pub use udf::{ActorFactory, BatchFn, BatchFnMut, Compute, MapOptions, MapUdf};
