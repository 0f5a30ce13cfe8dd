//! Datasets for front ends wherever they stand: the driver builds and runs its datasets
//! itself; a task or an actor in a worker process asks its node, which holds each dataset the
//! worker builds (lent under an anchor the worker's handle refers to) and runs it there.
//!
//! ```text
//!  DatasetHandle::Here(Dataset)        the node's process: steps and runs in place
//!  DatasetHandle::Node(anchor)  ──►    Op (serde) ── core::foreign::run_dataset ──► serve()
//!    (a worker process)                  on the node: the lent Dataset, the step applied,
//!                                        the result lent again / the run's outcome
//! ```
//!
//! A dataset is described by operations that are data ([`Source`], [`Step`], [`Action`]):
//! the same code applies a step in the driver and in the node for a worker. Python user
//! functions are function-table ids ([`ForeignMap`]), called in pooled worker processes.
//! A dataset passed to a task (pickled) is lent to the node the same way.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Agg, DataContext, Dataset, FileFormat, JoinType, MapOptions, WriteResult};
use crate::core::foreign::{
    self, DatasetCall, DatasetReply, ForeignInstance, ForeignRef, ForeignValue, FunctionId,
    LentBatches, PutValue,
};
use crate::core::ids::ObjectId;
use crate::core::object::Block;
use crate::error::{Error, Result, TaskResult, UserError};
use crate::io::WriteOptions;

/// Where a dataset's rows come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Source {
    /// `0..n` in an `id` column, in this many blocks (read tasks) if given.
    Range(u64, Option<u64>),
    /// Files of `format` (paths, directories, globs, `object_store` URLs); `include_paths`
    /// adds each row's file as a last column, `path`.
    Files {
        /// Their format.
        format: FileFormat,
        /// The paths.
        paths: Vec<String>,
        /// Add the `path` column.
        include_paths: bool,
    },
}

/// A front end's function over batches: a function-table id, called with its `structure`
/// (the front end's description of the batch format) and one table whose chunks are the
/// batches (one call of the user's function per chunk: a `map_batches` sends a task's small
/// batches in groups); it returns their outputs as one table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForeignMap {
    /// The operator's name.
    pub name: String,
    /// The function (or class) in the function table.
    pub function: FunctionId,
    /// The front end's first argument of each call.
    pub structure: Vec<u8>,
}

/// The settings of a `DataContext` a front end passes (progress drawing stays where the
/// front end is: a dataset run for a worker draws none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContextSpec {
    /// Draw progress bars on stderr.
    pub bars: bool,
    /// Seconds between progress snapshots.
    pub interval_s: f64,
    /// Ray's `target_max_block_size`.
    pub target_max_block_size: Option<u64>,
    /// Bound of tasks in flight.
    pub max_tasks_in_flight: Option<usize>,
    /// The pipeline's byte budget.
    pub pipeline_budget_bytes: Option<u64>,
}

impl ContextSpec {
    /// `ctx` with these settings.
    pub fn apply(&self, mut ctx: DataContext) -> Result<DataContext> {
        if let Some(b) = self.target_max_block_size {
            if b == 0 {
                return Err(Error::InvalidArgument(
                    "target_max_block_size must be > 0".into(),
                ));
            }
            ctx.target_max_block_size = b;
        }
        if let Some(n) = self.max_tasks_in_flight {
            ctx.max_tasks_in_flight = Some(n.max(1));
        }
        if let Some(b) = self.pipeline_budget_bytes {
            ctx.pipeline_budget_bytes = Some(b);
        }
        ctx.enable_progress_bars = self.bars;
        ctx.progress_interval = std::time::Duration::from_secs_f64(self.interval_s.max(0.05));
        Ok(ctx)
    }
}

