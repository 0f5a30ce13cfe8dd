//! `Dataset`: a lazy, immutable plan; transformations add one logical operator each, and
//! consumption plans, optimizes and runs it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::logical_expr::Expr;
use datafusion::prelude::ident;
use parking_lot::Mutex;

use crate::data::context::DataContext;
use crate::data::executor::{BatchStream, run_per_fragment};
use crate::data::expr;
use crate::data::logical::{BatchFn, LogicalPlan, MapKind};
use crate::data::optimizer::optimize;
use crate::data::physical::{self, PhysicalPlan};
use crate::data::planner::{PlanEnv, plan};
use crate::data::progress::{self, OperatorProgress, Reporter, snapshot};
use crate::data::udf::{self, BatchFnMut, Compute, MapOptions, MapUdf};
use crate::data::{Agg, AggKind, JoinType};
use crate::error::{Error, Result, TaskResult};
use crate::io::min_rows::sized;
use crate::io::parquet::{ParquetSink, ParquetSource, WrittenFile};
use crate::io::partitioned::PartitionedSink;
use crate::io::text::{TextFormat, TextSink, TextSource};
use crate::io::{FileSink, WriteOptions};
use crate::{Block, ObjectRef};

/// A lazy dataset of Arrow record batches.
#[derive(Clone)]
pub struct Dataset {
    plan: Arc<LogicalPlan>,
    ctx: DataContext,
    stats: Arc<Mutex<Option<ExecStats>>>,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dataset(\n{})", self.plan)
    }
}

/// Statistics of the last execution of a dataset: each operator's final progress.
#[derive(Debug, Clone)]
pub struct ExecStats {
    /// Wall time.
    pub wall: Duration,
    /// Per operator: rows, bytes, batches, tasks, CPU time, peak bytes held.
    pub operators: Vec<OperatorProgress>,
    /// The object store's peak resident bytes since the runtime started.
    pub store_peak_bytes: u64,
}

/// Ray's `Dataset.stats()` layout (see [`progress::ray_layout`]).
impl fmt::Display for ExecStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        progress::ray_layout(&self.operators, self.wall, self.store_peak_bytes, f)
    }
}

/// What `write_parquet` wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WriteResult {
    /// The files, in name order.
    pub files: Vec<WrittenFile>,
}

impl WriteResult {
    /// Rows written.
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// Bytes written.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

fn io_handle() -> Result<tokio::runtime::Handle> {
    crate::core::node::current()?.io_runtime()
}

/// Valid `opts` of a function run in the pipeline's tasks (an actor pool needs a
/// constructor).
fn task_compute(name: &str, opts: &MapOptions) -> Result<()> {
    opts.validate()?;
    if opts.compute != Compute::Tasks {
        return Err(Error::InvalidArgument(format!(
            "map_batches {name:?}: an actor pool needs a constructor; use map_batches_actors"
        )));
    }
    Ok(())
}

/// Reads parquet files: a file, a directory, a glob, or a list of them; local paths or
/// `object_store` URLs. Lists the files and reads every footer now (in parallel).
pub fn read_parquet<S: AsRef<str>>(paths: &[S]) -> Result<Dataset> {
    read_files(&strings(paths), FileFormat::Parquet, false)
}

/// Reads CSV files (with a header row; schema inferred from the first file).
pub fn read_csv<S: AsRef<str>>(paths: &[S]) -> Result<Dataset> {
    read_files(&strings(paths), FileFormat::Csv, false)
}

/// Reads newline-delimited JSON files (schema inferred from the first file).
pub fn read_json<S: AsRef<str>>(paths: &[S]) -> Result<Dataset> {
    read_files(&strings(paths), FileFormat::Json, false)
}

fn strings<S: AsRef<str>>(paths: &[S]) -> Vec<String> {
    paths.iter().map(|p| p.as_ref().to_string()).collect()
}

/// The file formats datasets read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FileFormat {
    /// Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
    /// Newline-delimited JSON.
    Json,
}

impl FileFormat {
    /// The format named `name` (`parquet`, `csv`, `json`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "parquet" => Ok(FileFormat::Parquet),
            "csv" => Ok(FileFormat::Csv),
            "json" => Ok(FileFormat::Json),
            other => Err(Error::InvalidArgument(format!(
                "unknown file format {other:?} (parquet, csv or json)"
            ))),
        }
    }

    /// The text format it is (`None`: parquet).
    fn text(self) -> Option<TextFormat> {
        match self {
            FileFormat::Parquet => None,
            FileFormat::Csv => Some(TextFormat::Csv),
            FileFormat::Json => Some(TextFormat::Json),
        }
    }
}

/// Reads files of `format`; with `include_paths`, each row's file is a last column, `path`
/// (Ray's `include_paths=True`).
pub fn read_files(paths: &[String], format: FileFormat, include_paths: bool) -> Result<Dataset> {
    let io = io_handle()?;
    let plan = match format.text() {
        None => {
            let mut source = ParquetSource::open(paths, &io)?;
            if include_paths {
                source = source.with_paths()?;
            }
            LogicalPlan::ReadParquet {
                source: Arc::new(source),
                columns: None,
                filter: None,
                limit: None,
            }
        }
        Some(format) => {
            let mut source = TextSource::open(paths, format, &io)?;
            if include_paths {
                source = source.with_paths()?;
            }
            LogicalPlan::ReadText {
                source: Arc::new(source),
            }
        }
    };
    Ok(Dataset::from_plan(Arc::new(plan), DataContext::default()))
}

/// The integers `0..n` in an `id` column (int64).
pub fn range(n: u64) -> Result<Dataset> {
    Ok(Dataset::from_plan(
        Arc::new(LogicalPlan::Range { n, blocks: None }),
        DataContext::default(),
    ))
}

/// [`range`] read by `blocks` tasks of nearly equal rows, each making one block (Ray's
/// `range(n, override_num_blocks=...)`).
pub fn range_in_blocks(n: u64, blocks: u64) -> Result<Dataset> {
    if blocks == 0 {
        return Err(Error::InvalidArgument(
            "override_num_blocks must be positive".into(),
        ));
    }
    Ok(Dataset::from_plan(
        Arc::new(LogicalPlan::Range {
            n,
            blocks: Some(blocks),
        }),
        DataContext::default(),
    ))
}

