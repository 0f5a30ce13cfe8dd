"""The ``Dataset`` class and its constructors (Ray Data's names and arguments)."""

from __future__ import annotations

import builtins
import datetime
import decimal
import html
import inspect
import operator
import warnings
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import pyarrow as pa

from volley import _arrow_types as _types
from volley import _native
from volley._api import _auto_init, _Slot
from volley._arrow_types import PythonObjectType
from volley._serialization import dumps, register_function
from volley.data import _expr, expressions
from volley.data import aggregate as _aggregate

_BATCH_FORMATS = ("default", "pyarrow", "pandas", "numpy")


def _paths(paths: Union[str, Sequence[str]]) -> List[str]:
    return [paths] if isinstance(paths, str) else [str(p) for p in paths]


def _table(stream: Any) -> pa.Table:
    return pa.RecordBatchReader.from_stream(stream).read_all()


def _check_format(batch_format: Optional[str]) -> str:
    fmt = batch_format or "default"
    if fmt not in _BATCH_FORMATS:
        raise ValueError(f"batch_format must be one of {_BATCH_FORMATS}, got {batch_format!r}")
    return "numpy" if fmt == "default" else fmt


def _batch_rows(batch_size: Union[int, None, str]) -> Optional[int]:
    """``map_batches``' rows per call: a positive number, or ``None`` (whole blocks; also
    "default"). Ray's ``"auto"`` (rows from the first block's bytes per row) is refused by
    name, not read as a number."""
    if batch_size in ("default", None):
        return None
    if batch_size == "auto":
        raise NotImplementedError(
            "map_batches(batch_size='auto') is not supported by Volley yet: pass a number of "
            "rows, or None for whole blocks"
        )
    bad = ValueError(f"map_batches(batch_size=...) must be a positive int, got {batch_size!r}")
    if isinstance(batch_size, (bool, str)):
        raise bad
    try:
        rows = operator.index(batch_size)  # an int, or a numpy integer
    except TypeError:
        raise bad from None
    if rows < 1:
        raise bad
    return rows


def _to_format(table: pa.Table, fmt: str, writable: bool = False) -> Any:
    """A batch in ``fmt``; ``writable`` numpy arrays are copies where Arrow's are read-only
    views (``map_batches(zero_copy_batch=False)``, as in Ray)."""
    if fmt == "pyarrow":
        return table
    if fmt == "pandas":
        return _to_pandas(table)
    arrays = {name: _numpy_column(table.column(name)) for name in table.column_names}
    if writable:
        for name, a in arrays.items():
            if not a.flags.writeable:
                arrays[name] = a.copy()
    return arrays


def _numpy_column(column: pa.ChunkedArray) -> Any:
    """A column as numpy; a tensor column as one array of shape ``(rows, *shape)`` (an
    object array of each row's array where shapes differ); Python objects as an object
    array of them."""
    if _types.is_tensor(column.type):
        return _types.to_numpy(column)
    if isinstance(column.type, PythonObjectType):
        return _types.object_rows(column.to_pylist())
    return column.to_numpy()


def _refuse(call: str, options: Dict[str, Any]) -> None:
    """Ray options Volley does not implement: refused, each by name (never ignored)."""
    for k in options:
        raise NotImplementedError(f"{call}({k}=...) is not supported by Volley yet")


def _rebatch(
    tables: Iterator[pa.Table], batch_size: Optional[int], drop_last: bool
) -> Iterator[pa.Table]:
    """Tables of exactly ``batch_size`` rows (the last may be smaller, or dropped with
    ``drop_last``); ``None``: the blocks as they come."""
    if batch_size is None:
        for t in tables:
            if t.num_rows:
                yield t
        return
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
    pending: List[pa.Table] = []
    rows = 0
    for t in tables:
        pending.append(t)
        rows += t.num_rows
        while rows >= batch_size:
            whole = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
            yield whole.slice(0, batch_size)
            rest = whole.slice(batch_size)
            pending, rows = ([rest] if rest.num_rows else []), rest.num_rows
    if rows and not drop_last:
        yield pa.concat_tables(pending) if len(pending) > 1 else pending[0]


