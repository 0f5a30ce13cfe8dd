//! `volley._native.Dataset`: the engine's lazy `Dataset`, one thin method per operation.
//! Python user functions run in worker processes through the engine's foreign calls; batches
//! cross as Arrow C streams.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use pyo3::prelude::*;
use volley::Block;
use volley::core::foreign::{self, ForeignInstance, ForeignValue};
use volley::data::{self, Agg, Compute, MapOptions, Progress, ProgressSink};
use volley::error::{TaskResult, UserError};

use crate::{ArrowStream, Res, block_from_py, eng};

/// A lazy dataset.
#[pyclass(module = "volley._native", name = "Dataset", frozen)]
pub(crate) struct PyDataset {
    ds: data::Dataset,
}

fn wrap(ds: data::Dataset) -> PyDataset {
    PyDataset { ds }
}

fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> Res<ArrowStream> {
    Ok(ArrowStream {
        block: eng(Block::try_new(schema, batches))?,
    })
}

/// The batch a Python function returned (one Arrow value).
fn one_batch(mut out: Vec<ForeignValue>, what: &str) -> TaskResult<RecordBatch> {
    match out.pop() {
        Some(ForeignValue::Arrow(b)) => b.concat().map_err(|e| UserError::msg(e.to_string())),
        _ => Err(UserError::msg(format!("{what} must return a batch"))),
    }
}

fn options(
    batch_size: Option<usize>,
    compute: Option<(usize, usize)>,
    num_cpus: Option<f64>,
    num_gpus: f64,
    resources: Vec<(String, f64)>,
) -> MapOptions {
    MapOptions {
        batch_size,
        compute: compute.map_or(Compute::Tasks, |(min_size, max_size)| Compute::Actors {
            min_size,
            max_size,
        }),
        num_cpus,
        num_gpus,
        resources,
    }
}

/// Calls a registered Python function on each batch, in pooled worker processes.
fn batch_fn(
    function: u64,
    name: String,
    structure: Vec<u8>,
) -> impl Fn(RecordBatch) -> TaskResult<RecordBatch> + Send + Sync + 'static {
    let structure = bytes::Bytes::from(structure);
    move |batch| {
        let args = vec![
            ForeignValue::Pickle(structure.clone()),
            ForeignValue::Arrow(Block::from(batch)),
        ];
        one_batch(foreign::call_function(function, &name, args, 1)?, &name)
    }
}

#[pyfunction]
pub(crate) fn data_read_parquet(py: Python<'_>, paths: Vec<String>) -> Res<PyDataset> {
    py.detach(|| eng(data::read_parquet(&paths))).map(wrap)
}

#[pyfunction]
pub(crate) fn data_read_csv(py: Python<'_>, paths: Vec<String>) -> Res<PyDataset> {
    py.detach(|| eng(data::read_csv(&paths))).map(wrap)
}

#[pyfunction]
pub(crate) fn data_read_json(py: Python<'_>, paths: Vec<String>) -> Res<PyDataset> {
    py.detach(|| eng(data::read_json(&paths))).map(wrap)
}

#[pyfunction]
pub(crate) fn data_range(n: u64) -> Res<PyDataset> {
    eng(data::range(n)).map(wrap)
}

/// A dataset of Arrow tables (objects with `__arrow_c_stream__`), without copying.
#[pyfunction]
pub(crate) fn data_from_arrow(tables: Vec<Bound<'_, PyAny>>) -> Res<PyDataset> {
    let mut batches = Vec::new();
    for t in &tables {
        batches.extend(block_from_py(t)?.batches().iter().cloned());
    }
    eng(data::from_batches(batches)).map(wrap)
}

#[pymethods]
impl PyDataset {
    /// A Python function over batches, in tasks.
    #[pyo3(signature = (name, function, structure, batch_size=None, num_cpus=None, num_gpus=0.0,
                        resources=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn map_batches(
        &self,
        name: String,
        function: u64,
        structure: Vec<u8>,
        batch_size: Option<usize>,
        num_cpus: Option<f64>,
        num_gpus: f64,
        resources: Vec<(String, f64)>,
    ) -> Res<PyDataset> {
        let opts = options(batch_size, None, num_cpus, num_gpus, resources);
        let f = batch_fn(function, name.clone(), structure);
        eng(self.ds.map_batches_with(&name, opts, f)).map(wrap)
    }