/// A dataset of in-memory batches (all with one schema).
pub fn from_batches(batches: Vec<RecordBatch>) -> Result<Dataset> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| Error::InvalidArgument("from_batches needs at least one batch".into()))?;
    if let Some((i, _)) = batches
        .iter()
        .enumerate()
        .find(|(_, b)| b.schema() != schema)
    {
        return Err(Error::InvalidArgument(format!(
            "batch {i} has a different schema than batch 0"
        )));
    }
    Ok(Dataset::from_plan(
        Arc::new(LogicalPlan::FromBatches {
            schema,
            batches: Arc::new(batches),
        }),
        DataContext::default(),
    ))
}

/// A dataset of rows given as serde values (structs or maps); the schema is inferred from
/// the rows (integers become int64, floats float64, strings utf8, sequences lists, nested
/// structs structs), columns in the order of the first row's fields.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Row { name: String, score: f64 }
/// volley::init(volley::Config::default()).unwrap();
/// let ds = volley::data::from_items(&[
///     Row { name: "a".into(), score: 1.5 },
///     Row { name: "b".into(), score: 2.5 },
/// ]).unwrap();
/// assert_eq!(ds.count().unwrap(), 2);
/// # volley::shutdown();
/// ```
pub fn from_items<T: serde::Serialize>(items: &[T]) -> Result<Dataset> {
    if items.is_empty() {
        return Err(Error::InvalidArgument(
            "from_items needs at least one item (the schema comes from the rows)".into(),
        ));
    }
    let all = udf::rows_to_batch(items)?;
    // Blocks enough for every CPU to get two.
    let cpus = crate::cluster_resources()
        .map(|r| r.get(&crate::ResourceName::Cpu).ceil().max(1.0) as usize)
        .unwrap_or(1);
    let chunk = all.num_rows().div_ceil(2 * cpus).clamp(1, 1 << 16);
    let batches: Vec<RecordBatch> = (0..all.num_rows())
        .step_by(chunk)
        .map(|start| all.slice(start, chunk.min(all.num_rows() - start)))
        .collect();
    Ok(Dataset::from_plan(
        Arc::new(LogicalPlan::FromBatches {
            schema: all.schema(),
            batches: Arc::new(batches),
        }),
        DataContext::default(),
    ))
}

/// The schema of `plan` when it is known without running anything.
fn static_schema(plan: &LogicalPlan) -> Option<Result<SchemaRef>> {
    Some(match plan {
        LogicalPlan::ReadParquet {
            source, columns, ..
        } => match columns {
            None => Ok(source.schema().clone()),
            Some(cols) => cols
                .iter()
                .map(|c| {
                    source
                        .schema()
                        .index_of(c)
                        .map_err(|_| no_column(c, source.schema()))
                })
                .collect::<Result<Vec<_>>>()
                .and_then(|idx| Ok(Arc::new(source.schema().project(&idx)?))),
        },
        LogicalPlan::ReadText { source } => Ok(source.schema().clone()),
        LogicalPlan::Range { .. } => Ok(Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
        ]))),
        LogicalPlan::FromBatches { schema, .. } | LogicalPlan::FromRefs { schema, .. } => {
            Ok(schema.clone())
        }
        LogicalPlan::MapBatches { .. }
        | LogicalPlan::Aggregate { .. }
        | LogicalPlan::MapGroups { .. } => return None,
        LogicalPlan::Zip { left, right } => {
            let (left, right) = (static_schema(left)?, static_schema(right)?);
            left.and_then(|l| right.map(|r| crate::data::physical::zip_schema(&l, &r)))
        }
        LogicalPlan::Join { left, right, spec } => {
            let (left, right) = (static_schema(left)?, static_schema(right)?);
            left.and_then(|l| right.and_then(|r| spec.schema(&l, &r)))
        }
        LogicalPlan::Filter { input, .. }
        | LogicalPlan::Limit { input, .. }
        | LogicalPlan::Sort { input, .. }
        | LogicalPlan::Repartition { input, .. }
        | LogicalPlan::RandomShuffle { input, .. } => {
            return static_schema(input);
        }
        LogicalPlan::Project { input, columns } => {
            let input = static_schema(input)?;
            input.and_then(|s| {
                let fields = columns
                    .iter()
                    .map(|(e, n)| expr::field(e, n, &s))
                    .collect::<Result<Vec<_>>>()?;
                Ok(expr::schema_of(fields))
            })
        }
        LogicalPlan::Union { inputs, schema } => match schema {
            Some(s) => Ok(s.clone()),
            None => return static_schema(inputs.first()?),
        },
    })
}

/// Sort boundaries deduplicated and ascending; NaN refused.
fn sorted_boundaries(boundaries: &[f64]) -> Result<Vec<f64>> {
    if boundaries.iter().any(|b| b.is_nan()) {
        return Err(Error::InvalidArgument(
            "sort boundaries must be numbers, not NaN".into(),
        ));
    }
    let mut out = boundaries.to_vec();
    out.sort_by(f64::total_cmp);
    out.dedup();
    Ok(out)
}

fn no_column(name: &str, schema: &SchemaRef) -> Error {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    Error::InvalidArgument(format!(
        "no column {name:?}; the columns are [{}]",
        names.join(", ")
    ))
}

impl Dataset {
    pub(crate) fn from_plan(plan: Arc<LogicalPlan>, ctx: DataContext) -> Self {
        Dataset {
            plan,
            ctx,
            stats: Arc::new(Mutex::new(None)),
        }
    }

    fn with(&self, node: LogicalPlan) -> Dataset {
        Dataset::from_plan(Arc::new(node), self.ctx.clone())
    }

    /// The logical plan.
    pub fn logical_plan(&self) -> &Arc<LogicalPlan> {
        &self.plan
    }

    /// Uses `ctx` for execution.
    pub fn with_context(mut self, ctx: DataContext) -> Self {
        self.ctx = ctx;
        self
    }

    /// The settings this dataset executes with.
    pub fn context(&self) -> &DataContext {
        &self.ctx
    }

    // ---- transformations ----

    /// Applies `f` to batches (of `batch_size` rows when given, else as they come), in the
    /// pipeline's tasks.
    pub fn map_batches<F>(&self, name: &str, batch_size: Option<usize>, f: F) -> Dataset
    where
        F: Fn(RecordBatch) -> TaskResult<RecordBatch> + Send + Sync + 'static,
    {
        self.map_node(
            name,
            MapUdf::Fn(Arc::new(f)),
            MapOptions::batch_size(batch_size),
            MapKind::Batches,
        )
    }

    /// [`Dataset::map_batches`] with options: batch size and resources per task (e.g.
    /// `num_gpus`, custom resources). A stateless function always runs in tasks; for an
    /// actor pool use [`Dataset::map_batches_actors`].
    pub fn map_batches_with<F>(&self, name: &str, opts: MapOptions, f: F) -> Result<Dataset>
    where
        F: Fn(RecordBatch) -> TaskResult<RecordBatch> + Send + Sync + 'static,
    {
        task_compute(name, &opts)?;
        Ok(self.map_node(name, MapUdf::Fn(Arc::new(f)), opts, MapKind::Batches))
    }