/// A transformation: a new dataset from one (and, for `Union`, `Zip` and `Join`, a second).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Step {
    /// A front end's function over batches, in tasks.
    MapBatches {
        /// The function.
        udf: ForeignMap,
        /// Its options.
        opts: MapOptions,
    },
    /// A front end's callable class over batches, in a pool of actors (`opts.compute`).
    MapBatchesClass {
        /// The class; `structure` is its constructor's first argument.
        class: ForeignMap,
        /// The first argument of each `__call__`.
        call: Vec<u8>,
        /// Its options.
        opts: MapOptions,
    },
    /// A front end's function over each group of rows with equal `keys`.
    MapGroups {
        /// The grouping columns.
        keys: Vec<String>,
        /// The function.
        udf: ForeignMap,
    },
    /// Execution settings.
    Context(ContextSpec),
    /// Rows where a SQL predicate holds.
    FilterSql(String),
    /// Columns computed by SQL expressions (`(name, expression)`), in one projection.
    WithColumnsSql(Vec<(String, String)>),
    /// These columns only.
    Select(Vec<String>),
    /// Without these columns.
    Drop(Vec<String>),
    /// Columns renamed `(from, to)`.
    Rename(Vec<(String, String)>),
    /// The first `n` rows.
    Limit(usize),
    /// This dataset's rows, then the second's.
    Union,
    /// Both datasets' columns side by side.
    Zip,
    /// A hash join with the second dataset.
    Join {
        /// inner, left_outer, right_outer or full_outer.
        how: String,
        /// This dataset's key columns.
        left_on: Vec<String>,
        /// The second's.
        right_on: Vec<String>,
        /// Output partitions (default: one per input block).
        partitions: Option<usize>,
    },
    /// `n` blocks.
    Repartition(usize),
    /// Rows in random order.
    Shuffle(Option<u64>),
    /// Sorted by `(column, descending)` keys, split into blocks at values of the first key
    /// (empty: sampled).
    Sort(Vec<(String, bool)>, Vec<f64>),
    /// One row per group of equal `keys`: `(kind, column)` aggregates, kind one of count,
    /// sum, min, max, mean, std.
    Aggregate {
        /// The grouping columns.
        keys: Vec<String>,
        /// The aggregates.
        aggs: Vec<(String, Option<String>)>,
    },
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The batch a front end's function returned (one Arrow value).
fn one_batch(mut out: Vec<ForeignValue>, what: &str) -> TaskResult<RecordBatch> {
    match out.pop() {
        Some(ForeignValue::Arrow(b)) => b.concat().map_err(|e| UserError::msg(e.to_string())),
        _ => Err(UserError::msg(format!("{what} must return a batch"))),
    }
}

/// Calls a registered front-end function in a pooled worker process with batches, each a
/// chunk of the one table it gets (one call of the user's function per chunk); it returns
/// their outputs as one table.
fn batches_fn(
    udf: &ForeignMap,
) -> impl Fn(Vec<RecordBatch>) -> TaskResult<RecordBatch> + Send + Sync + 'static {
    let structure = Bytes::from(udf.structure.clone());
    let (function, name) = (udf.function, udf.name.clone());
    move |batches: Vec<RecordBatch>| {
        let schema = batches
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| UserError::msg(format!("{name}: called with no batch")))?;
        let args = vec![
            ForeignValue::Pickle(structure.clone()),
            ForeignValue::Arrow(Block::try_new(schema, batches)?),
        ];
        one_batch(foreign::call_function(function, &name, args, 1)?, &name)
    }
}

/// [`batches_fn`] called with one batch at a time (a group of `map_groups`).
fn batch_fn(
    udf: &ForeignMap,
) -> impl Fn(RecordBatch) -> TaskResult<RecordBatch> + Send + Sync + 'static {
    let f = batches_fn(udf);
    move |batch| f(vec![batch])
}

impl Step {
    /// The functions this step names.
    fn functions(&self) -> Vec<FunctionId> {
        match self {
            Step::MapBatches { udf, .. } | Step::MapGroups { udf, .. } => vec![udf.function],
            Step::MapBatchesClass { class, .. } => vec![class.function],
            _ => Vec::new(),
        }
    }

