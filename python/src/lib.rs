//! `volley._native`: the thin PyO3 layer between the Python package `volley` and the
//! engine. Every function converts its arguments, calls the engine with the GIL released,
//! and converts back; the engine's errors become the exceptions of `volley.exceptions` in
//! one place ([`to_py_err`]). Arrow data crosses as Arrow C streams (PyCapsules), without
//! copying.
//!
//! The whole surface is the `#[pymodule]` at the bottom; `volley/_native.pyi` declares it.

use std::ffi::CStr;
use std::sync::Mutex;
use std::time::Duration;

use arrow::array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyDict, PyList, PyTuple};
use volley::core::foreign::{
    self, ForeignActor, ForeignActorOptions, ForeignArgs, ForeignGenerator, ForeignRef,
    ForeignTaskOptions, ForeignValue, PutValue, WorkerOutcome,
};
use volley::core::worker::CallKind;
use volley::{Block, Error, FailureCause, ObjectId, SchedulingStrategy};

mod data;

const STREAM: &CStr = c"arrow_array_stream";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Raises the `volley.exceptions` class for `e` (the one place errors are mapped).
pub(crate) fn to_py_err(e: Error) -> PyErr {
    Python::attach(|py| match make_py_err(py, &e) {
        Ok(err) => err,
        Err(failed) => failed,
    })
}

fn make_py_err(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let exc = py.import("volley.exceptions")?;
    let msg = e.to_string();
    let (class, extra): (&str, Option<Bound<'_, PyAny>>) = match e {
        Error::InvalidArgument(_) => ("VolleyValueError", None),
        Error::NotFound(_) => ("VolleyNotFoundError", None),
        Error::InvalidData { .. } => ("VolleyDataError", None),
        Error::NotInitialized => ("VolleyNotInitializedError", None),
        Error::TaskFailed {
            task,
            cause,
            message,
            payload,
            ..
        } => {
            let cause = match cause {
                FailureCause::UserError => "error",
                FailureCause::Panic => "panic",
                FailureCause::WorkerDied => "worker_died",
            };
            let payload = payload.as_ref().map(|p| PyBytes::new(py, p));
            let err = exc.getattr("_task_failure")?.call1((
                task.as_str(),
                cause,
                message.as_str(),
                payload,
            ))?;
            return Ok(PyErr::from_value(err));
        }
        Error::GetTimeout(..) => ("GetTimeoutError", None),
        Error::TaskCancelled(_) => ("TaskCancelledError", None),
        Error::ActorDied { .. } => ("ActorDiedError", None),
        Error::ObjectLost { .. } => ("ObjectLostError", None),
        Error::ObjectElsewhere { .. } => ("ObjectNotLocalError", None),
        Error::Io { .. } => ("VolleyIOError", None),
        Error::Shutdown => ("VolleyShutdownError", None),
        Error::ObjectStoreFull { .. } => ("ObjectStoreFullError", None),
        Error::Infeasible(_) => ("InfeasibleError", None),
        Error::Internal(_) => ("VolleyInternalError", None),
    };
    let value = match extra {
        Some(v) => exc.getattr(class)?.call1((msg, v))?,
        None => exc.getattr(class)?.call1((msg,))?,
    };
    Ok(PyErr::from_value(value))
}

pub(crate) type Res<T> = PyResult<T>;

pub(crate) fn eng<T>(r: volley::Result<T>) -> Res<T> {
    r.map_err(to_py_err)
}

// ---------------------------------------------------------------------------------------------
// Arrow across the boundary
// ---------------------------------------------------------------------------------------------

/// An Arrow C stream over a block's batches (`__arrow_c_stream__`), for pyarrow to import
/// without copying.
#[pyclass(module = "volley._native", frozen)]
pub(crate) struct ArrowStream {
    pub(crate) block: Block,
}

#[pymethods]
impl ArrowStream {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> Res<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let batches: Vec<std::result::Result<RecordBatch, arrow::error::ArrowError>> =
            self.block.batches().iter().cloned().map(Ok).collect();
        let reader = RecordBatchIterator::new(batches, self.block.schema().clone());
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, STREAM)
    }

    /// Rows in the block.
    fn num_rows(&self) -> usize {
        self.block.num_rows()
    }
}