    /// Applies a function that runs in another process (a front end's) to batches sent in
    /// groups, one round trip per group; `f` gets each group's batches and returns their
    /// outputs, in order, as one batch. As `map_batches_with` otherwise (task compute).
    pub(crate) fn map_batches_grouped<F>(
        &self,
        name: &str,
        opts: MapOptions,
        f: F,
    ) -> Result<Dataset>
    where
        F: Fn(Vec<RecordBatch>) -> TaskResult<RecordBatch> + Send + Sync + 'static,
    {
        task_compute(name, &opts)?;
        Ok(self.map_node(name, MapUdf::Grouped(Arc::new(f)), opts, MapKind::Batches))
    }

    /// Applies a stateful function in a pool of actors (`opts.compute`, default one actor):
    /// each actor runs `ctor` once (e.g. to load a model) and then `f(&mut state, batch)`
    /// for the batches sent to it. `opts` resources are held by each actor.
    ///
    /// ```
    /// use volley::data::{self, Compute, MapOptions};
    /// volley::init(volley::Config::default()).unwrap();
    /// let opts = MapOptions {
    ///     compute: Compute::Actors { min_size: 1, max_size: 2 },
    ///     ..MapOptions::default()
    /// };
    /// let ds = data::range(100).unwrap().map_batches_actors(
    ///     "count_calls",
    ///     opts,
    ///     || Ok(0u64),
    ///     |calls, batch| { *calls += 1; Ok(batch) },
    /// ).unwrap();
    /// assert_eq!(ds.count().unwrap(), 100);
    /// # volley::shutdown();
    /// ```
    pub fn map_batches_actors<S, C, F>(
        &self,
        name: &str,
        opts: MapOptions,
        ctor: C,
        f: F,
    ) -> Result<Dataset>
    where
        S: Send + 'static,
        C: Fn() -> TaskResult<S> + Send + Sync + 'static,
        F: Fn(&mut S, RecordBatch) -> TaskResult<RecordBatch> + Send + Sync + 'static,
    {
        opts.validate()?;
        let opts = match opts.compute {
            Compute::Tasks => MapOptions {
                compute: Compute::Actors {
                    min_size: 1,
                    max_size: 1,
                },
                ..opts
            },
            Compute::Actors { .. } => opts,
        };
        let f = Arc::new(f);
        let factory = move || -> TaskResult<BatchFnMut> {
            let mut state = ctor()?;
            let f = f.clone();
            Ok(Box::new(move |b| f(&mut state, b)))
        };
        Ok(self.map_node(
            name,
            MapUdf::Actor(Arc::new(factory)),
            opts,
            MapKind::Batches,
        ))
    }

    /// Applies `f` to each row, deserialized as `T` (a struct or map whose fields are the
    /// columns); its results become the rows of the output (schema inferred).
    pub fn map<T, U, F>(&self, name: &str, f: F) -> Dataset
    where
        T: serde::de::DeserializeOwned,
        U: serde::Serialize,
        F: Fn(T) -> TaskResult<U> + Send + Sync + 'static,
    {
        let udf = move |b: RecordBatch| {
            let out = udf::batch_to_rows::<T>(&b)?
                .into_iter()
                .map(&f)
                .collect::<TaskResult<Vec<U>>>()?;
            udf::output_rows(&out)
        };
        self.map_node(
            name,
            MapUdf::Fn(Arc::new(udf)),
            MapOptions::default(),
            MapKind::Rows,
        )
    }

    /// Applies `f` to each row, like [`Dataset::map`], and outputs every row it returns
    /// (none, one or many).
    pub fn flat_map<T, U, I, F>(&self, name: &str, f: F) -> Dataset
    where
        T: serde::de::DeserializeOwned,
        U: serde::Serialize,
        I: IntoIterator<Item = U>,
        F: Fn(T) -> TaskResult<I> + Send + Sync + 'static,
    {
        let udf = move |b: RecordBatch| {
            let mut out = Vec::new();
            for row in udf::batch_to_rows::<T>(&b)? {
                out.extend(f(row)?);
            }
            udf::output_rows(&out)
        };
        self.map_node(
            name,
            MapUdf::Fn(Arc::new(udf)),
            MapOptions::default(),
            MapKind::FlatMap,
        )
    }

    fn map_node(&self, name: &str, udf: MapUdf, opts: MapOptions, kind: MapKind) -> Dataset {
        let opts = MapOptions {
            batch_size: opts.batch_size.filter(|&n| n > 0),
            ..opts
        };
        self.with(LogicalPlan::MapBatches {
            input: self.plan.clone(),
            name: name.to_string(),
            udf,
            opts,
            kind,
        })
    }

    /// The columns of `self` and `other` side by side, row by row (both must have as many
    /// rows). A right column whose name the left has is renamed `<name>_1`.
    pub fn zip(&self, other: &Dataset) -> Dataset {
        self.with(LogicalPlan::Zip {
            left: self.plan.clone(),
            right: other.plan.clone(),
        })
    }

    /// Joins `other` on key columns (`left_on` of this dataset equal to `right_on` of
    /// `other`, pairwise; equal types), as a hash-partitioned exchange of both sides into
    /// `partitions` (default: one per input block). Null keys match nothing. The output has
    /// this dataset's columns, then `other`'s other columns (renamed `<name>_1` where the
    /// name is taken); see [`JoinType`] for which rows it keeps.
    pub fn join(
        &self,
        other: &Dataset,
        how: JoinType,
        left_on: &[&str],
        right_on: &[&str],
        partitions: Option<usize>,
    ) -> Result<Dataset> {
        let spec = crate::data::JoinSpec {
            left_on: left_on.iter().map(|s| s.to_string()).collect(),
            right_on: right_on.iter().map(|s| s.to_string()).collect(),
            how,
            partitions: partitions.filter(|&n| n > 0),
        };
        if let (Some(l), Some(r)) = (static_schema(&self.plan), static_schema(&other.plan)) {
            spec.schema(&*l?, &*r?)?;
        }
        Ok(self.with(LogicalPlan::Join {
            left: self.plan.clone(),
            right: other.plan.clone(),
            spec,
        }))
    }

    /// Keeps rows where `predicate` holds (`col("value").gt(lit(0.5))`).
    pub fn filter(&self, predicate: Expr) -> Result<Dataset> {
        if let Some(schema) = static_schema(&self.plan) {
            expr::compile(&predicate, &schema?)?;
        }
        Ok(self.with(LogicalPlan::Filter {
            input: self.plan.clone(),
            predicate,
        }))
    }