    /// Whether the step takes a second dataset.
    fn binary(&self) -> bool {
        matches!(self, Step::Union | Step::Zip | Step::Join { .. })
    }

    /// The error for a step given the wrong number of datasets.
    fn arity_error(&self) -> Error {
        Error::InvalidArgument(match self {
            Step::Union => "union takes 2 datasets".into(),
            Step::Zip => "zip takes 2 datasets".into(),
            Step::Join { .. } => "join takes 2 datasets".into(),
            _ => "this transformation takes 1 dataset, not 2".into(),
        })
    }

    /// The step applied to `ds` (and `other`, for a binary step).
    pub fn apply(&self, ds: &Dataset, other: Option<&Dataset>) -> Result<Dataset> {
        let other = || other.ok_or_else(|| self.arity_error());
        match self {
            Step::MapBatches { udf, opts } => {
                ds.map_batches_grouped(&udf.name, opts.clone(), batches_fn(udf))
            }
            Step::MapBatchesClass { class, call, opts } => {
                let ctor = Bytes::from(class.structure.clone());
                let (id, name) = (class.function, class.name.clone());
                let new = move || {
                    ForeignInstance::new(id, &name, vec![ForeignValue::Pickle(ctor.clone())])
                };
                let (call, name) = (Bytes::from(call.clone()), class.name.clone());
                let f = move |inst: &mut ForeignInstance, batch: RecordBatch| {
                    let args = vec![
                        ForeignValue::Pickle(call.clone()),
                        ForeignValue::Arrow(Block::from(batch)),
                    ];
                    one_batch(inst.call("__call__", args, 1)?, &name)
                };
                ds.map_batches_actors(&class.name, opts.clone(), new, f)
            }
            Step::MapGroups { keys, udf } => {
                ds.groupby(&strs(keys)).map_groups(&udf.name, batch_fn(udf))
            }
            Step::Context(spec) => Ok(ds.clone().with_context(spec.apply(ds.context().clone())?)),
            Step::FilterSql(p) => ds.filter_sql(p),
            Step::WithColumnsSql(values) => {
                let values: Vec<(&str, &str)> = values
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                ds.with_columns_sql(&values)
            }
            Step::Select(c) => ds.select_columns(&strs(c)),
            Step::Drop(c) => ds.drop_columns(&strs(c)),
            Step::Rename(r) => {
                let r: Vec<(&str, &str)> =
                    r.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                ds.rename_columns(&r)
            }
            Step::Limit(n) => Ok(ds.limit(*n)),
            Step::Union => ds.union(other()?),
            Step::Zip => Ok(ds.zip(other()?)),
            Step::Join {
                how,
                left_on,
                right_on,
                partitions,
            } => ds.join(
                other()?,
                JoinType::parse(how)?,
                &strs(left_on),
                &strs(right_on),
                *partitions,
            ),
            Step::Repartition(n) => ds.repartition(*n),
            Step::Shuffle(seed) => Ok(ds.random_shuffle(*seed)),
            Step::Sort(keys, boundaries) => {
                let k: Vec<(&str, bool)> = keys.iter().map(|(c, d)| (c.as_str(), *d)).collect();
                ds.sort_split_at(&k, boundaries)
            }
            Step::Aggregate { keys, aggs } => {
                let aggs = aggs
                    .iter()
                    .map(|(kind, column)| Agg::parse(kind, column.as_deref().unwrap_or("")))
                    .collect::<Result<Vec<_>>>()?;
                ds.groupby(&strs(keys)).aggregate(&aggs)
            }
        }
    }
}

/// A run of a dataset (what consuming it asks for).
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Action {
    Batches {
        batch_size: Option<usize>,
    },
    StreamingSplit {
        n: usize,
        equal: bool,
    },
    Take {
        limit: Option<usize>,
    },
    Count,
    Schema,
    Explain,
    Stats,
    Materialize,
    Split {
        n: usize,
        equal: bool,
    },
    TrainTestSplit {
        test_fraction: f64,
        seed: Option<u64>,
    },
    SplitAt {
        indices: Vec<u64>,
    },
    RandomizeBlocks {
        seed: Option<u64>,
    },
    Write {
        format: FileFormat,
        path: String,
        options: WriteOptions,
    },
}