/// Reads any object with `__arrow_c_stream__` (a pyarrow Table or RecordBatch) into a
/// block, sharing its buffers.
pub(crate) fn block_from_py(obj: &Bound<'_, PyAny>) -> Res<Block> {
    let capsule = obj.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>()?;
    let ptr = capsule.pointer_checked(Some(STREAM))?;
    // SAFETY: the capsule named "arrow_array_stream" holds an FFI_ArrowArrayStream (the
    // Arrow PyCapsule interface); from_raw moves it out and marks the original released.
    let reader = unsafe { ArrowArrayStreamReader::from_raw(ptr.as_ptr().cast()) }
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    eng(Block::try_new(schema, batches))
}

fn value_to_py(py: Python<'_>, v: ForeignValue) -> Res<Py<PyAny>> {
    Ok(match v {
        ForeignValue::Pickle(b) => PyBytes::new(py, &b).into_any().unbind(),
        ForeignValue::Arrow(block) => Py::new(py, ArrowStream { block })?.into_any(),
    })
}

/// A value to store and the refs pickled inside it.
fn put_value(obj: &Bound<'_, PyAny>, nested: &[PyRef<'_, PyObjectRef>]) -> Res<PutValue> {
    Ok(PutValue {
        data: value_from_py(obj)?,
        nested: ids(nested),
    })
}

fn value_from_py(obj: &Bound<'_, PyAny>) -> Res<ForeignValue> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(ForeignValue::Pickle(b.as_bytes().to_vec().into()));
    }
    Ok(ForeignValue::Arrow(block_from_py(obj)?))
}

// ---------------------------------------------------------------------------------------------
// Object refs
// ---------------------------------------------------------------------------------------------

/// A reference to an object in the store.
#[pyclass(module = "volley._native", name = "ObjectRef", frozen, subclass)]
struct PyObjectRef {
    inner: ForeignRef,
}

#[pymethods]
impl PyObjectRef {
    /// A new reference to the object with these id bytes (e.g. when unpickling).
    #[staticmethod]
    fn _borrow(id: &[u8]) -> Res<Self> {
        let id = ObjectId::from_bytes(id).ok_or_else(|| PyValueError::new_err("bad object id"))?;
        Ok(PyObjectRef {
            inner: eng(ForeignRef::borrow(id))?,
        })
    }

    /// The id's bytes.
    fn binary<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.id().to_bytes())
    }

    /// The id as hex.
    fn hex(&self) -> String {
        self.inner
            .id()
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.id().hash(&mut h);
        h.finish()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyObjectRef>()
            .is_ok_and(|o| o.get().inner.id() == self.inner.id())
    }

    fn __repr__(&self) -> String {
        format!("ObjectRef({})", self.hex())
    }

    /// Pickles as its id; the ref is recorded so the containing object keeps it alive.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> Res<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let ser = py.import("volley._serialization")?;
        ser.getattr("_note_ref")?.call1((slf,))?;
        let id = PyBytes::new(py, &slf.get().inner.id().to_bytes());
        Ok((ser.getattr("_rebuild_ref")?, (id,)))
    }

    /// `await ref` gives its value without blocking the event loop.
    fn __await__<'py>(slf: &Bound<'py, Self>) -> Res<Bound<'py, PyAny>> {
        let api = slf.py().import("volley._api")?;
        api.getattr("_await_ref")?
            .call1((slf,))?
            .call_method0("__await__")
    }

    /// A `concurrent.futures.Future` of its value.
    fn future<'py>(slf: &Bound<'py, Self>) -> Res<Bound<'py, PyAny>> {
        slf.py()
            .import("volley._api")?
            .getattr("_future")?
            .call1((slf,))
    }
}

fn wrap_refs(py: Python<'_>, refs: Vec<ForeignRef>) -> Res<Vec<Py<PyObjectRef>>> {
    refs.into_iter()
        .map(|inner| Py::new(py, PyObjectRef { inner }))
        .collect()
}