    /// Keeps rows where a SQL predicate holds (`"value > 0.5 AND key = 'k1'"`).
    pub fn filter_sql(&self, predicate: &str) -> Result<Dataset> {
        let schema = self.schema()?;
        self.filter(expr::parse_sql(predicate, &schema)?)
    }

    /// Keeps these columns, in this order.
    pub fn select_columns(&self, columns: &[&str]) -> Result<Dataset> {
        let schema = self.schema()?;
        for c in columns {
            schema.index_of(c).map_err(|_| no_column(c, &schema))?;
        }
        Ok(self.project(columns.iter().map(|c| (ident(*c), c.to_string())).collect()))
    }

    /// Drops these columns.
    pub fn drop_columns(&self, columns: &[&str]) -> Result<Dataset> {
        let schema = self.schema()?;
        for c in columns {
            schema.index_of(c).map_err(|_| no_column(c, &schema))?;
        }
        let keep = schema
            .fields()
            .iter()
            .filter(|f| !columns.contains(&f.name().as_str()))
            .map(|f| (ident(f.name()), f.name().clone()))
            .collect();
        Ok(self.project(keep))
    }

    /// Renames columns (`(old, new)` pairs).
    pub fn rename_columns(&self, renames: &[(&str, &str)]) -> Result<Dataset> {
        let schema = self.schema()?;
        for (old, _) in renames {
            schema.index_of(old).map_err(|_| no_column(old, &schema))?;
        }
        let cols = schema
            .fields()
            .iter()
            .map(|f| {
                let new = renames
                    .iter()
                    .find(|(o, _)| *o == f.name())
                    .map_or(f.name().as_str(), |r| r.1);
                (ident(f.name()), new.to_string())
            })
            .collect();
        Ok(self.project(cols))
    }

    /// Adds (or replaces) column `name` computed by `expr`.
    pub fn with_column(&self, name: &str, value: Expr) -> Result<Dataset> {
        self.with_columns(vec![(name.to_string(), value)])
    }

    /// Adds (or replaces) columns in one projection: every value is computed from this
    /// dataset's columns (a value naming a column that another entry replaces sees the
    /// old one). A replaced column keeps its place; new ones follow, in the given order.
    pub fn with_columns(&self, values: Vec<(String, Expr)>) -> Result<Dataset> {
        let schema = self.schema()?;
        for (name, value) in &values {
            expr::field(value, name, &schema)?;
        }
        let mut cols: Vec<(Expr, String)> = schema
            .fields()
            .iter()
            .map(|f| (ident(f.name()), f.name().clone()))
            .collect();
        for (name, value) in values {
            match cols.iter_mut().find(|(_, n)| *n == name) {
                Some(slot) => slot.0 = value,
                None => cols.push((value, name)),
            }
        }
        Ok(self.project(cols))
    }

    /// [`Dataset::with_column`] with the value as a SQL expression over the columns
    /// (e.g. `"value * 2"`).
    pub fn with_column_sql(&self, name: &str, value: &str) -> Result<Dataset> {
        self.with_columns_sql(&[(name, value)])
    }

    /// [`Dataset::with_columns`] with each value as a SQL expression over the columns.
    pub fn with_columns_sql(&self, values: &[(&str, &str)]) -> Result<Dataset> {
        let schema = self.schema()?;
        let values = values
            .iter()
            .map(|(name, sql)| Ok((name.to_string(), expr::parse_sql(sql, &schema)?)))
            .collect::<Result<Vec<_>>>()?;
        self.with_columns(values)
    }

    fn project(&self, columns: Vec<(Expr, String)>) -> Dataset {
        self.with(LogicalPlan::Project {
            input: self.plan.clone(),
            columns,
        })
    }

    /// The first `n` rows; upstream work stops once they are produced.
    pub fn limit(&self, n: usize) -> Dataset {
        self.with(LogicalPlan::Limit {
            input: self.plan.clone(),
            n,
        })
    }