/// An operation for the node's dataset service. Its refs: `Tables`' stored tables; a
/// step's dataset (and second dataset); a run's dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Op {
    Open(Source),
    /// A dataset of the Arrow tables stored under the call's refs.
    Tables,
    Step(Step),
    Run(Action),
}

/// The service's answer; new objects come as the reply's refs.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Outcome {
    /// Anchors of lent datasets.
    Datasets,
    /// Anchors of lent batch iterators.
    Iterators,
    /// Batches stored as objects, and the schema (Arrow IPC).
    Batches(Vec<u8>),
    Count(u64),
    /// A schema (Arrow IPC).
    Schema(Vec<u8>),
    Text(Option<String>),
    Written(WriteResult),
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    bincode::serialize(v).map_err(|e| Error::Internal(format!("encoding a dataset operation: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    bincode::deserialize(b)
        .map_err(|e| Error::Internal(format!("decoding a dataset operation: {e}")))
}

fn schema_bytes(schema: &SchemaRef) -> Result<Vec<u8>> {
    let mut w = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), schema)?;
    w.finish()?;
    Ok(w.into_inner()?)
}

fn schema_from(bytes: &[u8]) -> Result<SchemaRef> {
    Ok(arrow::ipc::reader::StreamReader::try_new(bytes, None)?.schema())
}

/// Runs `op` on the node with `refs` (held by the caller for the call).
fn call(
    op: &Op,
    refs: Vec<ObjectId>,
    functions: Vec<FunctionId>,
) -> Result<(Outcome, Vec<ForeignRef>)> {
    let reply = foreign::run_dataset(DatasetCall {
        op: encode(op)?,
        refs,
        functions,
    })?;
    Ok((decode(&reply.data)?, reply.refs))
}

/// The batches stored under `refs`, in order.
fn fetch_batches(refs: &[ForeignRef]) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for v in foreign::get(refs, None)? {
        match v {
            ForeignValue::Arrow(b) => out.extend(b.batches().iter().cloned()),
            _ => {
                return Err(Error::Internal(
                    "a dataset batch that is not Arrow data".into(),
                ));
            }
        }
    }
    Ok(out)
}

/// A dataset, where the front end stands.
#[derive(Debug, Clone)]
pub enum DatasetHandle {
    /// In this process (the node's).
    Here(Dataset),
    /// Held by the node for this worker process, under this anchor.
    Node(ForeignRef),
}

impl DatasetHandle {
    /// A dataset of `source`.
    pub fn open(source: Source) -> Result<Self> {
        if foreign::is_worker() {
            return Self::remote(&Op::Open(source), Vec::new());
        }
        let ds = match &source {
            Source::Range(n, None) => super::range(*n),
            Source::Range(n, Some(blocks)) => super::range_in_blocks(*n, *blocks),
            Source::Files {
                format,
                paths,
                include_paths,
            } => super::read_files(paths, *format, *include_paths),
        }?;
        Ok(DatasetHandle::Here(ds))
    }

    /// A dataset of in-memory batches (in a worker, they are stored for the node to read).
    pub fn from_batches(batches: Vec<RecordBatch>) -> Result<Self> {
        if !foreign::is_worker() {
            return super::from_batches(batches).map(DatasetHandle::Here);
        }
        let schema = batches.first().map(|b| b.schema()).ok_or_else(|| {
            Error::InvalidArgument("from_batches needs at least one batch".into())
        })?;
        let table = foreign::put(PutValue {
            data: ForeignValue::Arrow(Block::try_new(schema, batches)?),
            nested: Vec::new(),
        })?;
        Self::remote(&Op::Tables, vec![table.id()])
    }

    /// The handle of the dataset lent under `anchor` ([`DatasetHandle::lend`]).
    pub fn lent(anchor: ForeignRef) -> Result<Self> {
        if foreign::is_worker() {
            return Ok(DatasetHandle::Node(anchor));
        }
        lent_dataset(anchor.id()).map(DatasetHandle::Here)
    }