fn ids(refs: &[PyRef<'_, PyObjectRef>]) -> Vec<ObjectId> {
    refs.iter().map(|r| r.inner.id()).collect()
}

fn foreign_args(
    structure: &[u8],
    nested: &[PyRef<'_, PyObjectRef>],
    refs: &[PyRef<'_, PyObjectRef>],
) -> ForeignArgs {
    ForeignArgs::new(structure.to_vec(), &ids(nested), &ids(refs))
}

fn timeout(t: Option<f64>) -> Res<Option<Duration>> {
    t.map(|s| {
        Duration::try_from_secs_f64(s.max(0.0))
            .map_err(|_| PyValueError::new_err(format!("bad timeout {s}")))
    })
    .transpose()
}

// ---------------------------------------------------------------------------------------------
// Runtime
// ---------------------------------------------------------------------------------------------

#[pyfunction]
#[pyo3(signature = (num_cpus=None, num_gpus=None, object_store_memory=None, resources=None,
                    worker_command=None, temp_dir=None, system_config=Vec::new()))]
#[allow(clippy::too_many_arguments)]
fn init(
    py: Python<'_>,
    num_cpus: Option<f64>,
    num_gpus: Option<f64>,
    object_store_memory: Option<u64>,
    resources: Option<Vec<(String, f64)>>,
    worker_command: Option<Vec<String>>,
    temp_dir: Option<String>,
    system_config: Vec<(String, u64)>,
) -> Res<()> {
    let mut c = eng(volley::Config::from_env())?;
    c.num_cpus = num_cpus.or(c.num_cpus);
    c.num_gpus = num_gpus.or(c.num_gpus);
    c.object_store_memory = object_store_memory.or(c.object_store_memory);
    if let Some(r) = resources {
        c.resources.extend(r);
    }
    c.worker_command = worker_command.or(c.worker_command);
    if let Some(t) = temp_dir {
        c.temp_dir = t.into();
    }
    // Ray's `_system_config` keys Volley has (the front end refuses the others by name).
    for (key, value) in system_config {
        match key.as_str() {
            "num_workers_soft_limit" => c.num_workers_soft_limit = Some(value as usize),
            "idle_worker_killing_time_threshold_ms" => {
                c.idle_worker_killing_time_threshold = std::time::Duration::from_millis(value)
            }
            "max_direct_call_object_size" => c.max_inline_object_size = value,
            "max_lineage_bytes" => c.max_lineage_bytes = value,
            other => {
                return Err(PyValueError::new_err(format!(
                    "_system_config key {other:?} is not supported"
                )));
            }
        }
    }
    py.detach(|| eng(volley::init(c)))
}

#[pyfunction]
fn shutdown(py: Python<'_>) {
    py.detach(volley::shutdown)
}

#[pyfunction]
fn is_initialized() -> bool {
    volley::is_initialized() || foreign::is_worker()
}

#[pyfunction]
fn register_function(py: Python<'_>, data: &[u8]) -> u64 {
    let data = data.to_vec();
    py.detach(|| foreign::register_function(data))
}

#[pyfunction]
fn put(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
    nested: Vec<PyRef<'_, PyObjectRef>>,
) -> Res<PyObjectRef> {
    let v = put_value(value, &nested)?;
    let inner = py.detach(|| eng(foreign::put(v)))?;
    Ok(PyObjectRef { inner })
}

#[pyfunction]
#[pyo3(signature = (refs, timeout_s=None))]
fn get(
    py: Python<'_>,
    refs: Vec<PyRef<'_, PyObjectRef>>,
    timeout_s: Option<f64>,
) -> Res<Vec<Py<PyAny>>> {
    let t = timeout(timeout_s)?;
    let refs: Vec<ForeignRef> = refs.iter().map(|r| r.inner.clone()).collect();
    let values = py.detach(|| eng(foreign::get(&refs, t)))?;
    values.into_iter().map(|v| value_to_py(py, v)).collect()
}

#[pyfunction]
#[pyo3(signature = (refs, num_returns, timeout_s=None))]
fn wait(
    py: Python<'_>,
    refs: Vec<PyRef<'_, PyObjectRef>>,
    num_returns: usize,
    timeout_s: Option<f64>,
) -> Res<Vec<bool>> {
    let t = timeout(timeout_s)?;
    let refs: Vec<ForeignRef> = refs.iter().map(|r| r.inner.clone()).collect();
    py.detach(|| eng(foreign::wait(&refs, num_returns, t)))
}