    /// This dataset's rows followed by `other`'s: the same column names and types; a
    /// column nullable in either is nullable in the union.
    pub fn union(&self, other: &Dataset) -> Result<Dataset> {
        let (a, b) = (self.schema()?, other.schema()?);
        let same_columns = a.fields().len() == b.fields().len()
            && a.fields()
                .iter()
                .zip(b.fields())
                .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type());
        if !same_columns {
            return Err(Error::InvalidArgument(format!(
                "union of different schemas: {a:?} and {b:?}"
            )));
        }
        let schema = (a.fields() != b.fields()).then(|| {
            let fields: Vec<_> = a
                .fields()
                .iter()
                .zip(b.fields())
                .map(|(x, y)| {
                    x.as_ref()
                        .clone()
                        .with_nullable(x.is_nullable() || y.is_nullable())
                })
                .collect();
            Arc::new(arrow::datatypes::Schema::new_with_metadata(
                fields,
                a.metadata().clone(),
            ))
        });
        Ok(self.with(LogicalPlan::Union {
            inputs: vec![self.plan.clone(), other.plan.clone()],
            schema,
        }))
    }

    /// Sorts by `keys` (all ascending, or all descending), as a range-partitioned exchange
    /// whose map outputs spill when they exceed the store.
    pub fn sort(&self, keys: &[&str], descending: bool) -> Result<Dataset> {
        self.sort_by(&keys.iter().map(|k| (*k, descending)).collect::<Vec<_>>())
    }

    /// Sorts by `(column, descending)` keys.
    pub fn sort_by(&self, keys: &[(&str, bool)]) -> Result<Dataset> {
        self.sort_split_at(keys, &[])
    }

    /// Sorts by `(column, descending)` keys, the output split into blocks at `boundaries`,
    /// values of the first key (which must be numeric), as Ray's `sort(boundaries=)`: with
    /// `[10, 20]`, rows under 10, then rows from 10 to under 20, then the rest (reversed
    /// when descending). Empty: blocks of about the target size, split at sampled keys.
    pub fn sort_split_at(&self, keys: &[(&str, bool)], boundaries: &[f64]) -> Result<Dataset> {
        if keys.is_empty() {
            return Err(Error::InvalidArgument("sort needs at least one key".into()));
        }
        if let Some(s) = static_schema(&self.plan) {
            let s = s?;
            for (k, _) in keys {
                s.index_of(k).map_err(|_| no_column(k, &s))?;
            }
            let first = s.field_with_name(keys[0].0)?;
            if !boundaries.is_empty() && !first.data_type().is_numeric() {
                return Err(Error::InvalidArgument(format!(
                    "sort boundaries split a numeric first key; {:?} is {}",
                    keys[0].0,
                    first.data_type()
                )));
            }
        }
        let keys = keys.iter().map(|(k, d)| (k.to_string(), *d)).collect();
        Ok(self.with(LogicalPlan::Sort {
            input: self.plan.clone(),
            keys,
            boundaries: sorted_boundaries(boundaries)?,
        }))
    }

    /// Groups by `keys` (then `aggregate`, `count`, `sum`, ...).
    pub fn groupby(&self, keys: &[&str]) -> GroupedData {
        GroupedData {
            ds: self.clone(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
        }
    }

    /// The rows in `n` blocks of nearly equal size.
    pub fn repartition(&self, n: usize) -> Result<Dataset> {
        if n == 0 {
            return Err(Error::InvalidArgument("repartition needs n >= 1".into()));
        }
        Ok(self.with(LogicalPlan::Repartition {
            input: self.plan.clone(),
            n,
        }))
    }

    /// The rows in a random order; the same seed gives the same order.
    pub fn random_shuffle(&self, seed: Option<u64>) -> Dataset {
        self.with(LogicalPlan::RandomShuffle {
            input: self.plan.clone(),
            seed: physical::seed_or_now(seed),
        })
    }

    /// The dataset run once, its blocks (kept in the store) in a random order, the same for
    /// the same `seed`; rows keep their order within a block (Ray's
    /// `randomize_block_order`).
    pub fn randomize_block_order(&self, seed: Option<u64>) -> Result<Dataset> {
        let (schema, mut blocks) = self.materialize_blocks()?;
        physical::shuffle(&mut blocks, physical::mix(physical::seed_or_now(seed)));
        Ok(self.with_refs(schema, blocks))
    }

    // ---- planning ----

    fn physical(&self) -> Result<(Arc<LogicalPlan>, PhysicalPlan)> {
        let optimized = optimize(&self.plan);
        let cpus = crate::cluster_resources()?
            .get(&crate::ResourceName::Cpu)
            .ceil()
            .max(1.0) as usize;
        let env = PlanEnv {
            ctx: &self.ctx,
            io: io_handle()?,
            cpus,
        };
        let physical = plan(&optimized, &env)?;
        Ok((optimized, physical))
    }

    /// The logical, optimized and physical plans as text.
    pub fn explain(&self) -> Result<String> {
        let (optimized, physical) = self.physical()?;
        Ok(format!(
            "== Logical plan ==\n{}== Optimized plan ==\n{}== Physical plan ==\n{}",
            self.plan, optimized, physical
        ))
    }

    fn record(&self, physical: &PhysicalPlan, started: Instant) {
        let snap = snapshot(physical, started.elapsed(), true);
        *self.stats.lock() = Some(ExecStats {
            wall: snap.elapsed,
            operators: snap.operators,
            store_peak_bytes: crate::object_store_stats().map_or(0, |s| s.peak_resident_bytes),
        });
    }

    /// Starts executing `physical`: the start time and the progress reporter (stopped when
    /// dropped).
    fn begin(&self, physical: &PhysicalPlan) -> (Instant, Option<Reporter>) {
        let started = Instant::now();
        (started, Reporter::start(physical, &self.ctx, started))
    }

    /// Bytes the parquet readers of this dataset's sources fetched so far (footers included):
    /// the readers' own counters.
    pub fn bytes_read(&self) -> u64 {
        fn walk(p: &LogicalPlan) -> u64 {
            let own = match p {
                LogicalPlan::ReadParquet { source, .. } => source.bytes_read(),
                LogicalPlan::ReadText { source } => source.bytes_read(),
                _ => 0,
            };
            own + p.inputs().iter().map(|i| walk(i)).sum::<u64>()
        }
        walk(&self.plan)
    }

    /// Statistics of the last execution (`None` before any).
    pub fn stats(&self) -> Option<ExecStats> {
        self.stats.lock().clone()
    }

    // ---- consumption ----

    /// Streams the batches in order.
    pub fn iter_batches(&self) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
        let (_, physical) = self.physical()?;
        let (started, reporter) = self.begin(&physical);
        let mut stream = BatchStream::new(&physical, &self.ctx)?;
        let this = self.clone();
        let mut running = Some((physical, reporter));
        Ok(std::iter::from_fn(move || {
            let next = stream.next();
            if next.is_none()
                && let Some((p, reporter)) = running.take()
            {
                drop(reporter);
                this.record(&p, started);
            }
            next
        }))
    }

    /// Streams batches of exactly `batch_size` rows (the last may be shorter), re-chunking
    /// without copying where batches line up.
    pub fn iter_batches_sized(
        &self,
        batch_size: usize,
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
        if batch_size == 0 {
            return Err(Error::InvalidArgument("batch_size must be >= 1".into()));
        }
        let mut inner = self.iter_batches()?;
        let mut pending: std::collections::VecDeque<RecordBatch> =
            std::collections::VecDeque::new();
        let mut rows = 0usize;
        let mut done = false;
        Ok(std::iter::from_fn(move || {
            loop {
                if rows >= batch_size || (done && rows > 0) {
                    let schema = pending[0].schema();
                    let mut take = crate::data::split::take_rows(&mut pending, batch_size);
                    rows -= take.iter().map(|b| b.num_rows()).sum::<usize>();
                    let out = if take.len() == 1 {
                        Ok(take.remove(0))
                    } else {
                        arrow::compute::concat_batches(&schema, &take).map_err(Error::from)
                    };
                    return Some(out);
                }
                if done {
                    return None;
                }
                match inner.next() {
                    Some(Ok(b)) => {
                        rows += b.num_rows();
                        if b.num_rows() > 0 {
                            pending.push_back(b);
                        }
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None => done = true,
                }
            }
        }))
    }

    /// Splits into `n` datasets of consecutive rows. The dataset is materialized once into
    /// the object store (which spills past its budget) and its blocks are dealt out; a block
    /// that straddles a cut is sliced, sharing its buffers. `equal = false` keeps every row
    /// (shards differ by at most one row); `equal = true` gives every shard exactly
    /// `count / n` rows and drops the last `count % n` (Ray's `split(n, equal=True)`).
    pub fn split(&self, n: usize, equal: bool) -> Result<Vec<Dataset>> {
        if n == 0 {
            return Err(Error::InvalidArgument("split needs n >= 1".into()));
        }
        let (schema, blocks) = self.materialize_blocks()?;
        let total: u64 = blocks.iter().map(|b| b.1).sum();
        let n64 = n as u64;
        let sizes: Vec<u64> = (0..n64)
            .map(|i| match equal {
                true => total / n64,
                false => (i + 1) * total / n64 - i * total / n64,
            })
            .collect();
        Ok(cut_blocks(blocks, &sizes)?
            .into_iter()
            .map(|part| self.with_refs(schema.clone(), part))
            .collect())
    }

    /// `(train, test)` with `test_fraction` of the rows in `test` (after an optional seeded
    /// shuffle), through the object store like [`Dataset::split`].
    pub fn train_test_split(
        &self,
        test_fraction: f64,
        shuffle_seed: Option<u64>,
    ) -> Result<(Dataset, Dataset)> {
        if !(0.0..=1.0).contains(&test_fraction) {
            return Err(Error::InvalidArgument(format!(
                "test_fraction must be in [0, 1], got {test_fraction}"
            )));
        }
        let ds = match shuffle_seed {
            Some(seed) => self.random_shuffle(Some(seed)),
            None => self.clone(),
        };
        let (schema, blocks) = ds.materialize_blocks()?;
        let total: u64 = blocks.iter().map(|b| b.1).sum();
        let test_rows = (total as f64 * test_fraction).round() as u64;
        let mut parts = cut_blocks(blocks, &[total - test_rows, test_rows])?.into_iter();
        let mut next = || self.with_refs(schema.clone(), parts.next().unwrap_or_default());
        Ok((next(), next()))
    }

    /// `indices.len() + 1` datasets: the rows before the first index, between each two,
    /// and from the last on (Ray's `split_at_indices`; an index past the end gives empty
    /// pieces). The indices must be sorted.
    pub fn split_at_indices(&self, indices: &[u64]) -> Result<Vec<Dataset>> {
        if indices.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::InvalidArgument(format!(
                "indices must be sorted, got {indices:?}"
            )));
        }
        let (schema, blocks) = self.materialize_blocks()?;
        let total: u64 = blocks.iter().map(|b| b.1).sum();
        let mut sizes = Vec::with_capacity(indices.len() + 1);
        let mut at = 0;
        for &i in indices {
            let i = i.min(total);
            sizes.push(i - at);
            at = i;
        }
        sizes.push(total - at);
        Ok(cut_blocks(blocks, &sizes)?
            .into_iter()
            .map(|part| self.with_refs(schema.clone(), part))
            .collect())
    }

    fn with_refs(&self, schema: SchemaRef, blocks: Vec<(ObjectRef<Block>, u64)>) -> Dataset {
        self.with(LogicalPlan::FromRefs {
            schema,
            blocks: Arc::new(blocks),
        })
    }

    /// The first `n` rows.
    pub fn take(&self, n: usize) -> Result<Vec<RecordBatch>> {
        self.limit(n).take_all()
    }

    /// Every row.
    pub fn take_all(&self) -> Result<Vec<RecordBatch>> {
        self.iter_batches()?.collect()
    }

    /// Runs the pipeline once and keeps its blocks in the object store (which spills them
    /// past its budget); the returned dataset reads them instead of re-running the plan.
    pub fn materialize(&self) -> Result<Dataset> {
        let (schema, blocks) = self.materialize_blocks()?;
        Ok(self.with_refs(schema, blocks))
    }

    /// The blocks of this dataset, in the store, with their row counts.
    pub(crate) fn materialize_blocks(&self) -> Result<(SchemaRef, Vec<(ObjectRef<Block>, u64)>)> {
        if let LogicalPlan::FromRefs { schema, blocks } = self.plan.as_ref() {
            return Ok((schema.clone(), blocks.to_vec()));
        }
        let (_, physical) = self.physical()?;
        let (started, reporter) = self.begin(&physical);
        let mut stream = BatchStream::new(&physical, &self.ctx)?;
        let mut blocks = Vec::new();
        let mut schema = None;
        if physical.limit.is_some() {
            for b in stream {
                let b = b?;
                schema.get_or_insert_with(|| b.schema());
                if b.num_rows() > 0 {
                    let rows = b.num_rows() as u64;
                    blocks.push((crate::put(Block::from(b))?, rows));
                }
            }
        } else {
            while let Some(r) = stream.next_block()? {
                let block = crate::get(&r)?;
                schema.get_or_insert_with(|| block.schema().clone());
                if block.num_rows() > 0 {
                    blocks.push((r, block.num_rows() as u64));
                }
            }
        }
        drop(reporter);
        self.record(&physical, started);
        let schema = match schema {
            Some(s) => s,
            None => self.schema()?,
        };
        Ok((schema, blocks))
    }

    /// The schema (runs the pipeline on its first rows when a user function decides it).
    pub fn schema(&self) -> Result<SchemaRef> {
        self.schema_if_known()?.ok_or_else(|| {
            Error::InvalidArgument(
                "the schema of an empty dataset with a user function is unknown".into(),
            )
        })
    }

    /// The files its reads read, in plan order, each once (Ray's `input_files`).
    pub fn input_files(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut todo = vec![&self.plan];
        while let Some(plan) = todo.pop() {
            let files: Vec<&str> = match plan.as_ref() {
                LogicalPlan::ReadParquet { source, .. } => {
                    source.files().iter().map(|f| f.display.as_str()).collect()
                }
                LogicalPlan::ReadText { source } => source.file_names().collect(),
                _ => Vec::new(),
            };
            for f in files {
                if !out.iter().any(|o| o == f) {
                    out.push(f.to_string());
                }
            }
            todo.extend(plan.inputs().into_iter().rev());
        }
        out
    }

    /// The blocks of a materialized dataset (`None` for one that is not: its blocks exist
    /// only while it runs, as many as its execution makes).
    pub fn num_blocks(&self) -> Option<usize> {
        match self.plan.as_ref() {
            LogicalPlan::FromRefs { blocks, .. } => Some(blocks.len()),
            _ => None,
        }
    }

    /// The schema if it is known without running the plan.
    pub(crate) fn known_schema(&self) -> Result<Option<SchemaRef>> {
        static_schema(&self.plan).transpose()
    }

    /// The schema, or `None` for an empty dataset whose schema a user function decides
    /// (it never ran).
    pub(crate) fn schema_if_known(&self) -> Result<Option<SchemaRef>> {
        if let Some(s) = static_schema(&self.plan) {
            return s.map(Some);
        }
        let first = self.limit(1).take_all()?;
        Ok(first.first().map(|b| b.schema()))
    }

    /// Rows (from parquet footers when nothing filters or maps them).
    pub fn count(&self) -> Result<u64> {
        match self.plan.as_ref() {
            LogicalPlan::ReadParquet {
                source,
                filter: None,
                limit,
                ..
            } => {
                let n = source.num_rows();
                return Ok(limit.map_or(n, |l| n.min(l as u64)));
            }
            LogicalPlan::Range { n, .. } => return Ok(*n),
            LogicalPlan::FromRefs { blocks, .. } => return Ok(blocks.iter().map(|b| b.1).sum()),
            _ => {}
        }
        let (_, physical) = self.physical()?;
        let (started, reporter) = self.begin(&physical);
        let counts = run_per_fragment(&physical, "Count", |p, frag, _| {
            let mut rows = 0u64;
            p.run(frag as usize, &mut |b| {
                rows += b.num_rows() as u64;
                Ok(true)
            })?;
            Ok(rows)
        })?;
        drop(reporter);
        self.record(&physical, started);
        let total: u64 = counts.iter().sum();
        Ok(physical.limit.map_or(total, |l| total.min(l as u64)))
    }

    /// The first `n` rows as a table.
    pub fn show(&self, n: usize) -> Result<String> {
        let batches = self.take(n)?;
        Ok(arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    /// Writes parquet files under `dir` (a path or URL): each read task writes
    /// `part-<task>-<n>.parquet` files of about `DataContext::target_file_size` bytes.
    pub fn write_parquet(&self, dir: &str) -> Result<WriteResult> {
        self.write_parquet_with(dir, &WriteOptions::default())
    }

    /// [`Dataset::write_parquet`] with Ray's options: the codec, the fewest rows a file
    /// closes with, hive partition directories.
    pub fn write_parquet_with(&self, dir: &str, opts: &WriteOptions) -> Result<WriteResult> {
        let sink_opts = opts.clone();
        self.write_files(dir, "WriteParquet", opts, move |dir, task, target| {
            sized(sink_opts.min_rows_per_file, target, |target| {
                ParquetSink::new(dir, task, target, &sink_opts)
            })
        })
    }

    /// Writes CSV files (with a header) under `dir`, like [`Dataset::write_parquet`].
    pub fn write_csv(&self, dir: &str) -> Result<WriteResult> {
        self.write_text(dir, TextFormat::Csv, &WriteOptions::default())
    }

    /// Writes newline-delimited JSON files under `dir`, like [`Dataset::write_parquet`].
    pub fn write_json(&self, dir: &str) -> Result<WriteResult> {
        self.write_text(dir, TextFormat::Json, &WriteOptions::default())
    }

    /// Writes files of `format` under `dir` with `opts`.
    pub fn write_with(
        &self,
        dir: &str,
        format: FileFormat,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        match format.text() {
            None => self.write_parquet_with(dir, opts),
            Some(text) => self.write_text(dir, text, opts),
        }
    }

    /// Writes CSV or JSON files with `opts` (a codec is parquet's only).
    pub fn write_text(
        &self,
        dir: &str,
        format: TextFormat,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        if let Some(c) = &opts.compression {
            return Err(Error::InvalidArgument(format!(
                "compression={c:?}: Volley compresses parquet files only, not {}",
                format.ext()
            )));
        }
        let name = match format {
            TextFormat::Csv => "WriteCsv",
            TextFormat::Json => "WriteJson",
        };
        let min_rows = opts.min_rows_per_file;
        self.write_files(dir, name, opts, move |dir, task, target| {
            sized(min_rows, target, |target| {
                TextSink::new(dir, task, format, target)
            })
        })
    }

    /// Writes with one sink per read task (`open(dir, task, target bytes)`); a plan with a
    /// global limit needs one ordered stream, so it is written from the driver by one sink.
    fn write_files(
        &self,
        dir: &str,
        name: &str,
        opts: &WriteOptions,
        open: impl Fn(&str, usize, u64) -> Result<Box<dyn FileSink>> + Send + Sync + 'static,
    ) -> Result<WriteResult> {
        // Check the destination before any work.
        crate::io::location::parse(dir)?;
        // Partitioned: each task's sink splits its rows into a sink per directory.
        let open: Arc<dyn Fn(&str, usize, u64) -> Result<Box<dyn FileSink>> + Send + Sync> =
            if opts.partition_cols.is_empty() {
                Arc::new(open)
            } else {
                let (cols, open) = (opts.partition_cols.clone(), Arc::new(open));
                Arc::new(move |dir: &str, task: usize, target: u64| {
                    let open = open.clone();
                    let sub = move |d: &str| open(d, task, target);
                    Ok(
                        Box::new(PartitionedSink::new(dir, cols.clone(), Box::new(sub)))
                            as Box<dyn FileSink>,
                    )
                })
            };
        let (_, physical) = self.physical()?;
        let (started, reporter) = self.begin(&physical);
        let target = self.ctx.target_file_size;
        let parts = if physical.limit.is_some() {
            let io = io_handle()?;
            let mut sink = open(dir, 0, target)?;
            for b in BatchStream::new(&physical, &self.ctx)? {
                sink.write(&b?, &io)?;
            }
            vec![sink.finish()?]
        } else {
            // The tasks' rests (see `io::min_rows`) gather in one sink, named after a task
            // index no task has.
            let tasks: usize = physical
                .pipelines
                .iter()
                .map(|p| p.source.num_fragments())
                .sum();
            let rest: Arc<Mutex<Option<Box<dyn FileSink>>>> = Arc::new(Mutex::new(None));
            let (dir, open, gather) = (dir.to_string(), open.clone(), rest.clone());
            let mut parts = run_per_fragment(&physical, name, move |p, frag, index| {
                let io = io_handle()?;
                let mut sink = open(&dir, index as usize, target)?;
                p.run(frag as usize, &mut |b| {
                    sink.write(&b, &io)?;
                    Ok(true)
                })?;
                let left = sink.take_rest();
                if !left.is_empty() {
                    let mut rest = gather.lock();
                    let rest = match rest.as_mut() {
                        Some(r) => r,
                        None => rest.insert(open(&dir, tasks, target)?),
                    };
                    for b in &left {
                        rest.write(b, &io)?;
                    }
                }
                sink.finish()
            })?;
            if let Some(r) = rest.lock().take() {
                parts.push(r.finish()?);
            }
            parts
        };
        drop(reporter);
        self.record(&physical, started);
        let mut files: Vec<WrittenFile> = parts.into_iter().flatten().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(WriteResult { files })
    }
}

/// A dataset grouped by key columns.
#[derive(Debug, Clone)]
pub struct GroupedData {
    ds: Dataset,
    keys: Vec<String>,
}

impl GroupedData {
    /// Checks that `columns` exist when the schema is known before running.
    fn check_columns<'a>(&self, columns: impl Iterator<Item = &'a String>) -> Result<()> {
        if let Some(s) = static_schema(&self.ds.plan) {
            let s = s?;
            for k in columns {
                s.index_of(k).map_err(|_| no_column(k, &s))?;
            }
        }
        Ok(())
    }

    /// Calls `f` once per group with all its rows in one batch (sorted by the keys); the
    /// outputs of all groups make the result.
    pub fn map_groups<F>(&self, name: &str, f: F) -> Result<Dataset>
    where
        F: Fn(RecordBatch) -> TaskResult<RecordBatch> + Send + Sync + 'static,
    {
        if self.keys.is_empty() {
            return Err(Error::InvalidArgument(
                "map_groups needs at least one key".into(),
            ));
        }
        self.check_columns(self.keys.iter())?;
        let udf: Arc<BatchFn> = Arc::new(f);
        Ok(self.ds.with(LogicalPlan::MapGroups {
            input: self.ds.plan.clone(),
            keys: self.keys.clone(),
            name: name.to_string(),
            udf,
        }))
    }

    /// One row per group: the keys, then one column per aggregate (`count()`, `sum(x)`, ...).
    pub fn aggregate(&self, aggs: &[Agg]) -> Result<Dataset> {
        if aggs.is_empty() {
            return Err(Error::InvalidArgument(
                "aggregate needs at least one aggregate".into(),
            ));
        }
        self.check_columns(
            self.keys
                .iter()
                .chain(aggs.iter().filter_map(|a| a.column.as_ref())),
        )?;
        Ok(self.ds.with(LogicalPlan::Aggregate {
            input: self.ds.plan.clone(),
            keys: self.keys.clone(),
            aggs: aggs.to_vec(),
        }))
    }

    /// Rows per group (`count()`).
    pub fn count(&self) -> Result<Dataset> {
        self.aggregate(&[Agg::count()])
    }

    /// `sum(column)` per group.
    pub fn sum(&self, column: &str) -> Result<Dataset> {
        self.aggregate(&[Agg::sum(column)])
    }

    /// `min(column)` per group.
    pub fn min(&self, column: &str) -> Result<Dataset> {
        self.aggregate(&[Agg::min(column)])
    }

    /// `max(column)` per group.
    pub fn max(&self, column: &str) -> Result<Dataset> {
        self.aggregate(&[Agg::max(column)])
    }

    /// `mean(column)` per group.
    pub fn mean(&self, column: &str) -> Result<Dataset> {
        self.aggregate(&[Agg::mean(column)])
    }

    /// `std(column)` per group (sample standard deviation).
    pub fn std(&self, column: &str) -> Result<Dataset> {
        self.aggregate(&[Agg::std(column)])
    }
}