    /// Lends the dataset to the node, for a consumer in any of its processes: the anchor's
    /// ref, which keeps it while it lives.
    pub fn lend(&self) -> Result<ForeignRef> {
        match self {
            DatasetHandle::Here(ds) => foreign::lend_value(Arc::new(ds.clone())),
            DatasetHandle::Node(anchor) => Ok(anchor.clone()),
        }
    }

    /// The dataset in this process, if it is here.
    pub fn here(&self) -> Option<&Dataset> {
        match self {
            DatasetHandle::Here(ds) => Some(ds),
            DatasetHandle::Node(_) => None,
        }
    }

    fn remote(op: &Op, refs: Vec<ObjectId>) -> Result<Self> {
        let (_, mut anchors) = call(op, refs, Vec::new())?;
        Ok(DatasetHandle::Node(anchors.pop().ok_or_else(no_reply)?))
    }

    /// The dataset `step` makes of this one (and `other`, for `Union`, `Zip` and `Join`).
    pub fn then(&self, step: Step, other: Option<&DatasetHandle>) -> Result<Self> {
        if step.binary() != other.is_some() {
            return Err(step.arity_error());
        }
        match (self, other) {
            (DatasetHandle::Here(ds), None) => step.apply(ds, None).map(DatasetHandle::Here),
            (DatasetHandle::Here(ds), Some(DatasetHandle::Here(o))) => {
                step.apply(ds, Some(o)).map(DatasetHandle::Here)
            }
            (DatasetHandle::Node(a), None) => {
                let functions = step.functions();
                let (_, mut anchors) = call(&Op::Step(step), vec![a.id()], functions)?;
                Ok(DatasetHandle::Node(anchors.pop().ok_or_else(no_reply)?))
            }
            (DatasetHandle::Node(a), Some(DatasetHandle::Node(b))) => {
                let (_, mut anchors) = call(&Op::Step(step), vec![a.id(), b.id()], Vec::new())?;
                Ok(DatasetHandle::Node(anchors.pop().ok_or_else(no_reply)?))
            }
            _ => Err(Error::InvalidArgument(
                "a dataset of this process combined with one the node holds".into(),
            )),
        }
    }

    fn run(&self, action: Action) -> Result<(Outcome, Vec<ForeignRef>)> {
        match self {
            DatasetHandle::Node(a) => call(&Op::Run(action), vec![a.id()], Vec::new()),
            DatasetHandle::Here(ds) => run_here(ds, action),
        }
    }

    /// The dataset's batches (re-cut to `batch_size` rows, but the last, when given).
    pub fn batches(&self, batch_size: Option<usize>) -> Result<Batches> {
        match self {
            DatasetHandle::Here(ds) => here_batches(ds, batch_size).map(Batches::Here),
            DatasetHandle::Node(_) => {
                let (_, mut its) = self.run(Action::Batches { batch_size })?;
                Ok(Batches::lent(its.pop().ok_or_else(no_reply)?))
            }
        }
    }

    /// `n` iterators fed by one execution.
    pub fn streaming_split(&self, n: usize, equal: bool) -> Result<Vec<Batches>> {
        match self {
            DatasetHandle::Here(ds) => Ok(ds
                .streaming_split(n, equal)?
                .into_iter()
                .map(|it| Batches::Here(Box::new(it)))
                .collect()),
            DatasetHandle::Node(_) => {
                let (_, its) = self.run(Action::StreamingSplit { n, equal })?;
                Ok(its.into_iter().map(Batches::lent).collect())
            }
        }
    }

    /// Every row (at most `limit`), with the schema.
    pub fn take(&self, limit: Option<usize>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        if let DatasetHandle::Here(ds) = self {
            return take_here(ds, limit);
        }
        match self.run(Action::Take { limit })? {
            (Outcome::Batches(schema), refs) => Ok((schema_from(&schema)?, fetch_batches(&refs)?)),
            (other, _) => Err(unexpected(&other)),
        }
    }