/// Submits a task: its output refs, or (`streaming`) a generator of them.
#[pyfunction]
#[pyo3(signature = (function, structure, nested, refs, name, num_returns=1, num_cpus=1.0,
                    num_gpus=0.0, memory=0, resources=Vec::new(), max_retries=None,
                    retry_exceptions=false, streaming=false, strategy=None))]
#[allow(clippy::too_many_arguments)]
fn submit_task(
    py: Python<'_>,
    function: u64,
    structure: &[u8],
    nested: Vec<PyRef<'_, PyObjectRef>>,
    refs: Vec<PyRef<'_, PyObjectRef>>,
    name: String,
    num_returns: u32,
    num_cpus: f64,
    num_gpus: f64,
    memory: u64,
    resources: Vec<(String, f64)>,
    max_retries: Option<i32>,
    retry_exceptions: bool,
    streaming: bool,
    strategy: Option<&Bound<'_, PyTuple>>,
) -> Res<Py<PyAny>> {
    let args = foreign_args(structure, &nested, &refs);
    let strategy = strategy_from(strategy)?;
    let opts = ForeignTaskOptions {
        name,
        num_returns,
        num_cpus,
        num_gpus,
        memory,
        resources,
        max_retries,
        retry_exceptions,
        streaming,
        strategy,
    };
    if streaming {
        let g = py.detach(|| eng(foreign::submit_streaming_task(function, args, opts)))?;
        return Ok(Py::new(
            py,
            PyRefGenerator {
                inner: Mutex::new(g),
            },
        )?
        .into_any());
    }
    let out = py.detach(|| eng(foreign::submit_task(function, args, opts)))?;
    Ok(PyList::new(py, wrap_refs(py, out)?)?.into_any().unbind())
}

/// A scheduling strategy from its tuple form: `("default",)`, `("spread",)`,
/// `("node", node_id_hex, soft)` or `("placement_group", group_id_bytes, bundle_index)`.
fn strategy_from(t: Option<&Bound<'_, PyTuple>>) -> Res<SchedulingStrategy> {
    let Some(t) = t else {
        return Ok(SchedulingStrategy::Default);
    };
    let kind: String = t.get_item(0)?.extract()?;
    Ok(match kind.as_str() {
        "default" => SchedulingStrategy::Default,
        "spread" => SchedulingStrategy::Spread,
        "node" => {
            let hex: String = t.get_item(1)?.extract()?;
            let node = u64::from_str_radix(&hex, 16)
                .map_err(|_| PyValueError::new_err(format!("{hex:?} is not the id of a node")))?;
            SchedulingStrategy::NodeAffinity {
                node: volley::NodeId(node),
                soft: t.get_item(2)?.extract()?,
            }
        }
        "placement_group" => {
            let id: Vec<u8> = t.get_item(1)?.extract()?;
            let group = <[u8; volley::ObjectId::LEN]>::try_from(id.as_slice())
                .ok()
                .and_then(|b| volley::PlacementGroupId::from_bytes(&b))
                .ok_or_else(|| PyValueError::new_err("a malformed placement group id"))?;
            let bundle_index: Option<u32> = t.get_item(2)?.extract()?;
            SchedulingStrategy::PlacementGroup {
                group,
                bundle_index: bundle_index.map(|i| i as usize),
            }
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown scheduling strategy {other:?}"
            )));
        }
    })
}

/// Refs to a generator task's outputs as it yields them.
#[pyclass(module = "volley._native", name = "RefGenerator", frozen)]
struct PyRefGenerator {
    inner: Mutex<ForeignGenerator>,
}

#[pymethods]
impl PyRefGenerator {
    /// The next output's ref, waiting at most `timeout_s`; `None` at the end (the task's
    /// error if it failed; `GetTimeoutError` if none came in time).
    #[pyo3(signature = (timeout_s=None))]
    fn next_ref(&self, py: Python<'_>, timeout_s: Option<f64>) -> Res<Option<PyObjectRef>> {
        let t = timeout(timeout_s)?;
        let next = py.detach(|| {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            eng(g.next(t))
        })?;
        Ok(next.map(|inner| PyObjectRef { inner }))
    }
}