impl Agg {
    /// The aggregate named `kind` (count, sum, min, max, mean, std, abs_max, unique, or
    /// `quantile:Q` with `0 <= Q <= 1`) of `column` (count: rows for an empty column, its
    /// non-null values otherwise).
    pub fn parse(kind: &str, column: &str) -> Result<Agg> {
        let of = |kind| Agg {
            kind,
            column: Some(column.to_string()),
        };
        Ok(match kind {
            "count" if column.is_empty() => Agg::count(),
            "count" => of(AggKind::Count),
            "sum" => Agg::sum(column),
            "min" => Agg::min(column),
            "max" => Agg::max(column),
            "mean" => Agg::mean(column),
            "std" => Agg::std(column),
            "abs_max" => of(AggKind::AbsMax),
            "unique" => of(AggKind::Unique),
            q if q.starts_with("quantile:") => {
                let q = q["quantile:".len()..]
                    .parse::<f64>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "{kind:?}: a quantile must be a number between 0 and 1"
                        ))
                    })?;
                of(AggKind::Quantile(q))
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown aggregate {other:?}"
                )));
            }
        })
    }

    /// Rows.
    pub fn count() -> Agg {
        Agg {
            kind: AggKind::Count,
            column: None,
        }
    }
    /// Sum of a column.
    pub fn sum(column: &str) -> Agg {
        Agg {
            kind: AggKind::Sum,
            column: Some(column.to_string()),
        }
    }
    /// Minimum of a column.
    pub fn min(column: &str) -> Agg {
        Agg {
            kind: AggKind::Min,
            column: Some(column.to_string()),
        }
    }
    /// Maximum of a column.
    pub fn max(column: &str) -> Agg {
        Agg {
            kind: AggKind::Max,
            column: Some(column.to_string()),
        }
    }
    /// Mean of a column.
    pub fn mean(column: &str) -> Agg {
        Agg {
            kind: AggKind::Mean,
            column: Some(column.to_string()),
        }
    }
    /// Sample standard deviation of a column.
    pub fn std(column: &str) -> Agg {
        Agg {
            kind: AggKind::Std,
            column: Some(column.to_string()),
        }
    }
}