def _prefetched(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """``items`` made ``depth`` ahead on a thread of their own (``prefetch_batches``): the
    batch format conversion overlaps the consumer's work. The thread ends with the
    iterator, consumed or dropped."""
    import queue
    import threading

    q: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put((False, e))

    thread = threading.Thread(target=produce, name="volley-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def _local_shuffle(
    tables: Iterator[pa.Table], buffer_rows: int, batch_size: int, seed: Optional[int]
) -> Iterator[pa.Table]:
    """Ray's local shuffle: rows gather in a buffer; once it holds ``buffer_rows`` rows
    beyond a batch, it is shuffled and batches of ``batch_size`` are taken from it while
    ``buffer_rows`` stay to mix with the next rows (every row once)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    buffer: Optional[pa.Table] = None
    for t in tables:
        if not t.num_rows:
            continue
        buffer = t if buffer is None else pa.concat_tables([buffer, t])
        if buffer.num_rows < buffer_rows + batch_size:
            continue
        buffer = buffer.take(rng.permutation(buffer.num_rows))
        while buffer.num_rows >= buffer_rows + batch_size:
            yield buffer.slice(0, batch_size)
            buffer = buffer.slice(batch_size)
    if buffer is not None and buffer.num_rows:
        yield buffer.take(rng.permutation(buffer.num_rows))


def _iter_formatted(
    tables: Iterator[pa.Table],
    batch_size: Optional[int],
    batch_format: Optional[str],
    prefetch_batches: int,
    drop_last: bool,
    local_shuffle_buffer_size: Optional[int] = None,
    local_shuffle_seed: Optional[int] = None,
) -> Iterator[Any]:
    fmt = _check_format(batch_format)
    if not isinstance(prefetch_batches, int) or prefetch_batches < 0:
        raise ValueError(f"prefetch_batches must be an int >= 0, got {prefetch_batches!r}")
    if local_shuffle_buffer_size is not None:
        if not isinstance(local_shuffle_buffer_size, int) or local_shuffle_buffer_size <= 0:
            raise ValueError(
                "local_shuffle_buffer_size must be a positive int, got "
                f"{local_shuffle_buffer_size!r}"
            )
        if batch_size is None:
            raise ValueError(
                "A local shuffle buffer cannot be used with batch_size=None: set a batch_size"
            )
        tables = _local_shuffle(tables, local_shuffle_buffer_size, batch_size, local_shuffle_seed)
    elif local_shuffle_seed is not None:
        raise ValueError("local_shuffle_seed is used with local_shuffle_buffer_size")
    batches = (_to_format(t, fmt) for t in _rebatch(tables, batch_size, drop_last))
    # One batch ahead is what the streaming execution gives already; more gets a thread.
    return _prefetched(batches, prefetch_batches) if prefetch_batches > 1 else batches


def _to_pandas(table: pa.Table) -> Any:
    """A batch as a DataFrame whose string columns keep their Arrow data (pandas' pyarrow
    string dtype): pandas 3's default, and on pandas 2 too, where the plain conversion makes
    a Python object of every string (ten times slower on string-heavy data).

    Conversions in a worker run on its own thread (see :func:`_from_format`)."""
    import pandas as pd

    tensors = [n for n, t in zip(table.column_names, table.schema.types) if _types.is_tensor(t)]
    plain = table.drop_columns(tensors) if tensors else table
    if int(pd.__version__.split(".")[0]) >= 3:
        df = plain.to_pandas(use_threads=False)
    else:
        strings = pd.StringDtype("pyarrow")

        def mapper(t: pa.DataType) -> Any:
            return strings if t in (pa.string(), pa.large_string()) else None

        df = plain.to_pandas(types_mapper=mapper, use_threads=False)
    for name in tensors:  # a column of each row's array, in the table's order
        rows = _types.to_numpy(table.column(name))
        df.insert(table.column_names.index(name), name, list(rows) if rows.ndim > 1 else rows)
    return df


def _keep_string_types(out: pa.Table, given: pa.Schema) -> pa.Table:
    """``out`` with the ``string`` type back on the columns that came in as ``string``:
    pandas' pyarrow strings (see :func:`_to_pandas`) return as ``large_string``. Their
    characters stay shared with the input; only the offsets are converted."""
    for i, f in enumerate(out.schema):
        j = given.get_field_index(f.name)
        if pa.types.is_large_string(f.type) and j >= 0 and given.field(j).type == pa.string():
            out = out.set_column(i, f.name, out.column(i).cast(pa.string()))
    return out


def _from_pandas(df: Any) -> pa.Table:
    """A DataFrame as a table; a column of numpy arrays as a tensor column."""
    tensors = {}
    for name in df.columns:
        col = df[name]
        if col.dtype == object and len(col) and _types.is_ndarray(col.iloc[0]):
            column = _types.from_arrays(list(col))
            if column is not None:
                tensors[name] = column
    if not tensors:
        return pa.Table.from_pandas(df, preserve_index=False, nthreads=1)
    rest = [c for c in df.columns if c not in tensors]
    base: Any = pa.Table.from_pandas(df[rest], preserve_index=False, nthreads=1) if rest else None
    columns: Dict[str, Any] = {
        str(c): tensors[c] if c in tensors else base.column(str(c)) for c in df.columns
    }
    return pa.table(columns)


def _from_format(batch: Any) -> pa.Table:
    """The function's result as a table. A DataFrame converts on this thread: pyarrow would
    otherwise start a thread pool for each batch of more than a few hundred rows, which
    costs several times the conversion itself (a worker holds one CPU)."""
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    if isinstance(batch, dict):
        return pa.table({k: _types.as_column(v) for k, v in batch.items()})
    try:
        import pandas as pd

        if isinstance(batch, pd.DataFrame):
            return _from_pandas(batch)
    except ImportError:  # pandas is optional
        pass
    raise TypeError(
        "a map_batches function must return a pyarrow Table or RecordBatch, a pandas "
        f"DataFrame, or a dict of arrays; got {type(batch).__name__}"
    )


class _BatchFn:
    """Runs in a worker: the user's function on each batch the engine sends in one call (the
    chunks of ``table``: many small batches cost one round trip), in the asked format; the
    outputs return as one table."""

    def __init__(
        self, fn: Callable, fmt: str, args: tuple, kwargs: dict, writable: bool = False
    ) -> None:
        self.fn, self.fmt, self.args, self.kwargs = fn, fmt, args, kwargs
        self.writable = writable

    def __call__(self, table: pa.Table) -> pa.Table:
        batches = table.to_batches()
        if len(batches) <= 1:
            return self._one(table)
        outs = [self._one(pa.Table.from_batches([b], table.schema)) for b in batches]
        return _concat_outputs(outs, self.fn)

    def _one(self, table: pa.Table) -> pa.Table:
        batch = _to_format(table, self.fmt, self.writable)
        result = self.fn(batch, *self.args, **self.kwargs)
        if inspect.isgenerator(result):
            # A generator function: every batch it yields is output (Ray's generator UDFs).
            outs = [_from_format(o) for o in result]
            out = _concat_outputs(outs, self.fn) if outs else pa.table({})
        else:
            out = _from_format(result)
        return _keep_string_types(out, table.schema) if self.fmt == "pandas" else out


def _concat_outputs(outs: List[pa.Table], fn: Any) -> pa.Table:
    """The outputs of one function's calls as one table; each must have the first's schema
    (a call that returned no rows and no columns has none, and adds nothing)."""
    kept = [o for o in outs if o.num_columns or o.num_rows]
    if not kept:
        return outs[0]
    first = kept[0].schema
    for o in kept[1:]:
        if not o.schema.equals(first):
            name = getattr(fn, "__name__", type(fn).__name__)
            raise ValueError(
                f"map_batches function {name} returned schema {o.schema} after returning "
                f"{first}: every batch it returns must have the same columns and types"
            )
    return pa.concat_tables(kept)


class _BatchClass:
    """Runs in a worker: one instance of the user's callable class, called per batch."""

    def __init__(
        self,
        cls: type,
        fmt: str,
        args: tuple,
        kwargs: dict,
        cargs: tuple,
        ckwargs: dict,
        writable: bool = False,
    ) -> None:
        self.instance = cls(*cargs, **ckwargs)
        self.fmt, self.args, self.kwargs = fmt, args, kwargs
        self.writable = writable

    def __call__(self, table: pa.Table) -> pa.Table:
        batch = _to_format(table, self.fmt, self.writable)
        out = _from_format(self.instance(batch, *self.args, **self.kwargs))
        return _keep_string_types(out, table.schema) if self.fmt == "pandas" else out


def _in_jupyter() -> bool:
    import sys

    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return type(shell).__name__ == "ZMQInteractiveShell"


class _NotebookProgress:
    """Per-operator progress in a notebook cell, updated in place."""

    def __init__(self) -> None:
        from IPython.display import HTML, display

        self._html = HTML
        self._handle = display(HTML("<pre>volley.data: starting</pre>"), display_id=True)

    def update(self, text: str, finished: bool) -> None:
        state = "done" if finished else "running"
        body = html.escape(text.strip()) or "(no operators)"
        self._handle.update(self._html(f"<pre>volley.data ({state})\n{body}</pre>"))


def _structure(*args: Any) -> bytes:
    payload, _ = dumps((list(args), {}))
    return payload


#: Every batch call gets one argument: the batch (the first ref value).
_BATCH_ARG = _structure(_Slot(0))


@dataclass
class ActorPoolStrategy:
    """Run a callable class in a pool of actors (Ray's ``compute=ActorPoolStrategy(...)``)."""

    min_size: int = 1
    max_size: Optional[int] = None
    size: Optional[int] = None

    def bounds(self) -> Tuple[int, int]:
        if self.size is not None:
            return self.size, self.size
        return self.min_size, self.max_size or self.min_size


class TaskPoolStrategy:
    """Run a function in tasks (Ray's ``compute=TaskPoolStrategy(size=...)``): ``size`` caps
    how many run at once (as ``concurrency=size``)."""

    def __init__(self, size: Optional[int] = None) -> None:
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"size must be >= 1, got {size!r}")
        self.size = size


class ExecutionResources:
    """Resource amounts (Ray's ``ExecutionResources``); as
    ``DataContext.execution_options.resource_limits``: ``cpu`` caps the tasks a dataset runs
    at once and ``object_store_memory`` the bytes of blocks its pipeline holds (``gpu`` and
    ``memory`` limits are not enforced: a warning says so)."""

    def __init__(
        self,
        cpu: Optional[float] = None,
        gpu: Optional[float] = None,
        object_store_memory: Optional[float] = None,
        memory: Optional[float] = None,
    ) -> None:
        self.cpu = cpu
        self.gpu = gpu
        self.object_store_memory = object_store_memory
        self.memory = memory

    @classmethod
    def for_limits(cls, **kwargs: Optional[float]) -> "ExecutionResources":
        return cls(**kwargs)

    def __repr__(self) -> str:
        return (
            f"ExecutionResources(cpu={self.cpu}, gpu={self.gpu}, "
            f"object_store_memory={self.object_store_memory}, memory={self.memory})"
        )


class ExecutionOptions:
    """Ray's ``ExecutionOptions`` (``DataContext.get_current().execution_options``).
    ``preserve_order`` is accepted and always true here: Volley keeps block order."""

    def __init__(
        self,
        resource_limits: Optional[ExecutionResources] = None,
        exclude_resources: Optional[ExecutionResources] = None,
        locality_with_output: Any = False,
        preserve_order: bool = False,
        actor_locality_enabled: bool = True,
        verbose_progress: Optional[bool] = None,
    ) -> None:
        self.resource_limits = resource_limits or ExecutionResources()
        self.exclude_resources = exclude_resources or ExecutionResources()
        self.locality_with_output = locality_with_output
        self.preserve_order = preserve_order
        self.actor_locality_enabled = actor_locality_enabled
        self.verbose_progress = verbose_progress