/// Sends one output of the running generator call to the node.
#[pyfunction]
fn worker_emit(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
    nested: Vec<PyRef<'_, PyObjectRef>>,
) -> Res<()> {
    let v = put_value(value, &nested)?;
    py.detach(|| eng(foreign::worker_emit(v)))
}

#[pyfunction]
#[pyo3(signature = (refs, force=false, recursive=true))]
fn cancel(
    py: Python<'_>,
    refs: Vec<PyRef<'_, PyObjectRef>>,
    force: bool,
    recursive: bool,
) -> Res<()> {
    let refs: Vec<ForeignRef> = refs.iter().map(|r| r.inner.clone()).collect();
    py.detach(|| {
        refs.iter()
            .try_for_each(|r| eng(foreign::cancel(r, force, recursive)))
    })
}

/// Lends a batch iterator to consumers in any process of the node (it is moved there): the
/// ref to its anchor, which keeps it alive.
#[pyfunction]
fn lend_batches(py: Python<'_>, it: PyRef<'_, data::BatchIter>) -> Res<PyObjectRef> {
    let batches = it
        .take()
        .ok_or_else(|| PyValueError::new_err("the dataset iterator was already passed on"))?;
    let inner = py.detach(|| eng(batches.lend()))?;
    Ok(PyObjectRef { inner })
}

/// The next batch of the iterator lent under `anchor`, as a ref; `None` when exhausted.
#[pyfunction]
fn next_lent(py: Python<'_>, anchor: PyRef<'_, PyObjectRef>) -> Res<Option<PyObjectRef>> {
    let anchor = anchor.inner.clone();
    let next = py.detach(|| eng(foreign::next_lent(&anchor)))?;
    Ok(next.map(|inner| PyObjectRef { inner }))
}

/// The node's `max_inline_object_size` (the one inline threshold).
#[pyfunction]
fn max_inline_object_size() -> Res<usize> {
    eng(foreign::max_inline_object_size())
}

/// The ids (hex) of this process's node and of its job.
#[pyfunction]
fn node_and_job(py: Python<'_>) -> Res<(String, String)> {
    py.detach(|| eng(foreign::node_and_job()))
}