/// Cuts `blocks` (in order) into consecutive pieces of `sizes[i]` rows; rows past the sum of
/// `sizes` are dropped. A block that straddles a cut is sliced (the slices share its
/// buffers) and each slice is put in the store as a block of its own.
fn cut_blocks(
    blocks: Vec<(ObjectRef<Block>, u64)>,
    sizes: &[u64],
) -> Result<Vec<Vec<(ObjectRef<Block>, u64)>>> {
    let mut queue: std::collections::VecDeque<(ObjectRef<Block>, u64, u64)> =
        blocks.into_iter().map(|(r, rows)| (r, 0, rows)).collect();
    let mut out = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let mut part = Vec::new();
        let mut need = size;
        while need > 0 {
            let Some((r, start, rows)) = queue.pop_front() else {
                break;
            };
            let take = rows.min(need);
            if start == 0 && take == rows {
                part.push((r, rows));
            } else {
                let block = crate::get(&r)?;
                let piece = slice_batches(block.batches(), start as usize, take as usize);
                part.push((
                    crate::put(Block::try_new(block.schema().clone(), piece)?)?,
                    take,
                ));
                if take < rows {
                    queue.push_front((r, start + take, rows - take));
                }
            }
            need -= take;
        }
        out.push(part);
    }
    Ok(out)
}

/// Rows `start..start + len` of `batches` (zero-copy slices).
fn slice_batches(batches: &[RecordBatch], mut start: usize, mut len: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for b in batches {
        if len == 0 {
            break;
        }
        if start >= b.num_rows() {
            start -= b.num_rows();
            continue;
        }
        let take = (b.num_rows() - start).min(len);
        out.push(b.slice(start, take));
        len -= take;
        start = 0;
    }
    out
}