    /// Rows.
    pub fn count(&self) -> Result<u64> {
        match self.run(Action::Count)?.0 {
            Outcome::Count(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// The schema.
    pub fn schema(&self) -> Result<SchemaRef> {
        if let DatasetHandle::Here(ds) = self {
            return ds.schema();
        }
        match self.run(Action::Schema)?.0 {
            Outcome::Schema(b) => schema_from(&b),
            other => Err(unexpected(&other)),
        }
    }

    /// The schema when it is known without running anything (reads and native
    /// transformations decide it; a user function's output is known once it ran). A
    /// dataset held by the node for a worker answers `None`.
    pub fn known_schema(&self) -> Result<Option<SchemaRef>> {
        match self {
            DatasetHandle::Here(ds) => ds.known_schema(),
            _ => Ok(None),
        }
    }

    /// The files its reads read; `None` for a dataset the node holds for a worker.
    pub fn input_files(&self) -> Option<Vec<String>> {
        match self {
            DatasetHandle::Here(ds) => Some(ds.input_files()),
            _ => None,
        }
    }

    /// The blocks of a materialized dataset of this process (`None` otherwise).
    pub fn num_blocks(&self) -> Option<usize> {
        match self {
            DatasetHandle::Here(ds) => ds.num_blocks(),
            _ => None,
        }
    }

    /// The plan, as text.
    pub fn explain(&self) -> Result<String> {
        match self.run(Action::Explain)?.0 {
            Outcome::Text(t) => Ok(t.unwrap_or_default()),
            other => Err(unexpected(&other)),
        }
    }

    /// The last execution's statistics, as text (`None` before any).
    pub fn stats(&self) -> Result<Option<String>> {
        match self.run(Action::Stats)?.0 {
            Outcome::Text(t) => Ok(t),
            other => Err(unexpected(&other)),
        }
    }

    /// Runs the pipeline once and keeps its blocks in the object store.
    pub fn materialize(&self) -> Result<Self> {
        Ok(self.datasets(Action::Materialize)?.remove(0))
    }

    /// Its blocks in a random order (see [`Dataset::randomize_block_order`]).
    pub fn randomize_block_order(&self, seed: Option<u64>) -> Result<Self> {
        Ok(self.datasets(Action::RandomizeBlocks { seed })?.remove(0))
    }

    /// `n` datasets of consecutive rows (see [`Dataset::split`]).
    pub fn split(&self, n: usize, equal: bool) -> Result<Vec<Self>> {
        self.datasets(Action::Split { n, equal })
    }

    /// The rows before each index, between them, and after the last (see
    /// [`Dataset::split_at_indices`]).
    pub fn split_at_indices(&self, indices: Vec<u64>) -> Result<Vec<Self>> {
        self.datasets(Action::SplitAt { indices })
    }

    /// `(train, test)` (see [`Dataset::train_test_split`]).
    pub fn train_test_split(&self, test_fraction: f64, seed: Option<u64>) -> Result<(Self, Self)> {
        let mut parts = self.datasets(Action::TrainTestSplit {
            test_fraction,
            seed,
        })?;
        let test = parts.pop().ok_or_else(no_reply)?;
        let train = parts.pop().ok_or_else(no_reply)?;
        Ok((train, test))
    }

    fn datasets(&self, action: Action) -> Result<Vec<Self>> {
        match self {
            DatasetHandle::Here(ds) => Ok(datasets_here(ds, action)?
                .into_iter()
                .map(DatasetHandle::Here)
                .collect()),
            DatasetHandle::Node(_) => {
                let (_, anchors) = self.run(action)?;
                if anchors.is_empty() {
                    return Err(no_reply());
                }
                Ok(anchors.into_iter().map(DatasetHandle::Node).collect())
            }
        }
    }

    /// Writes files of `format` (parquet, csv, json) under `path`.
    pub fn write(
        &self,
        format: FileFormat,
        path: &str,
        options: WriteOptions,
    ) -> Result<WriteResult> {
        match self
            .run(Action::Write {
                format,
                path: path.into(),
                options,
            })?
            .0
        {
            Outcome::Written(w) => Ok(w),
            other => Err(unexpected(&other)),
        }
    }
}

fn no_reply() -> Error {
    Error::Internal("the node's dataset service answered without the dataset".into())
}

fn unexpected(o: &Outcome) -> Error {
    Error::Internal(format!("unexpected answer from the dataset service: {o:?}"))
}

fn lent_dataset(anchor: ObjectId) -> Result<Dataset> {
    foreign::lent_value(anchor)?
        .downcast::<Dataset>()
        .map(|ds| (*ds).clone())
        .map_err(|_| Error::InvalidArgument(format!("{anchor} anchors no dataset")))
}

fn here_batches(ds: &Dataset, batch_size: Option<usize>) -> Result<LentBatches> {
    Ok(match batch_size {
        Some(n) => Box::new(ds.iter_batches_sized(n)?),
        None => Box::new(ds.iter_batches()?),
    })
}

fn take_here(ds: &Dataset, limit: Option<usize>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let ds = match limit {
        Some(n) => ds.limit(n),
        None => ds.clone(),
    };
    let batches = ds.take_all()?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        // No rows and no columns when a user function that never ran decides them (Ray's
        // `take_all()` of such a dataset is `[]`).
        None => ds
            .schema_if_known()?
            .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty())),
    };
    Ok((schema, batches))
}