/// Where the objects' copies are, in order: (node ids holding it in memory, size in bytes,
/// spilled), or `None` for an object its owner knows nothing of.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn object_copies(
    py: Python<'_>,
    refs: Vec<PyRef<'_, PyObjectRef>>,
) -> Res<Vec<Option<(Vec<String>, u64, bool)>>> {
    let refs: Vec<ForeignRef> = refs.iter().map(|r| r.inner.clone()).collect();
    let copies = py.detach(|| eng(foreign::object_copies(&refs)))?;
    Ok(copies
        .into_iter()
        .map(|c| c.map(|c| (c.node_ids, c.size, c.spilled)))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Placement groups
// ---------------------------------------------------------------------------------------------

/// A placement group (created by the driver).
#[pyclass(module = "volley._native", name = "PlacementGroup", frozen)]
struct PyPlacementGroup {
    inner: volley::PlacementGroup,
}

#[pymethods]
impl PyPlacementGroup {
    /// The id's bytes.
    fn binary<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.id().to_bytes())
    }

    /// `"PENDING"`, `"INFEASIBLE"` (pending, and the node can never place it), `"CREATED"`
    /// or `"REMOVED"`.
    fn state(&self, py: Python<'_>) -> Res<&'static str> {
        use volley::PlacementGroupState as S;
        Ok(match py.detach(|| eng(self.inner.state()))? {
            S::Pending { infeasible: false } => "PENDING",
            S::Pending { infeasible: true } => "INFEASIBLE",
            S::Created => "CREATED",
            S::Removed => "REMOVED",
        })
    }

    /// Waits up to `timeout_s` for the bundles to be reserved.
    fn wait(&self, py: Python<'_>, timeout_s: f64) -> Res<bool> {
        let t = timeout(Some(timeout_s))?.unwrap_or_default();
        py.detach(|| eng(self.inner.wait(t)))
    }

    /// Frees the bundles; tasks and actors queued for them fail.
    fn remove(&self, py: Python<'_>) -> Res<()> {
        py.detach(|| eng(volley::remove_placement_group(&self.inner)))
    }
}

/// Reserves `bundles` (each a list of `(resource, amount)`) with Ray's `strategy` name.
#[pyfunction]
fn placement_group(
    py: Python<'_>,
    bundles: Vec<Vec<(String, f64)>>,
    strategy: &str,
) -> Res<PyPlacementGroup> {
    use volley::{PlacementStrategy as P, ResourceName, ResourceSet};
    let strategy = match strategy {
        "PACK" => P::Pack,
        "SPREAD" => P::Spread,
        "STRICT_PACK" => P::StrictPack,
        "STRICT_SPREAD" => P::StrictSpread,
        other => {
            return Err(PyValueError::new_err(format!(
                "Invalid placement group strategy {other}. Supported strategies are: \
                 ['PACK', 'SPREAD', 'STRICT_PACK', 'STRICT_SPREAD']."
            )));
        }
    };
    let sets = bundles
        .into_iter()
        .map(|b| {
            b.into_iter().fold(ResourceSet::new(), |s, (name, amount)| {
                s.with(ResourceName::parse(&name), amount)
            })
        })
        .collect();
    let inner = py.detach(|| eng(volley::placement_group(sets, strategy)))?;
    Ok(PyPlacementGroup { inner })
}

#[pyfunction]
fn resources(py: Python<'_>, available: bool) -> Res<Vec<(String, f64)>> {
    py.detach(|| eng(foreign::resources(available)))
}

// ---------------------------------------------------------------------------------------------
// Actors
// ---------------------------------------------------------------------------------------------

/// A handle on an actor.
#[pyclass(module = "volley._native", name = "ActorHandle", frozen)]
struct PyActor {
    inner: ForeignActor,
}

#[pymethods]
impl PyActor {
    /// The id's bytes (for pickling).
    fn binary<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.id_bytes())
    }

    /// The class name.
    fn class_name(&self) -> String {
        self.inner.options().class_name.clone()
    }

    /// Its options, as a dict (for pickling).
    fn options<'py>(&self, py: Python<'py>) -> Res<Bound<'py, PyDict>> {
        let o = self.inner.options();
        let d = PyDict::new(py);
        d.set_item("class_name", &o.class_name)?;
        d.set_item("name", &o.name)?;
        d.set_item("num_cpus", o.num_cpus)?;
        d.set_item("num_gpus", o.num_gpus)?;
        d.set_item("resources", o.resources.clone())?;
        d.set_item("max_concurrency", o.max_concurrency)?;
        d.set_item("max_restarts", o.max_restarts)?;
        d.set_item("max_task_retries", o.max_task_retries)?;
        d.set_item("detached", o.detached)?;
        Ok(d)
    }

    /// A handle from id bytes and options (does not keep the actor alive).
    #[staticmethod]
    fn _from_binary(id: &[u8], options: &Bound<'_, PyDict>) -> Res<Self> {
        let opts = actor_options_from(options)?;
        Ok(PyActor {
            inner: eng(ForeignActor::from_id_bytes(id, opts))?,
        })
    }

    /// `(alive, restarts)`.
    fn state(&self, py: Python<'_>) -> Res<(bool, i32)> {
        py.detach(|| eng(foreign::actor_state(&self.inner)))
    }
}

fn actor_options_from(d: &Bound<'_, PyDict>) -> Res<ForeignActorOptions> {
    fn item<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, k: &str, default: T) -> Res<T> {
        match d.get_item(k)? {
            Some(v) if !v.is_none() => v.extract::<T>().map_err(Into::into),
            _ => Ok(default),
        }
    }
    Ok(ForeignActorOptions {
        class_name: item(d, "class_name", "Actor".to_string())?,
        name: item(d, "name", None)?,
        num_cpus: item(d, "num_cpus", 0.0)?,
        num_gpus: item(d, "num_gpus", 0.0)?,
        memory: item(d, "memory", 0)?,
        resources: item(d, "resources", Vec::new())?,
        max_concurrency: item(d, "max_concurrency", 1)?,
        max_restarts: item(d, "max_restarts", 0)?,
        max_task_retries: item(d, "max_task_retries", 0)?,
        detached: item(d, "detached", false)?,
        strategy: match d.get_item("scheduling_strategy")? {
            Some(t) if !t.is_none() => strategy_from(Some(t.cast::<PyTuple>()?))?,
            _ => SchedulingStrategy::Default,
        },
    })
}