    /// A Python callable class over batches, in a pool of `min_size..=max_size` instances
    /// (each in its own worker process; its constructor runs once).
    #[pyo3(signature = (name, class_id, ctor_structure, call_structure, min_size, max_size,
                        batch_size=None, num_cpus=None, num_gpus=0.0, resources=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn map_batches_class(
        &self,
        name: String,
        class_id: u64,
        ctor_structure: Vec<u8>,
        call_structure: Vec<u8>,
        min_size: usize,
        max_size: usize,
        batch_size: Option<usize>,
        num_cpus: Option<f64>,
        num_gpus: f64,
        resources: Vec<(String, f64)>,
    ) -> Res<PyDataset> {
        let opts = options(
            batch_size,
            Some((min_size, max_size)),
            num_cpus,
            num_gpus,
            resources,
        );
        let (ctor, call) = (
            bytes::Bytes::from(ctor_structure),
            bytes::Bytes::from(call_structure),
        );
        let n = name.clone();
        let new =
            move || ForeignInstance::new(class_id, &n, vec![ForeignValue::Pickle(ctor.clone())]);
        let n = name.clone();
        let f = move |inst: &mut ForeignInstance, batch: RecordBatch| {
            let args = vec![
                ForeignValue::Pickle(call.clone()),
                ForeignValue::Arrow(Block::from(batch)),
            ];
            one_batch(inst.call("__call__", args, 1)?, &n)
        };
        eng(self.ds.map_batches_actors(&name, opts, new, f)).map(wrap)
    }

