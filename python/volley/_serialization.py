"""How Python values become objects in the store, and back.

- A ``pyarrow.Table`` or ``RecordBatch`` is stored as Arrow: it reaches the store, workers
  and ``get`` without copying (a worker maps the object's shared-memory segment).
- Anything else is pickled once, with protocol 5 (cloudpickle, so lambdas and local classes
  work), its out-of-band buffers (numpy arrays, ...) kept apart from the pickle. Where they
  are small (:data:`INLINE_MAX` in all) they are framed beside the pickle in one ``bytes``;
  larger ones go in an Arrow record batch of one row, so a worker reads them straight from
  shared memory. This is the only place that decides: put, returns, arguments and actor
  calls all serialize through :func:`dumps`.
- ``ObjectRef``s inside a value stay refs: pickling one records it, so the containing
  object keeps it alive.
"""

from __future__ import annotations

import os
import pickle
import struct
import threading
import warnings
from typing import Any, List, Tuple

from volley import _native

#: Schema metadata naming what an Arrow object holds.
_KIND = b"volley.kind"
_KIND_BATCH = b"record_batch"
_KIND_PICKLE5 = b"pickle5"
#: The one inline threshold of every path (put, returns, arguments, actor calls, Data):
#: a value whose out-of-band buffers (numpy arrays, pandas columns, Arrow buffers inside a
#: pickle) add up to at most this many bytes travels as one ``bytes`` with them framed
#: beside its pickle; above it, the buffers go to Arrow (shared memory), read in place. It
#: is the node's ``max_inline_object_size`` (``VOLLEY_MAX_INLINE_OBJECT_SIZE``), set by
#: ``init`` in a driver and at start in a worker; the engine inlines up to the same size.
INLINE_MAX = 100 << 10
#: How a framed value starts (a pickle starts with its protocol opcode, 0x80).
_FRAME_MAGIC = b"\x00VLF"
_FRAME_ALIGN = 16

_local = threading.local()


def _note_ref(ref: Any) -> None:
    """Called by ``ObjectRef.__reduce__``: records a ref serialized inside a value."""
    refs = getattr(_local, "refs", None)
    if refs is not None:
        refs.append(ref)


def tracking_refs() -> bool:
    """Whether a :func:`dumps` on this thread records the refs it pickles (a value or a
    call's arguments being serialized, as opposed to a user's own pickling)."""
    return getattr(_local, "refs", None) is not None


def _rebuild_ref(id_bytes: bytes) -> Any:
    return _native.ObjectRef._borrow(id_bytes)


def _cloudpickle() -> Any:
    """cloudpickle, imported on first use (it is slow to import)."""
    import cloudpickle

    return cloudpickle


#: Ray's limits on a function's or class's pickle: above the error size (Ray's
#: ``FUNCTION_SIZE_ERROR_THRESHOLD``, 10**8 bytes unless that variable says otherwise) it is
#: refused, above the warning size registered with a warning.
_FUNCTION_SIZE_WARN = 10**7


def register_function(obj: Any, what: str = "remote function") -> int:
    """Registers a function or class with the node (pickled once, with cloudpickle); its id.
    One whose pickle is too large is refused with Ray's ``ValueError`` naming it."""
    data = _cloudpickle().dumps(obj)
    limit = int(os.environ.get("FUNCTION_SIZE_ERROR_THRESHOLD", 10**8))
    name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
    size = f"{len(data) // (1 << 20)} MiB"
    hint = (
        "Check that its definition is not implicitly capturing a large array or other object "
        "in scope. Tip: use ray.put() to put large objects in the Ray object store."
    )
    if len(data) > limit:
        raise ValueError(
            f"The {what} {name} is too large ({size} > FUNCTION_SIZE_ERROR_THRESHOLD="
            f"{limit // (1 << 20)} MiB). {hint}"
        )
    if len(data) > _FUNCTION_SIZE_WARN:
        warnings.warn(f"The {what} {name} is very large ({size}). {hint}", stacklevel=3)
    return _native.register_function(data)


def _is_arrow(value: Any) -> bool:
    return type(value).__module__.startswith("pyarrow")