#[pyfunction]
fn create_actor(
    py: Python<'_>,
    class_id: u64,
    structure: &[u8],
    nested: Vec<PyRef<'_, PyObjectRef>>,
    refs: Vec<PyRef<'_, PyObjectRef>>,
    options: &Bound<'_, PyDict>,
) -> Res<PyActor> {
    let args = foreign_args(structure, &nested, &refs);
    let opts = actor_options_from(options)?;
    let inner = py.detach(|| eng(foreign::create_actor(class_id, args, opts)))?;
    Ok(PyActor { inner })
}

#[pyfunction]
#[pyo3(signature = (actor, method, structure, nested, refs, num_returns=1))]
fn call_actor(
    py: Python<'_>,
    actor: &PyActor,
    method: &str,
    structure: &[u8],
    nested: Vec<PyRef<'_, PyObjectRef>>,
    refs: Vec<PyRef<'_, PyObjectRef>>,
    num_returns: u32,
) -> Res<Vec<Py<PyObjectRef>>> {
    let args = foreign_args(structure, &nested, &refs);
    let out = py.detach(|| eng(foreign::call_actor(&actor.inner, method, args, num_returns)))?;
    wrap_refs(py, out)
}

#[pyfunction]
#[pyo3(signature = (actor, no_restart=true))]
fn kill_actor(py: Python<'_>, actor: &PyActor, no_restart: bool) -> Res<()> {
    py.detach(|| eng(foreign::kill_actor(&actor.inner, no_restart)))
}

/// Ends the actor this worker runs, with no restart (before the process exits).
#[pyfunction]
fn exit_actor(py: Python<'_>) -> Res<()> {
    py.detach(|| eng(foreign::exit_actor()))
}

/// An anchor of the actor (an object that keeps it alive while it lives), or `None` when
/// the actor is gone.
#[pyfunction]
fn actor_anchor(py: Python<'_>, actor: &PyActor) -> Res<Option<PyObjectRef>> {
    let anchor = py.detach(|| eng(foreign::actor_anchor(&actor.inner)))?;
    Ok(anchor.map(|inner| PyObjectRef { inner }))
}

#[pyfunction]
fn get_actor(py: Python<'_>, name: &str) -> Res<PyActor> {
    let inner = py.detach(|| eng(foreign::get_actor(name)))?;
    Ok(PyActor { inner })
}

// ---------------------------------------------------------------------------------------------
// Worker processes
// ---------------------------------------------------------------------------------------------

#[pyfunction]
fn worker_connect(py: Python<'_>) -> Res<usize> {
    py.detach(|| eng(foreign::worker_connect()))
}

#[pyfunction]
fn is_worker() -> bool {
    foreign::is_worker()
}

#[pyfunction]
fn function_bytes<'py>(py: Python<'py>, function: u64) -> Res<Bound<'py, PyBytes>> {
    let b = eng(foreign::function_bytes(function))?;
    Ok(PyBytes::new(py, &b))
}

/// The next call on `channel` as `(kind, method, name, function, args, num_returns)`
/// (`kind` is "task", "init" or "method"), or `None` when the node closed the channel.
#[pyfunction]
fn worker_next_call<'py>(py: Python<'py>, channel: usize) -> Res<Option<Bound<'py, PyTuple>>> {
    let Some(call) = py.detach(|| eng(foreign::worker_next_call(channel)))? else {
        return Ok(None);
    };
    let (kind, method) = match call.kind {
        CallKind::Task => ("task", None),
        CallKind::ActorNew => ("init", None),
        CallKind::ActorMethod(m) => ("method", Some(m)),
    };
    let args = PyList::empty(py);
    for a in call.args {
        args.append(value_to_py(py, a)?)?;
    }
    let t = (
        kind,
        method,
        call.name,
        call.function,
        args,
        call.num_returns,
    );
    Ok(Some(t.into_pyobject(py)?))
}