class DataContext:
    """Execution settings with Ray's names (``DataContext.get_current()``), read when a
    dataset executes:

    - ``enable_progress_bars``: per-operator progress, live in Jupyter and as bars on a
      terminal (log lines when stderr is not a terminal); ``progress_interval_s``.
    - ``target_max_block_size``: bytes per block (default 128 MiB).
    - ``execution_options.resource_limits``: ``cpu`` (tasks at once) and
      ``object_store_memory`` (bytes of blocks in flight; default half the store).
    """

    _current: Optional["DataContext"] = None

    def __init__(self) -> None:
        self.enable_progress_bars = True
        self.progress_interval_s = 0.5
        self.target_max_block_size: Optional[int] = 128 * 1024 * 1024
        self.execution_options = ExecutionOptions()

    @classmethod
    def get_current(cls) -> "DataContext":
        if cls._current is None:
            cls._current = DataContext()
        return cls._current

    def _engine_settings(self) -> Dict[str, Any]:
        """The settings the engine takes, checked."""
        opts = self.execution_options
        limits, excluded = opts.resource_limits, opts.exclude_resources
        ignored = [
            f"{where}.{name}"
            for where, res in (("resource_limits", limits), ("exclude_resources", excluded))
            for name in ("cpu", "gpu", "object_store_memory", "memory")
            if getattr(res, name) is not None
            and (where == "exclude_resources" or name in ("gpu", "memory"))
        ]
        if ignored:
            warnings.warn(
                f"DataContext.execution_options: {', '.join(ignored)} is not enforced by "
                "Volley (resource_limits.cpu and resource_limits.object_store_memory are)",
                stacklevel=3,
            )
        tasks = None
        if limits.cpu is not None:
            if limits.cpu <= 0:
                raise ValueError(f"resource_limits.cpu must be > 0, got {limits.cpu}")
            tasks = max(1, int(limits.cpu))
        budget = None
        if limits.object_store_memory is not None:
            if limits.object_store_memory <= 0:
                raise ValueError(
                    "resource_limits.object_store_memory must be > 0, got "
                    f"{limits.object_store_memory}"
                )
            budget = int(limits.object_store_memory)
        block = self.target_max_block_size
        if block is not None and block <= 0:
            raise ValueError(f"target_max_block_size must be > 0, got {block}")
        return {
            "target_max_block_size": None if block is None else int(block),
            "max_tasks_in_flight": tasks,
            "pipeline_budget_bytes": budget,
        }


def _pool_bounds(compute: Any, concurrency: Any) -> Tuple[int, int]:
    if isinstance(compute, ActorPoolStrategy):
        return compute.bounds()
    if isinstance(concurrency, int):
        return concurrency, concurrency
    if isinstance(concurrency, tuple) and len(concurrency) == 2:
        return int(concurrency[0]), int(concurrency[1])
    if concurrency is None:
        return 1, max(1, int(dict(_native.resources(False)).get("CPU", 1)))
    raise ValueError(f"concurrency must be an int or a (min, max) tuple, got {concurrency!r}")