fn datasets_here(ds: &Dataset, action: Action) -> Result<Vec<Dataset>> {
    match action {
        Action::Materialize => Ok(vec![ds.materialize()?]),
        Action::Split { n, equal } => ds.split(n, equal),
        Action::SplitAt { indices } => ds.split_at_indices(&indices),
        Action::RandomizeBlocks { seed } => Ok(vec![ds.randomize_block_order(seed)?]),
        Action::TrainTestSplit {
            test_fraction,
            seed,
        } => {
            let (a, b) = ds.train_test_split(test_fraction, seed)?;
            Ok(vec![a, b])
        }
        other => Err(Error::Internal(format!("{other:?} makes no datasets"))),
    }
}

/// Runs `action` on a dataset of this process (the node's): the outcome and its objects.
fn run_here(ds: &Dataset, action: Action) -> Result<(Outcome, Vec<ForeignRef>)> {
    let lend_all = |its: Vec<LentBatches>| -> Result<(Outcome, Vec<ForeignRef>)> {
        let refs = its
            .into_iter()
            .map(foreign::lend_batches)
            .collect::<Result<_>>()?;
        Ok((Outcome::Iterators, refs))
    };
    Ok(match action {
        Action::Batches { batch_size } => return lend_all(vec![here_batches(ds, batch_size)?]),
        Action::StreamingSplit { n, equal } => {
            let its = ds.streaming_split(n, equal)?;
            return lend_all(
                its.into_iter()
                    .map(|it| Box::new(it) as LentBatches)
                    .collect(),
            );
        }
        Action::Take { limit } => {
            let (schema, batches) = take_here(ds, limit)?;
            let refs = batches
                .into_iter()
                .map(|b| {
                    foreign::put(PutValue {
                        data: ForeignValue::Arrow(Block::from(b)),
                        nested: Vec::new(),
                    })
                })
                .collect::<Result<_>>()?;
            (Outcome::Batches(schema_bytes(&schema)?), refs)
        }
        Action::Count => (Outcome::Count(ds.count()?), Vec::new()),
        Action::Schema => (Outcome::Schema(schema_bytes(&ds.schema()?)?), Vec::new()),
        Action::Explain => (Outcome::Text(Some(ds.explain()?)), Vec::new()),
        Action::Stats => (Outcome::Text(ds.stats().map(|s| s.to_string())), Vec::new()),
        Action::Write {
            format,
            path,
            options,
        } => {
            let w = ds.write_with(&path, format, &options)?;
            (Outcome::Written(w), Vec::new())
        }
        a @ (Action::Materialize
        | Action::Split { .. }
        | Action::SplitAt { .. }
        | Action::RandomizeBlocks { .. }
        | Action::TrainTestSplit { .. }) => {
            let anchors = datasets_here(ds, a)?
                .into_iter()
                .map(|d| foreign::lend_value(Arc::new(d)))
                .collect::<Result<_>>()?;
            (Outcome::Datasets, anchors)
        }
    })
}

