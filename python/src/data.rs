//! `volley._native.Dataset`: the engine's dataset handle, one thin method per operation.
//! Each transformation is a [`Step`] the engine applies where the dataset is (in the driver,
//! or in the node for a task or actor in a worker process). Python user functions run in
//! worker processes through the engine's foreign calls; batches cross as Arrow C streams.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use pyo3::prelude::*;
use volley::Block;
use volley::data::{
    Batches, Compute, ContextSpec, DatasetHandle, FileFormat, ForeignMap, MapOptions, Progress,
    ProgressSink, Source, Step,
};

use crate::{ArrowStream, PyObjectRef, Res, block_from_py, eng};

/// A lazy dataset.
#[pyclass(module = "volley._native", name = "Dataset", frozen)]
pub(crate) struct PyDataset {
    ds: DatasetHandle,
}

fn wrap(ds: DatasetHandle) -> PyDataset {
    PyDataset { ds }
}

fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> Res<ArrowStream> {
    Ok(ArrowStream {
        block: eng(Block::try_new(schema, batches))?,
    })
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
        max_tasks: None,
    }
}

fn open(py: Python<'_>, source: Source) -> Res<PyDataset> {
    py.detach(|| eng(DatasetHandle::open(source))).map(wrap)
}

/// Files of `format` (parquet, csv, json); `include_paths` adds each row's file.
#[pyfunction]
#[pyo3(signature = (format, paths, include_paths=false))]
pub(crate) fn data_read(
    py: Python<'_>,
    format: &str,
    paths: Vec<String>,
    include_paths: bool,
) -> Res<PyDataset> {
    let format = eng(FileFormat::parse(format))?;
    open(
        py,
        Source::Files {
            format,
            paths,
            include_paths,
        },
    )
}

#[pyfunction]
#[pyo3(signature = (n, blocks=None))]
pub(crate) fn data_range(py: Python<'_>, n: u64, blocks: Option<u64>) -> Res<PyDataset> {
    open(py, Source::Range(n, blocks))
}

/// A dataset of Arrow tables (objects with `__arrow_c_stream__`), without copying.
#[pyfunction]
pub(crate) fn data_from_arrow(py: Python<'_>, tables: Vec<Bound<'_, PyAny>>) -> Res<PyDataset> {
    let mut batches = Vec::new();
    let mut schema = None;
    for t in &tables {
        let block = block_from_py(t)?;
        schema.get_or_insert_with(|| block.schema().clone());
        batches.extend(block.batches().iter().cloned());
    }
    // Tables without rows: one empty batch keeps their columns.
    if let (true, Some(schema)) = (batches.is_empty(), schema) {
        batches.push(volley::arrow::array::RecordBatch::new_empty(schema));
    }
    py.detach(|| eng(DatasetHandle::from_batches(batches)))
        .map(wrap)
}

/// The dataset lent under `anchor` (a pickled dataset, unpickled).
#[pyfunction]
pub(crate) fn data_lent(py: Python<'_>, anchor: PyRef<'_, PyObjectRef>) -> Res<PyDataset> {
    let anchor = anchor.inner.clone();
    py.detach(|| eng(DatasetHandle::lent(anchor))).map(wrap)
}

impl PyDataset {
    fn then(&self, py: Python<'_>, step: Step) -> Res<PyDataset> {
        py.detach(|| eng(self.ds.then(step, None))).map(wrap)
    }

    fn with(&self, py: Python<'_>, step: Step, other: &PyDataset) -> Res<PyDataset> {
        py.detach(|| eng(self.ds.then(step, Some(&other.ds))))
            .map(wrap)
    }
}

