"""How Python values become objects in the store, and back.

- A ``pyarrow.Table`` or ``RecordBatch`` is stored as Arrow: it reaches the store, workers
  and ``get`` without copying (a worker maps the object's shared-memory segment).
- Anything else is pickled with protocol 5 (cloudpickle, so lambdas and local classes
  work). Out-of-band buffers (numpy arrays, ...) are kept apart from the pickle in an Arrow
  record batch of one row, so a worker reads them straight from shared memory.
- ``ObjectRef``s inside a value stay refs: pickling one records it, so the containing
  object keeps it alive.
"""

from __future__ import annotations

import pickle
import struct
import threading
from typing import Any, List, Tuple

from volley import _native

#: Schema metadata naming what an Arrow object holds.
_KIND = b"volley.kind"
_KIND_BATCH = b"record_batch"
_KIND_PICKLE5 = b"pickle5"
#: Out-of-band buffers smaller than this stay inside the pickle.
_OOB_MIN = 64 << 10

_local = threading.local()


def _note_ref(ref: Any) -> None:
    """Called by ``ObjectRef.__reduce__``: records a ref serialized inside a value."""
    refs = getattr(_local, "refs", None)
    if refs is not None:
        refs.append(ref)


def _rebuild_ref(id_bytes: bytes) -> Any:
    return _native.ObjectRef._borrow(id_bytes)


def _cloudpickle() -> Any:
    """cloudpickle, imported on first use (it is slow to import)."""
    import cloudpickle

    return cloudpickle


def register_function(obj: Any) -> int:
    """Registers a function or class with the node (pickled once, with cloudpickle); its id."""
    return _native.register_function(_cloudpickle().dumps(obj))


def _is_arrow(value: Any) -> bool:
    return type(value).__module__.startswith("pyarrow")


def _pickle(value: Any, buffer_callback: Any) -> bytes:
    """Plain pickle (fast); cloudpickle for what it cannot do: lambdas, local classes, and
    anything from ``__main__`` (which a worker cannot import by name)."""
    refs = getattr(_local, "refs", None)
    mark = len(refs) if refs is not None else 0
    bufs: List[Any] = []
    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=bufs.append)
        if b"__main__" not in data:
            if buffer_callback is not None:
                for b in bufs:
                    buffer_callback(b)
            return data
    except (pickle.PicklingError, AttributeError, TypeError):
        pass
    if refs is not None:
        del refs[mark:]  # the refs the failed attempt recorded
    return _cloudpickle().dumps(value, protocol=5, buffer_callback=buffer_callback)


def _large_binary(buf: Any) -> Any:
    import pyarrow as pa

    data = pa.py_buffer(buf)
    offsets = pa.py_buffer(struct.pack("<qq", 0, data.size))
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, data])


def _copied(raw: memoryview) -> Any:
    """A copy of ``raw`` in Arrow's memory pool, which keeps freed memory for reuse: a fresh
    allocation would page-fault on every page, at a third of the speed of the copy."""
    import pyarrow as pa

    buf = pa.allocate_buffer(raw.nbytes)
    memoryview(buf).cast("B")[:] = raw.cast("B")
    return buf


def _value_buffer(col: Any) -> Any:
    """The single value of a one-row ``large_binary`` array, as a slice of the array's own
    memory (``col[0].as_buffer()`` would copy it)."""
    _, offsets, data = col.buffers()
    start, end = struct.unpack_from("<qq", offsets, col.offset * 8)
    return data.slice(start, end - start)


def dumps(value: Any, copy_buffers: bool = True) -> Tuple[Any, List[Any]]:
    """``(payload, nested_refs)``: ``payload`` is ``bytes`` (a pickle) or a pyarrow
    ``Table`` (Arrow data, or a pickle with its out-of-band buffers). ``copy_buffers``
    copies out-of-band buffers, so later changes to the caller's arrays do not show."""
    if _is_arrow(value):
        import pyarrow as pa

        if isinstance(value, pa.Table):
            return value, []
        if isinstance(value, pa.RecordBatch):
            table = pa.Table.from_batches([value])
            meta = dict(value.schema.metadata or {})
            meta[_KIND] = _KIND_BATCH
            return table.replace_schema_metadata(meta), []
    return _dumps_pickle(value, copy_buffers)


def _dumps_pickle(value: Any, copy_buffers: bool) -> Tuple[Any, List[Any]]:
    prev = getattr(_local, "refs", None)
    _local.refs = []
    buffers: List[pickle.PickleBuffer] = []
    try:
        data = _pickle(value, buffers.append)
        refs = _local.refs
    finally:
        _local.refs = prev
    big = [b for b in buffers if b.raw().nbytes >= _OOB_MIN]
    if not big:
        if buffers:  # only small buffers: keep them in the pickle
            _local.refs = []
            try:
                data = _pickle(value, None)
                refs = _local.refs
            finally:
                _local.refs = prev
        return data, refs
    import pyarrow as pa

    cols = [_large_binary(data)]
    for b in buffers:
        raw = b.raw()
        cols.append(_large_binary(_copied(raw) if copy_buffers else raw))
    names = ["pickle"] + [f"buffer{i}" for i in range(len(buffers))]
    schema = pa.schema([pa.field(n, pa.large_binary()) for n in names], {_KIND: _KIND_PICKLE5})
    return pa.Table.from_arrays(cols, schema=schema), refs


def loads(payload: Any) -> Any:
    """The inverse of :func:`dumps`, for what the native module returns (``bytes`` or an
    Arrow stream object)."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return pickle.loads(payload)
    import pyarrow as pa

    table = pa.RecordBatchReader.from_stream(payload).read_all()
    meta = table.schema.metadata or {}
    kind = meta.get(_KIND)
    if kind == _KIND_PICKLE5:
        cols = [table.column(i).chunk(0) for i in range(table.num_columns)]
        # Buffers are read in place (from shared memory in a worker): no copy.
        bufs = [_value_buffer(c) for c in cols]
        return pickle.loads(bufs[0], buffers=bufs[1:])
    if kind == _KIND_BATCH:
        rest = {k: v for k, v in meta.items() if k != _KIND}
        table = table.replace_schema_metadata(rest or None)
        batches = table.combine_chunks().to_batches()
        return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
    return table