class Dataset:
    """A lazy dataset of Arrow blocks: transformations add operators, consumption runs them."""

    def __init__(self, native: Any) -> None:
        self._ds = native
        self._run_stats: Optional[str] = None

    def __reduce__(self) -> Any:
        # Lent to the node: a task or actor that gets it asks the node to run it.
        return (_lent_dataset, (self._ds.lend(),))

    def _exec(self) -> Any:
        """The native dataset with this process's progress settings (a dataset a task or
        actor runs, the node runs for it: no progress is drawn there)."""
        ctx = DataContext.get_current()
        settings = ctx._engine_settings()
        if not ctx.enable_progress_bars or _native.is_worker():
            return self._ds.with_context(False, None, ctx.progress_interval_s, **settings)
        if _in_jupyter():
            return self._ds.with_context(
                False, _NotebookProgress().update, ctx.progress_interval_s, **settings
            )
        return self._ds.with_context(True, None, ctx.progress_interval_s, **settings)

    # ---- transformations ------------------------------------------------------------------

    def map_batches(
        self,
        fn: Any,
        *,
        batch_size: Union[int, None, str] = "default",
        compute: Any = None,
        batch_format: Optional[str] = "default",
        zero_copy_batch: bool = False,
        fn_args: Optional[Sequence[Any]] = None,
        fn_kwargs: Optional[Dict[str, Any]] = None,
        fn_constructor_args: Optional[Sequence[Any]] = None,
        fn_constructor_kwargs: Optional[Dict[str, Any]] = None,
        num_cpus: Optional[float] = None,
        num_gpus: Optional[float] = None,
        concurrency: Union[int, Tuple[int, int], None] = None,
        **ray_remote_args: Any,
    ) -> "Dataset":
        """Applies ``fn`` (a function, or a callable class run in a pool of actors) to
        batches in ``batch_format`` ("default" is numpy: a dict of arrays). In "pandas"
        batches, string columns have pandas' pyarrow-backed string dtype (pandas 3's
        default; on pandas 2 too, where Ray gives Python objects)."""
        fmt = _check_format(batch_format)
        size = _batch_rows(batch_size)
        name = getattr(fn, "__name__", type(fn).__name__)
        remote_args = dict(ray_remote_args)
        resources = [(k, float(v)) for k, v in (remote_args.pop("resources", None) or {}).items()]
        _refuse("map_batches", remote_args)
        writable = not zero_copy_batch
        placement = dict(
            batch_size=size, num_cpus=num_cpus, num_gpus=float(num_gpus or 0.0), resources=resources
        )
        if inspect.isclass(fn):
            lo, hi = _pool_bounds(compute, concurrency)
            class_id = register_function(_BatchClass)
            ctor = _structure(
                fn,
                fmt,
                tuple(fn_args or ()),
                dict(fn_kwargs or {}),
                tuple(fn_constructor_args or ()),
                dict(fn_constructor_kwargs or {}),
                writable,
            )
            native = self._ds.map_batches_class(
                name,
                class_id,
                ctor,
                _BATCH_ARG,
                lo,
                hi,
                **placement,
            )
        else:
            if fn_constructor_args or fn_constructor_kwargs:
                raise ValueError("fn_constructor_args need a callable class, not a function")
            if isinstance(compute, TaskPoolStrategy):
                if concurrency is not None and compute.size is not None:
                    raise ValueError("give either compute=TaskPoolStrategy(size) or concurrency")
                concurrency = compute.size if concurrency is None else concurrency
            elif compute not in (None, "tasks"):
                raise ValueError(
                    f"map_batches(compute={compute!r}) with a function: an actor pool needs a "
                    "callable class"
                )
            if concurrency is not None and (
                not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1
            ):
                raise ValueError(
                    "concurrency of a function is the most tasks running it at once: an int "
                    f">= 1, got {concurrency!r} (a (min, max) pool is for a callable class)"
                )
            udf = _BatchFn(fn, fmt, tuple(fn_args or ()), dict(fn_kwargs or {}), writable)
            fid = register_function(udf)
            native = self._ds.map_batches(
                name,
                fid,
                _BATCH_ARG,
                concurrency=concurrency,
                **placement,
            )
        return Dataset(native)

    def map(self, fn: Callable[[Dict[str, Any]], Dict[str, Any]], **kwargs: Any) -> "Dataset":
        """Applies ``fn`` to each row (a dict)."""

        def rows(t: pa.Table) -> pa.Table:
            return _rows_table([fn(r) for r in t.to_pylist()])

        rows.__name__ = getattr(fn, "__name__", "map")
        return self.map_batches(rows, batch_format="pyarrow", **kwargs)

    def flat_map(
        self, fn: Callable[[Dict[str, Any]], List[Dict[str, Any]]], **kwargs: Any
    ) -> "Dataset":
        """Applies ``fn`` to each row; every row it returns is output."""

        def rows(t: pa.Table) -> pa.Table:
            return _rows_table([o for r in t.to_pylist() for o in fn(r)])

        rows.__name__ = getattr(fn, "__name__", "flat_map")
        return self.map_batches(rows, batch_format="pyarrow", **kwargs)

    def filter(
        self, fn: Optional[Callable] = None, expr: Optional[Any] = None, **kwargs: Any
    ) -> "Dataset":
        """Keeps the rows where ``fn(row)`` is true, or where ``expr`` holds: a Ray
        expression (``col("UserID") > 7``, ``volley.data.expressions``), Ray's string
        syntax (``"UserID > 7 and key == 'a'"``, names exact) or SQL, evaluated natively
        and pushed into parquet reads."""
        if (fn is None) == (expr is None):
            raise ValueError("Exactly one of 'fn' or 'expr' must be provided.")
        if expr is not None:
            _refuse("filter", kwargs)
            return Dataset(self._ds.filter_sql(self._sql(expr, "expr")))
        if not callable(fn):
            raise ValueError(
                f"fn must be a UserDefinedFunction (a function or a callable class), "
                f"not {type(fn).__name__}: pass an expression as expr="
            )

        def keep(t: pa.Table) -> pa.Table:
            mask = pa.array([bool(fn(r)) for r in t.to_pylist()], type=pa.bool_())
            return t.filter(mask)

        keep.__name__ = getattr(fn, "__name__", "filter")
        return self.map_batches(keep, batch_format="pyarrow", **kwargs)

    def add_column(
        self, col: str, fn: Callable, *, batch_format: str = "pandas", **kwargs: Any
    ) -> "Dataset":
        """Adds (or replaces) column ``col`` with ``fn(batch)``."""
        fmt = _check_format(batch_format)

        def add(t: pa.Table) -> pa.Table:
            values = fn(_to_format(t, fmt))
            arr = pa.array(values)
            if col in t.column_names:
                return t.set_column(t.column_names.index(col), col, arr)
            return t.append_column(col, arr)

        add.__name__ = f"add_column({col})"
        return self.map_batches(add, batch_format="pyarrow", **kwargs)

    def with_column(self, column_name: str, expr: Any, **kwargs: Any) -> "Dataset":
        """Adds (or replaces) column ``column_name`` with ``expr``: a Ray expression
        (``col("a") * 2``, ``volley.data.expressions``), Ray's string syntax or SQL."""
        return self.with_columns({column_name: expr}, **kwargs)

    def with_columns(
        self, exprs: Optional[Mapping[str, Any]] = None, *more_exprs: Any, **kwargs: Any
    ) -> "Dataset":
        """Adds (or replaces) columns, ``{name: expression}``, in one projection: every
        expression sees this dataset's columns (not another entry's result); a replaced
        column keeps its place, new ones follow in the mappings' order."""
        _refuse("with_columns", kwargs)
        values: List[Tuple[str, str]] = []
        for arg in ([] if exprs is None else [exprs]) + list(more_exprs):
            if not isinstance(arg, Mapping):
                raise TypeError(
                    "`with_columns` arguments must be mappings from column name to "
                    f"expression, got {type(arg).__name__}."
                )
            for name, e in arg.items():
                if not isinstance(name, str):
                    raise TypeError(f"a column name is a str, not {type(name).__name__}")
                values.append((name, self._sql(e, f"the expression of column {name!r}")))
        return Dataset(self._ds.with_columns_sql(values)) if values else self

    def _sql(self, e: Any, what: str) -> str:
        """The SQL of a Ray expression, or of an expression string (Ray's syntax or SQL)."""
        if isinstance(e, str):
            return _expr.to_sql(e)
        if isinstance(e, expressions.Expr):
            return expressions.to_sql(e, lambda: _table(self._ds.schema()).schema)
        raise TypeError(
            f"{what} must be an expression (volley.data.expressions) or a string, "
            f"not {type(e).__name__}"
        )

    def select_columns(self, cols: Union[str, List[str]]) -> "Dataset":
        return Dataset(self._ds.select_columns(_paths(cols)))

    def drop_columns(self, cols: Union[str, List[str]]) -> "Dataset":
        return Dataset(self._ds.drop_columns(_paths(cols)))

    def rename_columns(self, names: Union[Dict[str, str], List[str]]) -> "Dataset":
        if isinstance(names, dict):
            pairs = list(names.items())
        else:
            pairs = list(zip(self._schema().names, names))
        return Dataset(self._ds.rename_columns(pairs))

    def limit(self, limit: int) -> "Dataset":
        return Dataset(self._ds.limit(int(limit)))

    def union(self, *others: "Dataset") -> "Dataset":
        ds = self._ds
        for o in others:
            ds = ds.union(o._ds)
        return Dataset(ds)

    def zip(self, *others: "Dataset") -> "Dataset":
        """This dataset's columns beside each of ``others``' (row by row; they must have
        as many rows); a name already taken gets ``_1`` (``_2``, ...) appended."""
        if not others:
            raise ValueError("zip() needs at least one other dataset")
        ds = self._ds
        for o in others:
            ds = ds.zip(o._ds)
        return Dataset(ds)

    def join(
        self,
        ds: "Dataset",
        join_type: str = "inner",
        num_partitions: Optional[int] = None,
        on: Sequence[str] = ("id",),
        right_on: Optional[Sequence[str]] = None,
        left_suffix: Optional[str] = None,
        right_suffix: Optional[str] = None,
        **kwargs: Any,
    ) -> "Dataset":
        """Joins ``ds`` where this dataset's ``on`` columns equal ``ds``'s ``right_on``
        columns (default: ``on``), as Ray's ``Dataset.join``: ``join_type`` is ``"inner"``,
        ``"left_outer"``, ``"right_outer"`` or ``"full_outer"``, rows are hash-partitioned
        into ``num_partitions`` (default: one per input block). Null keys match nothing.
        The result has this dataset's columns (each key once), then ``ds``'s other columns;
        a name both have gets ``_1`` on ``ds``'s side."""
        _refuse("join", kwargs)
        if left_suffix is not None or right_suffix is not None:
            raise NotImplementedError(
                "join(left_suffix=, right_suffix=) is not supported yet: a column name both "
                "datasets have gets '_1' on the right; rename_columns before the join to choose"
            )
        if isinstance(on, str):
            on = (on,)
        if isinstance(right_on, str):
            right_on = (right_on,)
        native = self._ds.join(
            ds._ds,
            join_type,
            list(on),
            list(right_on if right_on is not None else on),
            None if num_partitions is None else int(num_partitions),
        )
        return Dataset(native)

    def repartition(self, num_blocks: int, *, shuffle: bool = False) -> "Dataset":
        """``num_blocks`` blocks; with ``shuffle=True`` rows go to them in random order (a
        full shuffle, as in Ray), else in order."""
        ds = self._ds.random_shuffle(None) if shuffle else self._ds
        return Dataset(ds.repartition(int(num_blocks)))

    def random_shuffle(self, *, seed: Optional[int] = None, **kwargs: Any) -> "Dataset":
        _refuse("random_shuffle", kwargs)
        return Dataset(self._ds.random_shuffle(seed))

    def sort(
        self,
        key: Union[str, List[str]],
        descending: Union[bool, List[bool]] = False,
        boundaries: Optional[List[Any]] = None,
    ) -> "Dataset":
        """Rows ordered by ``key`` (range-partitioned on sampled boundaries). ``boundaries``
        (numbers) split the output into blocks by the first key, as in Ray: with ``[10, 20]``,
        rows under 10, from 10 to under 20, then the rest (in reverse when descending)."""
        splits: List[float] = []
        for b in boundaries or []:
            if not isinstance(b, (int, float)):
                raise ValueError("The type of items in boundaries must be int or float.")
            splits.append(float(b))
        keys = _paths(key)
        desc = descending if isinstance(descending, list) else [descending] * len(keys)
        return Dataset(self._ds.sort(list(zip(keys, desc)), splits))

    def groupby(self, key: Union[str, List[str]]) -> "GroupedData":
        return GroupedData(self, _paths(key))

    # ---- whole-dataset aggregates (Ray's ``ds.sum("x")``: a value; a list: a dict) ---------

    def aggregate(self, *aggs: Any) -> Optional[Dict[str, Any]]:
        """The aggregations (``volley.data.aggregate``) over the whole dataset, as a dict
        of their names to their values; ``None`` for a dataset with no rows."""
        fns = _aggregate.check_aggs(aggs)
        native = _native_aggs(fns)
        if native is not None:
            out = Dataset(self._ds.aggregate([], native[0]))
            rows = _table(out._exec().take(None)).to_pylist()
            return {name: rows[0][of] for name, of in native[1].items()} if rows else None
        accs = [a.init(None) for a in fns]
        seen = 0
        for batch in self.iter_batches(batch_format="pyarrow", batch_size=None):
            seen += batch.num_rows
            accs = [a.accumulate_block(acc, batch) for a, acc in zip(fns, accs)]
        if not seen:
            return None
        return {a.name: a.finalize(acc) for a, acc in zip(fns, accs)}

    def unique(self, column: str, ignore_nulls: bool = False) -> List[Any]:
        """The distinct values of ``column`` (``None`` among them if it has nulls, unless
        ``ignore_nulls=True``)."""
        out = self.aggregate(_aggregate.Unique(column, ignore_nulls=ignore_nulls))
        return [] if out is None else list(out[f"unique({column})"])

    def _aggregate_all(self, cls: Any, on: Union[str, List[str], None], **opts: Any) -> Any:
        """Ray's ``ds.sum("x")``: the value; of a list of columns (every column for
        ``None``), a dict of ``"sum(x)"`` to its value."""
        cols = self._schema().names if on is None else _paths(on)
        fns = [cls(c, **opts) for c in cols]
        out = self.aggregate(*fns) or {}
        values = {a.name: out.get(a.name) for a in fns}
        return values[fns[0].name] if isinstance(on, str) else values

    def sum(self, on: Union[str, List[str], None] = None, ignore_nulls: bool = True) -> Any:
        return self._aggregate_all(_aggregate.Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on: Union[str, List[str], None] = None, ignore_nulls: bool = True) -> Any:
        return self._aggregate_all(_aggregate.Min, on, ignore_nulls=ignore_nulls)

    def max(self, on: Union[str, List[str], None] = None, ignore_nulls: bool = True) -> Any:
        return self._aggregate_all(_aggregate.Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on: Union[str, List[str], None] = None, ignore_nulls: bool = True) -> Any:
        return self._aggregate_all(_aggregate.Mean, on, ignore_nulls=ignore_nulls)

    def std(
        self, on: Union[str, List[str], None] = None, ddof: int = 1, ignore_nulls: bool = True
    ) -> Any:
        return self._aggregate_all(_aggregate.Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    # ---- splitting ------------------------------------------------------------------------

    def split(self, n: int, *, equal: bool = False, locality_hints: Any = None) -> List["Dataset"]:
        if locality_hints is not None:
            _refuse("split", {"locality_hints": locality_hints})
        return [Dataset(d) for d in self._exec().split(int(n), bool(equal))]

    def split_at_indices(self, indices: List[int]) -> List["MaterializedDataset"]:
        """The rows before ``indices[0]``, between each two indices, and from the last on
        (an index past the end gives empty datasets)."""
        indices = list(indices)
        if not indices:
            raise ValueError("indices must be at least of length 1")
        if sorted(indices) != indices:
            raise ValueError("indices must be sorted")
        if indices[0] < 0:
            raise ValueError("indices must be positive")
        return [MaterializedDataset(d) for d in self._exec().split_at_indices(indices)]

    def split_proportionately(self, proportions: List[float]) -> List["MaterializedDataset"]:
        """Datasets of these fractions of the rows (rounded down), and one of the rest."""
        if not proportions:
            raise ValueError("proportions must be at least of length 1")
        if sum(proportions) >= 1:
            raise ValueError("proportions must sum to less than 1")
        if any(p <= 0 for p in proportions):
            raise ValueError("proportions must be bigger than 0")
        # Run once: the count and the split read the materialized blocks.
        ds = self.materialize()
        total = ds.count()
        cumulative, indices = 0.0, []
        for p in proportions:
            cumulative += p
            indices.append(int(total * cumulative))
        return ds.split_at_indices(indices)

    def random_sample(self, fraction: float, *, seed: Optional[int] = None) -> "Dataset":
        """Each row kept with probability ``fraction`` (with ``seed``, the same rows on
        each run of the same plan)."""
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1.")
        import numpy as np

        def sample(t: pa.Table) -> pa.Table:
            import zlib

            # With a seed, each batch draws from a generator seeded by it and the batch's
            # first row, so a run of the same plan keeps the same rows.
            first = zlib.crc32(repr(t.slice(0, 1).to_pylist()).encode())
            rng = np.random.default_rng(None if seed is None else [seed, first, t.num_rows])
            return t.filter(pa.array(rng.random(t.num_rows) < fraction))

        sample.__name__ = "random_sample"
        return self.map_batches(sample, batch_format="pyarrow")

    def streaming_split(
        self, n: int, *, equal: bool = False, locality_hints: Any = None
    ) -> List["_Shard"]:
        """``n`` iterators fed by one execution (for ``n`` training workers)."""
        if locality_hints is not None:
            _refuse("streaming_split", {"locality_hints": locality_hints})
        return [_Shard(it) for it in self._exec().streaming_split(int(n), bool(equal))]

    def iterator(self) -> "_Shard":
        """An iterator over this dataset's batches that can be passed to a task or an actor
        (Ray's ``DataIterator``)."""
        return _Shard(self._exec().iter_batches(None))

    def train_test_split(
        self, test_size: float, *, shuffle: bool = False, seed: Optional[int] = None
    ) -> Tuple["Dataset", "Dataset"]:
        if shuffle and seed is None:
            import random

            seed = random.getrandbits(63)
        a, b = self._exec().train_test_split(float(test_size), seed if shuffle else None)
        return Dataset(a), Dataset(b)

    # ---- consumption ----------------------------------------------------------------------

    def iter_batches(
        self,
        *,
        batch_size: Optional[int] = 256,
        batch_format: Optional[str] = "default",
        prefetch_batches: int = 1,
        drop_last: bool = False,
        local_shuffle_buffer_size: Optional[int] = None,
        local_shuffle_seed: Optional[int] = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Batches of ``batch_size`` rows (the last may be smaller, or dropped with
        ``drop_last``), ``prefetch_batches`` made ahead of the consumer; with
        ``local_shuffle_buffer_size``, drawn at random from a buffer of that many rows."""
        _refuse("iter_batches", kwargs)
        yield from _iter_formatted(
            self._tables(batch_size),
            batch_size,
            batch_format,
            prefetch_batches,
            drop_last,
            local_shuffle_buffer_size,
            local_shuffle_seed,
        )

    def iter_rows(self) -> Iterator[Dict[str, Any]]:
        for t in self._tables():
            yield from t.to_pylist()

    def _tables(self, batch_size: Optional[int] = None) -> Iterator[pa.Table]:
        """Its blocks as tables (cut to about ``batch_size`` rows by the node when given)."""
        for s in self._exec().iter_batches(batch_size):
            yield _table(s)

    def iter_torch_batches(
        self,
        *,
        batch_size: Optional[int] = 256,
        prefetch_batches: int = 1,
        drop_last: bool = False,
        **kwargs: Any,
    ) -> Iterator[Dict[str, Any]]:
        """Batches as dicts of torch tensors."""
        return _torch_batches(self.iter_batches, batch_size, prefetch_batches, drop_last, kwargs)

    def take(self, limit: int = 20) -> List[Dict[str, Any]]:
        return _table(self._exec().take(int(limit))).to_pylist()

    def take_batch(self, batch_size: int = 20, *, batch_format: Optional[str] = "default") -> Any:
        return _to_format(_table(self._exec().take(int(batch_size))), _check_format(batch_format))

    def take_all(self, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """Every row; with ``limit``, a ``ValueError`` when there are more (as in Ray)."""
        return self._at_most(limit, "records").to_pylist()

    def _at_most(self, limit: Optional[int], what: str) -> pa.Table:
        """Every row as a table; a ``ValueError`` past ``limit`` rows (one more is read to
        tell)."""
        table = _table(self._exec().take(None if limit is None else int(limit) + 1))
        if limit is not None and table.num_rows > limit:
            raise ValueError(f"The dataset has more than the given limit of {limit} {what}.")
        return table

    def show(self, limit: int = 20) -> None:
        for row in self.take(limit):
            print(row)

    def count(self) -> int:
        return self._exec().count()

    def schema(self, fetch_if_missing: bool = True) -> Optional["Schema"]:
        """Its columns and their types (Ray's ``Schema``: ``names``, ``types``,
        ``base_schema``; printed as Ray prints it). When a user function decides them, it
        runs on the first rows; with ``fetch_if_missing=False`` the answer is ``None``
        instead."""
        if fetch_if_missing:
            return self._schema()
        known = self._ds.known_schema()
        return None if known is None else Schema(_table(known).schema)

    def _schema(self) -> "Schema":
        return Schema(_table(self._ds.schema()).schema)

    def columns(self, fetch_if_missing: bool = True) -> Optional[List[str]]:
        schema = self.schema(fetch_if_missing)
        return None if schema is None else schema.names

    # ---- naming and metadata --------------------------------------------------------------

    def set_name(self, name: Optional[str]) -> None:
        """Names the dataset (shown in its ``repr``)."""
        self._name = name

    @property
    def name(self) -> Optional[str]:
        return getattr(self, "_name", None)

    def get_dataset_id(self) -> str:
        """A unique id of this dataset object (hex)."""
        if getattr(self, "_id", None) is None:
            import uuid

            self._id = uuid.uuid4().hex
        return self._id

    @property
    def context(self) -> "DataContext":
        """The ``DataContext`` it runs with (the current one)."""
        return DataContext.get_current()

    def input_files(self) -> List[str]:
        """The files its reads read, each once (empty when none, or not known here)."""
        return list(self._ds.input_files() or [])

    def num_blocks(self) -> int:
        """Only a ``MaterializedDataset`` has a number of blocks (as in Ray)."""
        raise NotImplementedError(
            "Number of blocks is only available for a MaterializedDataset, because the number "
            "of blocks may change during execution; call ds.materialize() first"
        )

    def size_bytes(self) -> int:
        """Bytes of its rows in memory (Arrow buffers; runs the plan)."""
        return sum(b.nbytes for b in self._batches())

    def randomize_block_order(self, *, seed: Optional[int] = None) -> "MaterializedDataset":
        """The dataset run once, its blocks in random order (rows within a block keep
        theirs; the same order for the same ``seed``)."""
        return MaterializedDataset(self._exec().randomize_block_order(seed))

    def to_pandas_refs(self) -> List[Any]:
        """A ref per block to its rows as a pandas DataFrame."""
        from volley import put

        return [put(_to_pandas(pa.Table.from_batches([b]))) for b in self._batches()]

    def __getattr__(self, name: str) -> Any:
        if name in _REFUSED_METHODS:
            raise NotImplementedError(
                f"Dataset.{name} is not supported by Volley yet ({_REFUSED_METHODS[name]}); "
                "see the README's Ray Data compatibility table"
            )
        raise AttributeError(f"'Dataset' object has no attribute {name!r}")

    def stats(self) -> str:
        """The last run's operators and figures (a ``materialize()``d dataset: the run that
        materialized it, until it runs again)."""
        return self._ds.stats() or self._run_stats or "(not executed yet)"

    def explain(self) -> str:
        return self._ds.explain()

    def materialize(self) -> "MaterializedDataset":
        """The dataset run once, its blocks kept in the object store."""
        out = MaterializedDataset(self._exec().materialize())
        out._run_stats = self._ds.stats()
        return out

    def to_arrow(self) -> pa.Table:
        return _table(self._exec().take(None))

    def to_pandas(self, limit: Optional[int] = None) -> Any:
        """The rows as a pandas DataFrame; with ``limit``, a ``ValueError`` when there are
        more (as in Ray). A tensor column is a column of each row's array."""
        table = self._at_most(limit, "rows")
        if any(_types.is_tensor(t) for t in table.schema.types):
            return _to_pandas(table)
        return table.to_pandas()

    def to_arrow_refs(self) -> List[Any]:
        from volley import put

        return [put(pa.Table.from_batches([b])) for b in self._batches()]

    def to_numpy_refs(self, *, column: Optional[str] = None) -> List[Any]:
        """A ref per block to its rows as numpy: a dict of arrays, or ``column``'s array."""
        from volley import put

        refs = []
        for b in self._batches():
            t = pa.Table.from_batches([b])
            arrays = _to_format(t.select([column]) if column else t, "numpy")
            refs.append(put(arrays[column] if column else arrays))
        return refs

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for s in self._exec().iter_batches(None):
            yield from _table(s).to_batches()

    def write_parquet(
        self,
        path: str,
        *,
        partition_cols: Optional[List[str]] = None,
        min_rows_per_file: Optional[int] = None,
        compression: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        """Parquet files under ``path``: ``compression`` ("snappy", "zstd", "lz4", "none"),
        ``partition_cols`` (hive ``col=value/`` directories; the files leave the columns
        out), ``min_rows_per_file`` (a file closes at the target size only once it has that
        many rows; each write task's last file may have fewer)."""
        _refuse("write_parquet", kwargs)
        self._write("parquet", path, compression, min_rows_per_file, partition_cols)

    def write_csv(
        self, path: str, *, min_rows_per_file: Optional[int] = None, **kwargs: Any
    ) -> None:
        _refuse("write_csv", kwargs)
        self._write("csv", path, None, min_rows_per_file, None)

    def write_json(
        self, path: str, *, min_rows_per_file: Optional[int] = None, **kwargs: Any
    ) -> None:
        _refuse("write_json", kwargs)
        self._write("json", path, None, min_rows_per_file, None)

    def _write(
        self,
        fmt: str,
        path: str,
        compression: Optional[str],
        min_rows: Optional[int],
        partition_cols: Optional[List[str]],
    ) -> None:
        if min_rows is not None and (not isinstance(min_rows, int) or min_rows < 1):
            raise ValueError(f"min_rows_per_file must be a positive int, got {min_rows!r}")
        cols = _paths(partition_cols) if partition_cols else []
        self._exec().write(fmt, str(path), compression, min_rows, cols)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        raise TypeError(
            "`Dataset` objects aren't iterable. To iterate records, call "
            "`ds.iter_rows()` or `ds.iter_batches()`. For more information, read "
            "https://docs.ray.io/en/latest/data/iterating-over-data.html."
        )

    def __repr__(self) -> str:
        try:
            schema = ", ".join(f"{f.name}: {f.type}" for f in self._schema())
        except Exception:  # a schema that needs running user code: show the plan only
            schema = "?"
        return f"Dataset(schema={{{schema}}})"

    def _repr_html_(self) -> str:
        plan = html.escape(self.explain())
        return f"<b>volley.data.Dataset</b><pre>{html.escape(repr(self))}</pre><pre>{plan}</pre>"


def _torch_batches(
    iter_batches: Callable[..., Iterator[Any]],
    batch_size: Optional[int],
    prefetch_batches: int,
    drop_last: bool,
    kwargs: Dict[str, Any],
) -> Iterator[Dict[str, Any]]:
    import torch

    _refuse("iter_torch_batches", kwargs)
    for b in iter_batches(
        batch_size=batch_size,
        batch_format="numpy",
        prefetch_batches=prefetch_batches,
        drop_last=drop_last,
    ):
        yield {k: torch.as_tensor(v) for k, v in b.items()}


def _lent_dataset(anchor: Any) -> Dataset:
    return Dataset(_native.data_lent(anchor))


class _Shard:
    """A stream of this dataset's batches for one consumer (Ray's ``DataIterator``): a
    ``streaming_split`` shard, or ``Dataset.iterator()``. It can be passed to a task or an
    actor (``ray.train``'s way to feed its workers): pickled, it is lent to the node, which
    runs the execution and hands the consumer one batch at a time through shared memory."""

    def __init__(self, it: Any) -> None:
        self._it = it
        self._anchor: Any = None

    @classmethod
    def _lent(cls, anchor: Any) -> "_Shard":
        shard = cls(None)
        shard._anchor = anchor
        return shard

    def __reduce__(self) -> Any:
        if self._anchor is None:
            # Moved to the node once; this handle reads through it from now on too.
            self._anchor = _native.lend_batches(self._it)
            self._it = None
        return (_Shard._lent, (self._anchor,))

    def _tables(self, batch_size: Optional[int] = None) -> Iterator[pa.Table]:
        if self._anchor is None:
            for s in self._it:
                yield _table(s)
            return
        from volley._api import get

        while True:
            ref = _native.next_lent(self._anchor)
            if ref is None:
                return
            yield get(ref)

    #: This stream's batches and rows (as ``Dataset``'s: its ``_tables`` are the stream's).
    iter_batches = Dataset.iter_batches
    iter_rows = Dataset.iter_rows

    #: This stream's batches as dicts of torch tensors (as ``Dataset.iter_torch_batches``).
    iter_torch_batches = Dataset.iter_torch_batches

    def materialize(self) -> "MaterializedDataset":
        """The rest of this stream's rows as a dataset held in the object store."""
        return from_arrow([t for t in self._tables() if t.num_rows]).materialize()

    def get_context(self) -> "DataContext":
        return DataContext.get_current()

    def __getattr__(self, name: str) -> Any:
        if name in ("stats", "schema", "iter_tf_batches", "iter_jax_batches", "to_tf", "to_torch"):
            raise NotImplementedError(
                f"DataIterator.{name} is not supported by Volley yet; see the README's Ray "
                "Data compatibility table"
            )
        raise AttributeError(f"'DataIterator' object has no attribute {name!r}")


#: Ray 2.60 ``Dataset`` methods Volley refuses, and why (the README's table lists them).
_REFUSED_METHODS = {
    **dict.fromkeys(
        """write_iceberg write_delta write_images write_orc write_tfrecords
            write_webdataset write_numpy write_sql write_snowflake write_mongo
            write_bigquery write_clickhouse write_turbopuffer write_lance
            write_kafka write_datasink""".split(),
        "writes parquet, CSV and JSON",
    ),
    **dict.fromkeys(
        """to_tf iter_tf_batches iter_jax_batches to_daft to_dask to_mars
            to_modin to_spark to_random_access_dataset""".split(),
        "hands data to pandas, Arrow, numpy and torch",
    ),
    **dict.fromkeys(
        """get_stats_summary iter_internal_ref_bundles get_internal_block_refs
            has_serializable_lineage serialize_lineage deserialize_lineage copy
            map_batches_internal""".split(),
        "Ray's internals",
    ),
    **dict.fromkeys(
        """summary mix streaming_train_test_split""".split(),
        "not implemented",
    ),
}


class MaterializedDataset(Dataset):
    """A dataset whose blocks are computed and held in the object store (what
    ``materialize()`` returns); consuming it runs nothing again."""

    def num_blocks(self) -> int:
        """Its blocks in the object store."""
        n = self._ds.num_blocks()
        if n is None:
            raise NotImplementedError(
                "num_blocks of a dataset held by the node for a worker is not known here"
            )
        return int(n)


class Schema:
    """A dataset's columns and their Arrow types (Ray's ``ray.data.Schema``)."""

    def __init__(self, base_schema: pa.Schema) -> None:
        self.base_schema = base_schema

    @property
    def names(self) -> List[str]:
        return list(self.base_schema.names)

    @property
    def types(self) -> List[pa.DataType]:
        return list(self.base_schema.types)

    def __len__(self) -> int:
        return len(self.base_schema)

    def __iter__(self) -> Iterator[pa.Field]:
        return iter(self.base_schema)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Schema):
            other = other.base_schema
        return isinstance(other, pa.Schema) and self.base_schema.equals(other)

    def __hash__(self) -> int:
        return hash(tuple(zip(self.names, map(str, self.types))))

    def __repr__(self) -> str:
        width = max([len("Column"), *(len(n) for n in self.names)]) + 2
        lines = ["Column".ljust(width) + "Type", "------".ljust(width) + "----"]
        lines += [n.ljust(width) + str(t) for n, t in zip(self.names, self.types)]
        return "\n".join(lines)


class GroupedData:
    """``ds.groupby(key)``: aggregations and ``map_groups``."""

    def __init__(self, ds: Dataset, keys: List[str]) -> None:
        self._ds, self._keys = ds, keys

    def _agg(self, cls: Any, on: Union[str, List[str], None], **opts: Any) -> Dataset:
        if on is None:
            # Ray's default: every column but the keys.
            on = [c for c in self._ds._schema().names if c not in self._keys]
        return self.aggregate(*(cls(c, **opts) for c in _paths(on)))

    def count(self) -> Dataset:
        return self.aggregate(_aggregate.Count())

    def sum(self, on: Union[str, List[str], None] = None, ignore_nulls: bool = True) -> Dataset:
        return self._agg(_aggregate.Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on: Union[str, List[str], None] = None, ignore_nulls: bool = True) -> Dataset:
        return self._agg(_aggregate.Min, on, ignore_nulls=ignore_nulls)

    def max(self, on: Union[str, List[str], None] = None, ignore_nulls: bool = True) -> Dataset:
        return self._agg(_aggregate.Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on: Union[str, List[str], None] = None, ignore_nulls: bool = True) -> Dataset:
        return self._agg(_aggregate.Mean, on, ignore_nulls=ignore_nulls)

    def std(
        self, on: Union[str, List[str], None] = None, ddof: int = 1, ignore_nulls: bool = True
    ) -> Dataset:
        return self._agg(_aggregate.Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    def aggregate(self, *aggs: Any) -> Dataset:
        """One row per group: the keys, and a column per aggregation
        (``volley.data.aggregate``: ``Count()``, ``Sum("x")``, ..., custom ones)."""
        fns = _aggregate.check_aggs(aggs)
        native = _native_aggs(fns)
        if native is not None:
            out = Dataset(self._ds._ds.aggregate(self._keys, native[0]))
            if all(name == of for name, of in native[1].items()):
                return out
            named = out.with_columns({n: expressions.col(of) for n, of in native[1].items()})
            return named.select_columns(self._keys + list(native[1]))
        keys = self._keys

        def one_group(t: pa.Table) -> pa.Table:
            values = tuple(t.column(k)[0].as_py() for k in keys)
            key = values[0] if len(values) == 1 else values
            cols: Dict[str, Any] = {k: t.column(k).slice(0, 1) for k in keys}
            for a in fns:
                cols[a.name] = pa.array([a._value(key, t)], type=a._type(t.schema))
            return pa.table(cols)

        one_group.__name__ = "aggregate"
        return self.map_groups(one_group, batch_format="pyarrow")

    def with_column(self, *args: Any, **kwargs: Any) -> Dataset:
        raise NotImplementedError(
            "GroupedData.with_column (Ray's expressions over groups) is not supported by Volley "
            "yet; see the README's Ray Data compatibility table"
        )

    def map_groups(
        self, fn: Callable, *, batch_format: Optional[str] = "default", **kwargs: Any
    ) -> Dataset:
        """Calls ``fn`` once per group with all its rows."""
        _refuse("map_groups", kwargs)
        fmt = _check_format(batch_format)
        udf = _BatchFn(fn, fmt, (), {})
        fid = register_function(udf)
        name = getattr(fn, "__name__", "map_groups")
        return Dataset(self._ds._ds.map_groups(self._keys, name, fid, _BATCH_ARG))


def _native_aggs(
    fns: List[_aggregate.AggregateFn],
) -> Optional[Tuple[List[Tuple[str, Optional[str]]], Dict[str, str]]]:
    """The engine's form of ``fns`` — its ``(kind, column)`` pairs, and each aggregation's
    name mapped to the engine's output column it reads — when it runs them all; else
    ``None``."""
    natives = [a._native() for a in fns]
    if any(n is None for n in natives) or len({a.name for a in fns}) != len(fns):
        return None
    given = [n for n in natives if n is not None]
    # Each engine aggregation once (``Count()`` beside ``Count("x")`` is one count).
    unique = list(dict.fromkeys(given))
    return [(k, c) for k, c, _ in unique], {a.name: name for (_, _, name), a in zip(given, fns)}


# ---- constructors -------------------------------------------------------------------------


@_auto_init
def read_parquet(paths: Union[str, Sequence[str]], **kwargs: Any) -> Dataset:
    """Parquet files: a file, directory, glob or list; local paths or URLs (s3://, gs://,
    az://, file://, memory://). Hive ``key=value/`` directories become columns;
    ``include_paths=True`` adds each row's file as a last column, ``path``."""
    columns = kwargs.pop("columns", None)
    blocks = kwargs.pop("override_num_blocks", None)
    include_paths = bool(kwargs.pop("include_paths", False))
    _refuse("read_parquet", kwargs)
    ds = Dataset(_native.data_read("parquet", _paths(paths), include_paths))
    if columns:
        ds = ds.select_columns(list(columns))
    return _with_blocks(ds, blocks)


def _with_blocks(ds: Dataset, override_num_blocks: Optional[int]) -> Dataset:
    """``override_num_blocks``: the dataset in exactly that many blocks."""
    blocks = _check_blocks(override_num_blocks)
    return ds if blocks is None else ds.repartition(blocks)


def _check_blocks(override_num_blocks: Optional[int]) -> Optional[int]:
    if override_num_blocks is not None and (
        not isinstance(override_num_blocks, int) or override_num_blocks <= 0
    ):
        raise ValueError(f"override_num_blocks must be a positive int, got {override_num_blocks!r}")
    return override_num_blocks


@_auto_init
def read_csv(paths: Union[str, Sequence[str]], **kwargs: Any) -> Dataset:
    blocks = kwargs.pop("override_num_blocks", None)
    include_paths = bool(kwargs.pop("include_paths", False))
    _refuse("read_csv", kwargs)
    return _with_blocks(Dataset(_native.data_read("csv", _paths(paths), include_paths)), blocks)


@_auto_init
def read_json(paths: Union[str, Sequence[str]], **kwargs: Any) -> Dataset:
    """Newline-delimited JSON files."""
    blocks = kwargs.pop("override_num_blocks", None)
    include_paths = bool(kwargs.pop("include_paths", False))
    _refuse("read_json", kwargs)
    return _with_blocks(Dataset(_native.data_read("json", _paths(paths), include_paths)), blocks)


@_auto_init
def range(n: int, *, override_num_blocks: Optional[int] = None) -> Dataset:  # noqa: A001
    """Rows ``{"id": 0..n-1}``."""
    return Dataset(_native.data_range(int(n), _check_blocks(override_num_blocks)))


@_auto_init
def from_arrow(tables: Union[pa.Table, Sequence[pa.Table]]) -> Dataset:
    tables = [tables] if isinstance(tables, (pa.Table, pa.RecordBatch)) else list(tables)
    tables = [t if isinstance(t, pa.Table) else pa.Table.from_batches([t]) for t in tables]
    # No tables at all: no rows and no columns.
    return Dataset(_native.data_from_arrow(tables or [pa.table({})]))


_SCALARS = (bool, int, float, str, bytes, datetime.datetime, datetime.date, decimal.Decimal)


def _is_plain(v: Any, depth: int = 0) -> bool:
    """Whether Arrow holds ``v`` as it is (it reads back equal, as the same type)."""
    if v is None or isinstance(v, _SCALARS):
        return True
    if depth < 8 and isinstance(v, list):
        return all(_is_plain(x, depth + 1) for x in v)
    # A dict is a struct: it holds only dicts that all have its keys (see _column).
    if depth == 0 and isinstance(v, dict):
        return all(isinstance(k, str) and _is_plain(x, depth + 1) for k, x in v.items())
    return False


def _rows_table(rows: List[Dict[str, Any]]) -> pa.Table:
    """Rows a function returned as a table: as pyarrow builds it, or column by column as
    :func:`from_items` does where it cannot (arrays of more than one dimension, objects)."""
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
        return _items_table(rows)


def _items_table(rows: List[Dict[str, Any]]) -> pa.Table:
    """Rows (dicts) as a table, each column as :func:`_column` makes it; the columns in the
    order their names first appear."""
    names: Dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    if not names:
        return pa.Table.from_pylist(rows)
    return pa.table({n: _column([r.get(n) for r in rows]) for n in names})


def _column(values: List[Any]) -> Any:
    """An item column as Arrow: a native type where its values have one that holds them
    faithfully, a tensor column for numpy arrays of one dtype and number of dimensions
    (Ray's tensor types), Python objects otherwise."""
    if any(_types.is_ndarray(v) for v in values):
        tensor = _types.from_arrays(values)
        if tensor is not None:
            return tensor
    kinds = {type(v) for v in values if v is not None}
    keys = {tuple(v) for v in values if isinstance(v, dict)}
    if len(kinds) <= 1 and len(keys) <= 1 and all(_is_plain(v) for v in values):
        try:
            return pa.array(values)
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            OverflowError,
            TypeError,
        ):
            pass  # e.g. an int beyond 64 bits, a decimal beyond 38 digits or infinite
    return _object_column(values)


def _object_column(values: List[Any]) -> Any:
    blobs: List[Optional[bytes]] = []
    for v in values:
        if v is None:
            blobs.append(None)
            continue
        payload, nested = dumps(v, inline=True)
        if nested:
            raise TypeError(
                "from_items: an item holding an ObjectRef cannot be stored in a dataset"
            )
        blobs.append(payload)
    return pa.ExtensionArray.from_storage(PythonObjectType(), pa.array(blobs, pa.large_binary()))


@_auto_init
def from_items(items: List[Any], *, override_num_blocks: Optional[int] = None) -> Dataset:
    """Rows from dicts (other values become ``{"item": value}``). A column of values Arrow
    has no faithful type for (objects) is kept as Python objects; numpy arrays are tensor
    columns where a tensor type holds them."""
    rows = [i if isinstance(i, dict) else {"item": i} for i in items]
    return _with_blocks(from_arrow(_items_table(rows)), override_num_blocks)


@_auto_init
def range_tensor(
    n: int, *, shape: Tuple[int, ...] = (1,), override_num_blocks: Optional[int] = None
) -> Dataset:
    """Rows ``{"data": array}``: the ``i``-th an array of ``shape`` filled with ``i``."""
    import numpy as np

    items = [{"data": np.full(shape, i, dtype=np.int64)} for i in builtins.range(int(n))]
    return from_items(items, override_num_blocks=override_num_blocks)


def _get_refs(refs: Any) -> List[Any]:
    from volley._api import ObjectRef, get

    refs = [refs] if isinstance(refs, ObjectRef) else list(refs)
    return list(get(refs))


@_auto_init
def from_arrow_refs(tables: Any) -> Dataset:
    """A dataset of the Arrow tables held by these refs (a ref or a list)."""
    return from_arrow(_get_refs(tables))


@_auto_init
def from_pandas_refs(dfs: Any) -> Dataset:
    """A dataset of the pandas DataFrames held by these refs."""
    return from_pandas(_get_refs(dfs))


@_auto_init
def from_numpy_refs(ndarrays: Any) -> Dataset:
    """A dataset of the numpy arrays held by these refs (column ``data``)."""
    return from_numpy(_get_refs(ndarrays))


@_auto_init
def from_blocks(blocks: List[Any]) -> Dataset:
    """A dataset of these blocks: Arrow tables or pandas DataFrames."""
    tables = []
    for b in blocks:
        if isinstance(b, pa.Table):
            tables.append(b.replace_schema_metadata(None))
        elif type(b).__name__ == "DataFrame":
            t = pa.Table.from_pandas(b, preserve_index=False)
            tables.append(t.replace_schema_metadata(None))
        else:
            raise TypeError(f"from_blocks takes Arrow tables or pandas DataFrames, got {type(b)}")
    return from_arrow(tables)


@_auto_init
def from_pandas(dfs: Any) -> Dataset:
    dfs = dfs if isinstance(dfs, list) else [dfs]
    return from_arrow([pa.Table.from_pandas(d, preserve_index=False) for d in dfs])


@_auto_init
def from_numpy(arrs: Any) -> Dataset:
    arrs = arrs if isinstance(arrs, list) else [arrs]
    return from_arrow([pa.table({"data": _numpy_data(a)}) for a in arrs])


def _numpy_data(a: Any) -> Any:
    """``from_numpy``'s column of an array's rows: its values for one dimension, a tensor
    column for more (variable-shaped for an object array of arrays of different shapes),
    Python objects where no tensor type holds them."""
    if a.ndim == 1 and a.dtype != object:
        return a
    column = _types.as_column(a)
    return column if isinstance(column, pa.Array) else _object_column(list(a))