#[pymethods]
impl PyDataset {
    /// A Python function over batches, in tasks.
    /// `concurrency`: most tasks running it at once.
    #[pyo3(signature = (name, function, structure, batch_size=None, num_cpus=None, num_gpus=0.0,
                        resources=Vec::new(), concurrency=None))]
    #[allow(clippy::too_many_arguments)]
    fn map_batches(
        &self,
        py: Python<'_>,
        name: String,
        function: u64,
        structure: Vec<u8>,
        batch_size: Option<usize>,
        num_cpus: Option<f64>,
        num_gpus: f64,
        resources: Vec<(String, f64)>,
        concurrency: Option<usize>,
    ) -> Res<PyDataset> {
        let opts = MapOptions {
            max_tasks: concurrency,
            ..options(batch_size, None, num_cpus, num_gpus, resources)
        };
        let udf = ForeignMap {
            name,
            function,
            structure,
        };
        self.then(py, Step::MapBatches { udf, opts })
    }

    /// A Python callable class over batches, in a pool of `min_size..=max_size` instances
    /// (each in its own worker process; its constructor runs once).
    #[pyo3(signature = (name, class_id, ctor_structure, call_structure, min_size, max_size,
                        batch_size=None, num_cpus=None, num_gpus=0.0, resources=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn map_batches_class(
        &self,
        py: Python<'_>,
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
        let bounds = Some((min_size, max_size));
        let opts = options(batch_size, bounds, num_cpus, num_gpus, resources);
        let class = ForeignMap {
            name,
            function: class_id,
            structure: ctor_structure,
        };
        let call = call_structure;
        self.then(py, Step::MapBatchesClass { class, call, opts })
    }

    /// A Python function over each group of rows with equal `keys`.
    fn map_groups(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        name: String,
        function: u64,
        structure: Vec<u8>,
    ) -> Res<PyDataset> {
        let udf = ForeignMap {
            name,
            function,
            structure,
        };
        self.then(py, Step::MapGroups { keys, udf })
    }

    /// The dataset with the front end's `DataContext`. Progress while it runs: `bars` draws
    /// them on stderr (redrawn on a terminal, logged otherwise); `callback(text, finished)`
    /// gets every snapshot (Jupyter). `None` keeps the engine's default of a setting.
    #[pyo3(signature = (bars, callback=None, interval_s=0.5, target_max_block_size=None,
                        max_tasks_in_flight=None, pipeline_budget_bytes=None))]
    #[allow(clippy::too_many_arguments)]
    fn with_context(
        &self,
        py: Python<'_>,
        bars: bool,
        callback: Option<Py<PyAny>>,
        interval_s: f64,
        target_max_block_size: Option<u64>,
        max_tasks_in_flight: Option<usize>,
        pipeline_budget_bytes: Option<u64>,
    ) -> Res<PyDataset> {
        let spec = ContextSpec {
            bars,
            interval_s,
            target_max_block_size,
            max_tasks_in_flight,
            pipeline_budget_bytes,
        };
        let (Some(cb), Some(ds)) = (callback, self.ds.here()) else {
            // A dataset the node holds for this worker draws no progress here.
            return self.then(py, Step::Context(spec));
        };
        let mut ctx = eng(spec.apply(ds.context().clone()))?;
        ctx.progress_sink = Some(ProgressSink(Arc::new(move |p: &Progress| {
            Python::attach(|py| {
                if let Err(e) = cb.call1(py, (p.render_text(), p.finished)) {
                    e.print(py);
                }
            })
        })));
        Ok(wrap(DatasetHandle::Here(ds.clone().with_context(ctx))))
    }

    fn filter_sql(&self, py: Python<'_>, predicate: String) -> Res<PyDataset> {
        self.then(py, Step::FilterSql(predicate))
    }

    fn with_columns_sql(&self, py: Python<'_>, values: Vec<(String, String)>) -> Res<PyDataset> {
        self.then(py, Step::WithColumnsSql(values))
    }

    fn select_columns(&self, py: Python<'_>, columns: Vec<String>) -> Res<PyDataset> {
        self.then(py, Step::Select(columns))
    }

    fn drop_columns(&self, py: Python<'_>, columns: Vec<String>) -> Res<PyDataset> {
        self.then(py, Step::Drop(columns))
    }

    fn rename_columns(&self, py: Python<'_>, renames: Vec<(String, String)>) -> Res<PyDataset> {
        self.then(py, Step::Rename(renames))
    }

    fn limit(&self, py: Python<'_>, n: usize) -> Res<PyDataset> {
        self.then(py, Step::Limit(n))
    }

    fn union(&self, py: Python<'_>, other: &PyDataset) -> Res<PyDataset> {
        self.with(py, Step::Union, other)
    }

    fn zip(&self, py: Python<'_>, other: &PyDataset) -> Res<PyDataset> {
        self.with(py, Step::Zip, other)
    }

    /// A hash join on key columns (`how`: inner, left_outer, right_outer, full_outer).
    #[pyo3(signature = (other, how, left_on, right_on, partitions=None))]
    fn join(
        &self,
        py: Python<'_>,
        other: &PyDataset,
        how: String,
        left_on: Vec<String>,
        right_on: Vec<String>,
        partitions: Option<usize>,
    ) -> Res<PyDataset> {
        let step = Step::Join {
            how,
            left_on,
            right_on,
            partitions,
        };
        self.with(py, step, other)
    }

    fn repartition(&self, py: Python<'_>, n: usize) -> Res<PyDataset> {
        self.then(py, Step::Repartition(n))
    }

    #[pyo3(signature = (seed=None))]
    fn random_shuffle(&self, py: Python<'_>, seed: Option<u64>) -> Res<PyDataset> {
        self.then(py, Step::Shuffle(seed))
    }

    /// Sorts by `(column, descending)` keys, split into blocks at `boundaries` (values of
    /// the first key; empty: sampled).
    #[pyo3(signature = (keys, boundaries=Vec::new()))]
    fn sort(
        &self,
        py: Python<'_>,
        keys: Vec<(String, bool)>,
        boundaries: Vec<f64>,
    ) -> Res<PyDataset> {
        self.then(py, Step::Sort(keys, boundaries))
    }

    /// One row per group: `aggs` are `(kind, column)` with kind one of count, sum, min, max,
    /// mean, std.
    fn aggregate(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        aggs: Vec<(String, Option<String>)>,
    ) -> Res<PyDataset> {
        self.then(py, Step::Aggregate { keys, aggs })
    }

    fn split(&self, py: Python<'_>, n: usize, equal: bool) -> Res<Vec<PyDataset>> {
        let parts = py.detach(|| eng(self.ds.split(n, equal)))?;
        Ok(parts.into_iter().map(wrap).collect())
    }

    fn split_at_indices(&self, py: Python<'_>, indices: Vec<u64>) -> Res<Vec<PyDataset>> {
        let parts = py.detach(|| eng(self.ds.split_at_indices(indices)))?;
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
        Ok(its.into_iter().map(BatchIter::new).collect())
    }

    #[pyo3(signature = (batch_size=None))]
    fn iter_batches(&self, py: Python<'_>, batch_size: Option<usize>) -> Res<BatchIter> {
        let it = py.detach(|| eng(self.ds.batches(batch_size)))?;
        Ok(BatchIter::new(it))
    }

    /// Every row (at most `limit`), as one Arrow stream.
    #[pyo3(signature = (limit=None))]
    fn take(&self, py: Python<'_>, limit: Option<usize>) -> Res<ArrowStream> {
        let (schema, batches) = py.detach(|| eng(self.ds.take(limit)))?;
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

    /// The files its reads read (`None`: not known here, a worker's dataset).
    fn input_files(&self) -> Option<Vec<String>> {
        self.ds.input_files()
    }

    /// The blocks of a materialized dataset (`None`: not materialized here).
    fn num_blocks(&self) -> Option<usize> {
        self.ds.num_blocks()
    }

    /// The schema if it is known without running anything (an empty Arrow stream).
    fn known_schema(&self, py: Python<'_>) -> Res<Option<ArrowStream>> {
        match py.detach(|| eng(self.ds.known_schema()))? {
            Some(schema) => stream(schema, Vec::new()).map(Some),
            None => Ok(None),
        }
    }

    fn explain(&self, py: Python<'_>) -> Res<String> {
        py.detach(|| eng(self.ds.explain()))
    }

    /// The last execution's statistics, as text (`None` before any).
    fn stats(&self, py: Python<'_>) -> Res<Option<String>> {
        py.detach(|| eng(self.ds.stats()))
    }

    fn materialize(&self, py: Python<'_>) -> Res<PyDataset> {
        py.detach(|| eng(self.ds.materialize())).map(wrap)
    }

    #[pyo3(signature = (seed=None))]
    fn randomize_block_order(&self, py: Python<'_>, seed: Option<u64>) -> Res<PyDataset> {
        py.detach(|| eng(self.ds.randomize_block_order(seed)))
            .map(wrap)
    }

    /// Lends the dataset to the node (to pickle it): the anchor's ref.
    fn lend(&self, py: Python<'_>) -> Res<PyObjectRef> {
        let inner = py.detach(|| eng(self.ds.lend()))?;
        Ok(PyObjectRef { inner })
    }

    /// Writes files of `format` (parquet, csv, json) under `path`, with Ray's options;
    /// returns `(rows, [(file, rows, bytes)])`.
    #[pyo3(signature = (format, path, compression=None, min_rows_per_file=None,
                        partition_cols=Vec::new()))]
    fn write(
        &self,
        py: Python<'_>,
        format: &str,
        path: &str,
        compression: Option<String>,
        min_rows_per_file: Option<u64>,
        partition_cols: Vec<String>,
    ) -> Res<(u64, Vec<(String, u64, u64)>)> {
        let options = volley::io::WriteOptions {
            compression,
            min_rows_per_file,
            partition_cols,
        };
        let format = eng(FileFormat::parse(format))?;
        let r = py.detach(|| eng(self.ds.write(format, path, options)))?;
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
    inner: std::sync::Mutex<Option<Batches>>,
}

impl BatchIter {
    fn new(it: Batches) -> Self {
        BatchIter {
            inner: std::sync::Mutex::new(Some(it)),
        }
    }

    /// The iterator, moved out (to be lent); `None` when it already was.
    pub(crate) fn take(&self) -> Option<Batches> {
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