/// Reports a finished call: `outputs` are `(value, nested_refs)` pairs (`value` pickled
/// bytes or an Arrow stream object). The list is emptied once they are taken: values that
/// share the call's argument memory must be gone when the worker tells the node whether
/// any outlived the call (the caller holds nothing else of the call by then).
#[pyfunction]
fn worker_finish_ok(py: Python<'_>, channel: usize, outputs: Bound<'_, PyList>) -> Res<()> {
    let values = outputs
        .iter()
        .map(|item| {
            let (v, nested): (Bound<'_, PyAny>, Vec<PyRef<'_, PyObjectRef>>) = item.extract()?;
            put_value(&v, &nested)
        })
        .collect::<Res<Vec<_>>>()?;
    outputs.del_slice(0, outputs.len())?;
    py.detach(|| eng(foreign::worker_finish(channel, WorkerOutcome::Ok(values))))
}

/// Reports a call whose user code raised.
#[pyfunction]
#[pyo3(signature = (channel, message, payload=None))]
fn worker_finish_err(
    py: Python<'_>,
    channel: usize,
    message: String,
    payload: Option<Vec<u8>>,
) -> Res<()> {
    py.detach(|| {
        eng(foreign::worker_finish(
            channel,
            WorkerOutcome::Err { message, payload },
        ))
    })
}

/// Runs the engine's command line (`volley ...`); returns its exit status.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| volley::cli::run(argv))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyObjectRef>()?;
    m.add_class::<PyActor>()?;
    m.add_class::<ArrowStream>()?;
    m.add_class::<PyRefGenerator>()?;
    m.add_function(wrap_pyfunction!(init, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(is_initialized, m)?)?;
    m.add_function(wrap_pyfunction!(register_function, m)?)?;
    m.add_function(wrap_pyfunction!(put, m)?)?;
    m.add_function(wrap_pyfunction!(get, m)?)?;
    m.add_function(wrap_pyfunction!(wait, m)?)?;
    m.add_function(wrap_pyfunction!(submit_task, m)?)?;
    m.add_function(wrap_pyfunction!(cancel, m)?)?;
    m.add_function(wrap_pyfunction!(resources, m)?)?;
    m.add_function(wrap_pyfunction!(node_and_job, m)?)?;
    m.add_function(wrap_pyfunction!(object_copies, m)?)?;
    m.add_function(wrap_pyfunction!(max_inline_object_size, m)?)?;
    m.add_function(wrap_pyfunction!(lend_batches, m)?)?;
    m.add_function(wrap_pyfunction!(next_lent, m)?)?;
    m.add_class::<PyPlacementGroup>()?;
    m.add_function(wrap_pyfunction!(placement_group, m)?)?;
    m.add_function(wrap_pyfunction!(create_actor, m)?)?;
    m.add_function(wrap_pyfunction!(call_actor, m)?)?;
    m.add_function(wrap_pyfunction!(kill_actor, m)?)?;
    m.add_function(wrap_pyfunction!(get_actor, m)?)?;
    m.add_function(wrap_pyfunction!(actor_anchor, m)?)?;
    m.add_function(wrap_pyfunction!(exit_actor, m)?)?;
    m.add_function(wrap_pyfunction!(worker_connect, m)?)?;
    m.add_function(wrap_pyfunction!(is_worker, m)?)?;
    m.add_function(wrap_pyfunction!(function_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(worker_next_call, m)?)?;
    m.add_function(wrap_pyfunction!(worker_finish_ok, m)?)?;
    m.add_function(wrap_pyfunction!(worker_emit, m)?)?;
    m.add_function(wrap_pyfunction!(worker_finish_err, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_class::<data::PyDataset>()?;
    m.add_class::<data::BatchIter>()?;
    m.add_function(wrap_pyfunction!(data::data_read, m)?)?;
    m.add_function(wrap_pyfunction!(data::data_range, m)?)?;
    m.add_function(wrap_pyfunction!(data::data_from_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(data::data_lent, m)?)?;
    // A task or actor in a worker process builds and runs its datasets through this
    // process's node.
    volley::data::serve_in_node();
    Ok(())
}