/// The node's dataset service ([`foreign::serve_datasets`]): runs a worker's operation.
fn serve(op: &[u8], refs: &[ObjectId]) -> Result<DatasetReply> {
    let dataset = |i: usize| -> Result<Dataset> {
        let id = refs.get(i).ok_or_else(|| {
            Error::InvalidArgument("a dataset operation without its dataset".into())
        })?;
        lent_dataset(*id)
    };
    let lent = |ds: Dataset| -> Result<(Outcome, Vec<ForeignRef>)> {
        Ok((Outcome::Datasets, vec![foreign::lend_value(Arc::new(ds))?]))
    };
    let (outcome, refs) = match decode::<Op>(op)? {
        Op::Open(source) => match DatasetHandle::open(source)? {
            DatasetHandle::Here(ds) => lent(ds)?,
            DatasetHandle::Node(_) => return Err(Error::Internal("a node with a node".into())),
        },
        Op::Tables => {
            let tables = refs
                .iter()
                .map(|id| ForeignRef::borrow(*id))
                .collect::<Result<Vec<_>>>()?;
            lent(super::from_batches(fetch_batches(&tables)?)?)?
        }
        Op::Step(step) => {
            let other = if step.binary() {
                Some(dataset(1)?)
            } else {
                None
            };
            lent(step.apply(&dataset(0)?, other.as_ref())?)?
        }
        Op::Run(action) => run_here(&dataset(0)?, action)?,
    };
    Ok(DatasetReply {
        data: encode(&outcome)?,
        refs,
    })
}

/// Makes this process's nodes serve datasets to their worker processes.
pub fn serve_in_node() {
    foreign::serve_datasets(serve);
}

/// A stream of a dataset's batches: made here, or lent by the node (read one batch at a
/// time through shared memory).
pub enum Batches {
    /// Running in this process.
    Here(LentBatches),
    /// Lent by the node under an anchor.
    Lent {
        /// The anchor.
        anchor: ForeignRef,
        /// Batches of the last object read, not yet returned.
        pending: VecDeque<RecordBatch>,
        /// Exhausted.
        done: bool,
    },
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Batches::Here(_) => write!(f, "Batches(here)"),
            Batches::Lent { anchor, .. } => write!(f, "Batches(lent under {})", anchor.id()),
        }
    }
}

impl Batches {
    /// The batches of the iterator lent under `anchor`.
    pub fn lent(anchor: ForeignRef) -> Self {
        Batches::Lent {
            anchor,
            pending: VecDeque::new(),
            done: false,
        }
    }

    /// Lends the stream to the node (if it is not already): its anchor's ref.
    pub fn lend(self) -> Result<ForeignRef> {
        match self {
            Batches::Here(it) => foreign::lend_batches(it),
            Batches::Lent { anchor, .. } => Ok(anchor),
        }
    }
}

impl Iterator for Batches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Batches::Here(it) => it.next(),
            Batches::Lent {
                anchor,
                pending,
                done,
            } => loop {
                if let Some(b) = pending.pop_front() {
                    return Some(Ok(b));
                }
                if *done {
                    return None;
                }
                let next = foreign::next_lent(anchor).and_then(|r| match r {
                    None => Ok(None),
                    Some(r) => fetch_batches(&[r]).map(Some),
                });
                match next {
                    Ok(Some(batches)) => pending.extend(batches),
                    Ok(None) => *done = true,
                    Err(e) => {
                        *done = true;
                        return Some(Err(e));
                    }
                }
            },
        }
    }
}