    /// A Python function over each group of rows with equal `keys`.
    fn map_groups(
        &self,
        keys: Vec<String>,
        name: String,
        function: u64,
        structure: Vec<u8>,
    ) -> Res<PyDataset> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let f = batch_fn(function, name.clone(), structure);
        eng(self.ds.groupby(&keys).map_groups(&name, f)).map(wrap)
    }

    /// The dataset with the front end's `DataContext`. Progress while it runs: `bars` draws
    /// them on stderr (redrawn on a terminal, logged otherwise); `callback(text, finished)`
    /// gets every snapshot (Jupyter). `None` keeps the engine's default of a setting.
    #[pyo3(signature = (bars, callback=None, interval_s=0.5, target_max_block_size=None,
                        max_tasks_in_flight=None, pipeline_budget_bytes=None))]
    fn with_context(
        &self,
        bars: bool,
        callback: Option<Py<PyAny>>,
        interval_s: f64,
        target_max_block_size: Option<u64>,
        max_tasks_in_flight: Option<usize>,
        pipeline_budget_bytes: Option<u64>,
    ) -> Res<PyDataset> {
        let mut ctx = self.ds.context().clone();
        if let Some(b) = target_max_block_size {
            if b == 0 {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "target_max_block_size must be > 0",
                ));
            }
            ctx.target_max_block_size = b;
        }
        if let Some(n) = max_tasks_in_flight {
            ctx.max_tasks_in_flight = Some(n.max(1));
        }
        if let Some(b) = pipeline_budget_bytes {
            ctx.pipeline_budget_bytes = Some(b);
        }
        ctx.enable_progress_bars = bars;
        ctx.progress_interval = Duration::from_secs_f64(interval_s.max(0.05));
        ctx.progress_sink = callback.map(|cb| {
            ProgressSink(Arc::new(move |p: &Progress| {
                Python::attach(|py| {
                    if let Err(e) = cb.call1(py, (p.render_text(), p.finished)) {
                        e.print(py);
                    }
                })
            }))
        });
        Ok(wrap(self.ds.clone().with_context(ctx)))
    }

    fn filter_sql(&self, py: Python<'_>, predicate: &str) -> Res<PyDataset> {
        py.detach(|| eng(self.ds.filter_sql(predicate))).map(wrap)
    }

    fn with_column_sql(&self, py: Python<'_>, name: &str, value: &str) -> Res<PyDataset> {
        py.detach(|| eng(self.ds.with_column_sql(name, value)))
            .map(wrap)
    }

    fn select_columns(&self, py: Python<'_>, columns: Vec<String>) -> Res<PyDataset> {
        let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
        py.detach(|| eng(self.ds.select_columns(&cols))).map(wrap)
    }

    fn drop_columns(&self, py: Python<'_>, columns: Vec<String>) -> Res<PyDataset> {
        let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
        py.detach(|| eng(self.ds.drop_columns(&cols))).map(wrap)
    }

    fn rename_columns(&self, py: Python<'_>, renames: Vec<(String, String)>) -> Res<PyDataset> {
        let r: Vec<(&str, &str)> = renames
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        py.detach(|| eng(self.ds.rename_columns(&r))).map(wrap)
    }

    fn limit(&self, n: usize) -> PyDataset {
        wrap(self.ds.limit(n))
    }

    fn union(&self, py: Python<'_>, other: &PyDataset) -> Res<PyDataset> {
        py.detach(|| eng(self.ds.union(&other.ds))).map(wrap)
    }

    fn zip(&self, other: &PyDataset) -> PyDataset {
        wrap(self.ds.zip(&other.ds))
    }

    /// A hash join on key columns (`how`: inner, left_outer, right_outer, full_outer).
    #[pyo3(signature = (other, how, left_on, right_on, partitions=None))]
    fn join(
        &self,
        other: &PyDataset,
        how: &str,
        left_on: Vec<String>,
        right_on: Vec<String>,
        partitions: Option<usize>,
    ) -> Res<PyDataset> {
        let how = eng(data::JoinType::parse(how))?;
        let (l, r): (Vec<&str>, Vec<&str>) = (
            left_on.iter().map(String::as_str).collect(),
            right_on.iter().map(String::as_str).collect(),
        );
        eng(self.ds.join(&other.ds, how, &l, &r, partitions)).map(wrap)
    }

    fn repartition(&self, n: usize) -> Res<PyDataset> {
        eng(self.ds.repartition(n)).map(wrap)
    }

    #[pyo3(signature = (seed=None))]
    fn random_shuffle(&self, seed: Option<u64>) -> PyDataset {
        wrap(self.ds.random_shuffle(seed))
    }

    /// Sorts by `(column, descending)` keys.
    fn sort(&self, py: Python<'_>, keys: Vec<(String, bool)>) -> Res<PyDataset> {
        let k: Vec<(&str, bool)> = keys.iter().map(|(c, d)| (c.as_str(), *d)).collect();
        py.detach(|| eng(self.ds.sort_by(&k))).map(wrap)
    }

    /// One row per group: `aggs` are `(kind, column)` with kind one of count, sum, min, max,
    /// mean, std.
    fn aggregate(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        aggs: Vec<(String, Option<String>)>,
    ) -> Res<PyDataset> {
        let aggs = aggs
            .iter()
            .map(|(kind, column)| {
                let c = column.as_deref().unwrap_or("");
                Ok(match kind.as_str() {
                    "count" => Agg::count(),
                    "sum" => Agg::sum(c),
                    "min" => Agg::min(c),
                    "max" => Agg::max(c),
                    "mean" => Agg::mean(c),
                    "std" => Agg::std(c),
                    other => {
                        return Err(pyo3::exceptions::PyValueError::new_err(format!(
                            "unknown aggregate {other:?}"
                        )));
                    }
                })
            })
            .collect::<Res<Vec<_>>>()?;
        let k: Vec<&str> = keys.iter().map(String::as_str).collect();
        py.detach(|| eng(self.ds.groupby(&k).aggregate(&aggs)))
            .map(wrap)
    }

    fn split(&self, py: Python<'_>, n: usize, equal: bool) -> Res<Vec<PyDataset>> {
        let parts = py.detach(|| eng(self.ds.split(n, equal)))?;
        Ok(parts.into_iter().map(wrap).collect())
    }

    #[pyo3(signature = (test_size, seed=None))]
    fn train_test_split(
        &self,
        py: Python<'_>,
        test_size: f64,
        seed: Option<u64>,
    ) -> Res<(PyDataset, PyDataset)> {
        let (a, b) = py.detach(|| eng(self.ds.train_test_split(test_size, seed)))?;
        Ok((wrap(a), wrap(b)))
    }

    fn streaming_split(&self, py: Python<'_>, n: usize, equal: bool) -> Res<Vec<BatchIter>> {
        let its = py.detach(|| eng(self.ds.streaming_split(n, equal)))?;
        Ok(its
            .into_iter()
            .map(|it| BatchIter::new(Box::new(it)))
            .collect())
    }

    #[pyo3(signature = (batch_size=None))]
    fn iter_batches(&self, py: Python<'_>, batch_size: Option<usize>) -> Res<BatchIter> {
        let inner: Box<dyn Iterator<Item = volley::Result<RecordBatch>> + Send> = match batch_size {
            Some(n) => Box::new(py.detach(|| eng(self.ds.iter_batches_sized(n)))?),
            None => Box::new(py.detach(|| eng(self.ds.iter_batches()))?),
        };
        Ok(BatchIter::new(inner))
    }

    /// Every row (at most `limit`), as one Arrow stream.
    #[pyo3(signature = (limit=None))]
    fn take(&self, py: Python<'_>, limit: Option<usize>) -> Res<ArrowStream> {
        let ds = match limit {
            Some(n) => self.ds.limit(n),
            None => self.ds.clone(),
        };
        let (schema, batches) = py
            .detach(|| -> volley::Result<_> {
                let batches = ds.take_all()?;
                let schema = match batches.first() {
                    Some(b) => b.schema(),
                    None => ds.schema()?,
                };
                Ok((schema, batches))
            })
            .map_err(crate::to_py_err)?;
        stream(schema, batches)
    }

    fn count(&self, py: Python<'_>) -> Res<u64> {
        py.detach(|| eng(self.ds.count()))
    }

    /// The schema, as an empty Arrow stream.
    fn schema(&self, py: Python<'_>) -> Res<ArrowStream> {
        let schema = py.detach(|| eng(self.ds.schema()))?;
        stream(schema, Vec::new())
    }

    fn explain(&self, py: Python<'_>) -> Res<String> {
        py.detach(|| eng(self.ds.explain()))
    }

    /// The last execution's statistics, as text (`None` before any).
    fn stats(&self) -> Option<String> {
        self.ds.stats().map(|s| s.to_string())
    }

    fn materialize(&self, py: Python<'_>) -> Res<PyDataset> {
        py.detach(|| eng(self.ds.materialize())).map(wrap)
    }

    /// Writes files of `format` (parquet, csv, json) under `path`; returns
    /// `(rows, [(file, rows, bytes)])`.
    fn write(
        &self,
        py: Python<'_>,
        format: &str,
        path: &str,
    ) -> Res<(u64, Vec<(String, u64, u64)>)> {
        let r = py.detach(|| match format {
            "parquet" => eng(self.ds.write_parquet(path)),
            "csv" => eng(self.ds.write_csv(path)),
            "json" => eng(self.ds.write_json(path)),
            other => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown format {other:?}"
            ))),
        })?;
        let files = r
            .files
            .iter()
            .map(|f| (f.path.clone(), f.rows, f.bytes))
            .collect();
        Ok((r.rows(), files))
    }
}