def _pickle(value: Any) -> Tuple[bytes, List[pickle.PickleBuffer]]:
    """``(pickle, out_of_band_buffers)``: plain pickle (fast), or cloudpickle for what it
    cannot do: lambdas, local classes, and anything from ``__main__`` (which a worker cannot
    import by name)."""
    refs = getattr(_local, "refs", None)
    mark = len(refs) if refs is not None else 0
    bufs: List[pickle.PickleBuffer] = []
    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=bufs.append)
        if b"__main__" not in data:
            return data, bufs
    except (pickle.PicklingError, AttributeError, TypeError):
        pass
    if refs is not None:
        del refs[mark:]  # the refs the failed attempt recorded
    bufs = []
    return _cloudpickle().dumps(value, protocol=5, buffer_callback=bufs.append), bufs


def _frame(data: bytes, buffers: List[memoryview]) -> bytes:
    """A pickle and its out-of-band buffers in one ``bytes``: the magic, the count, each
    piece's length, then the pieces, each at a 16-byte aligned offset."""
    pieces = [memoryview(data)] + buffers
    header = _FRAME_MAGIC + struct.pack(
        f"<I{len(pieces)}Q", len(pieces), *(p.nbytes for p in pieces)
    )
    parts: List[Any] = [header]
    size = len(header)
    for p in pieces:
        pad = -size % _FRAME_ALIGN
        parts.append(bytes(pad))
        parts.append(p)
        size += pad + p.nbytes
    return b"".join(parts)


def _unframe(payload: Any) -> Any:
    """The value of a :func:`_frame`. Its buffers are copied once into memory of their own,
    so arrays come back writable (as an in-band pickle would give them)."""
    view = memoryview(bytearray(payload))
    (n,) = struct.unpack_from("<I", view, len(_FRAME_MAGIC))
    offset = len(_FRAME_MAGIC) + 4
    lengths = struct.unpack_from(f"<{n}Q", view, offset)
    offset += 8 * n
    pieces = []
    for length in lengths:
        offset += -offset % _FRAME_ALIGN
        pieces.append(view[offset : offset + length])
        offset += length
    return pickle.loads(pieces[0], buffers=pieces[1:])


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


def dumps(value: Any, copy_buffers: bool = True, inline: bool = False) -> Tuple[Any, List[Any]]:
    """``(payload, nested_refs)``: ``payload`` is ``bytes`` (a pickle) or a pyarrow
    ``Table`` (Arrow data, or a pickle with its out-of-band buffers). ``copy_buffers``
    copies out-of-band buffers, so later changes to the caller's arrays do not show;
    ``inline`` makes it ``bytes`` whatever the size (a value stored inside a column)."""
    if inline:
        return _dumps_pickle(value, copy_buffers, inline)
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


def _dumps_pickle(value: Any, copy_buffers: bool, inline: bool = False) -> Tuple[Any, List[Any]]:
    prev = getattr(_local, "refs", None)
    _local.refs = []
    try:
        data, buffers = _pickle(value)
        refs = _local.refs
    finally:
        _local.refs = prev
    if not buffers:
        return data, refs
    raws = [b.raw() for b in buffers]
    if inline or sum(r.nbytes for r in raws) <= INLINE_MAX:
        return _frame(data, raws), refs
    import pyarrow as pa

    cols = [_large_binary(data)]
    for raw in raws:
        cols.append(_large_binary(_copied(raw) if copy_buffers else raw))
    names = ["pickle"] + [f"buffer{i}" for i in range(len(raws))]
    schema = pa.schema([pa.field(n, pa.large_binary()) for n in names], {_KIND: _KIND_PICKLE5})
    return pa.Table.from_arrays(cols, schema=schema), refs


def loads(payload: Any) -> Any:
    """The inverse of :func:`dumps`, for what the native module returns (``bytes`` or an
    Arrow stream object)."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        if payload[:1] == _FRAME_MAGIC[:1]:
            return _unframe(payload)
        return pickle.loads(payload)
    import pyarrow as pa

    import volley._arrow_types  # noqa: F401 (its types registered before a stream is read)

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