/// An iterator of batches (each an Arrow stream of one batch).
#[pyclass(module = "volley._native", name = "BatchIter")]
pub(crate) struct BatchIter {
    inner: std::sync::Mutex<Option<BoxedBatches>>,
}

type BoxedBatches = Box<dyn Iterator<Item = volley::Result<RecordBatch>> + Send>;

impl BatchIter {
    fn new(it: BoxedBatches) -> Self {
        BatchIter {
            inner: std::sync::Mutex::new(Some(it)),
        }
    }

    /// The iterator, moved out (to be lent); `None` when it already was.
    pub(crate) fn take(&self) -> Option<BoxedBatches> {
        self.inner.lock().ok().and_then(|mut it| it.take())
    }
}

impl Drop for BatchIter {
    fn drop(&mut self) {
        // Stopping an execution joins its threads (a progress callback among them may be
        // waiting for the GIL): drop it with the GIL released.
        let it = self.inner.get_mut().ok().and_then(Option::take);
        if let Some(it) = it {
            Python::attach(|py| py.detach(move || drop(it)));
        }
    }
}

#[pymethods]
impl BatchIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> Res<Option<ArrowStream>> {
        let next = py.detach(|| match self.inner.lock() {
            Ok(mut it) => it.as_mut().and_then(|i| i.next()),
            Err(_) => None,
        });
        match next {
            None => Ok(None),
            Some(r) => {
                let b = eng(r)?;
                stream(b.schema(), vec![b]).map(Some)
            }
        }
    }
}
