"""Values for the serialization matrix (``test_serialization_matrix.py``), and how two of
them are compared: bitwise for arrays (with dtype, shape and layout), exact for frames.

A module of its own so that worker processes import it by name, as a user's workers import
the user's modules (the suite puts this directory on ``PYTHONPATH``, see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses
import datetime
import struct
from typing import Any, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import strategies as st
from volley._serialization import INLINE_MAX


@dataclasses.dataclass
class Point:
    """A dataclass defined in an importable module."""

    x: int
    label: str
    weights: Any = None


@dataclasses.dataclass
class MainPoint:
    """A dataclass as a script's ``__main__`` defines it (pickled by value)."""

    x: int
    data: Any = None


MainPoint.__module__ = "__main__"
MainPoint.__qualname__ = "MainPoint"


class CustomError(Exception):
    """A user's exception class with its own fields."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code, self.detail = code, detail


class Ref:
    """Stands for an ``ObjectRef`` of ``value``: the test puts it when it draws one."""

    def __init__(self, value: Any) -> None:
        self.value = value


#: Sizes of out-of-band data across the inline threshold, and one well above it.
EDGE_NBYTES = [0, 1, INLINE_MAX - 1, INLINE_MAX, INLINE_MAX + 1, 10 << 20]

DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "longdouble", "complex64", "complex128",
    "datetime64[ns]", "datetime64[D]", "timedelta64[us]", "U7", "S5", "V3", "object",
]  # fmt: skip


@st.composite
def arrays(draw: Any) -> np.ndarray:
    """A numpy array of any dtype whose data is about ``nbytes``: an edge size or a small
    one; contiguous, Fortran-ordered, or a strided or offset view."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    nbytes = draw(st.one_of(st.sampled_from(EDGE_NBYTES), st.integers(0, 4096)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype.kind == "O":
        n = min(nbytes // 8, 2000)
        a = np.empty(n, dtype=object)
        for i in range(n):
            a[i] = [None, i, f"s{i}", (i, b"b")][i % 4]
    else:
        n = nbytes // dtype.itemsize
        raw = rng.integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8)
        if dtype.kind == "b":
            raw %= 2
        elif dtype.kind == "U":
            raw = np.zeros(n * dtype.itemsize, np.uint8)
            raw.view("<u4")[:] = rng.integers(32, 0x2FFF, size=n * 7)
        a = raw.view(dtype)
    layout = draw(st.sampled_from(["c", "f", "strided", "offset", "scalar0d"]))
    if layout == "f" and a.size >= 6:
        a = np.asfortranarray(a[: a.size - a.size % 3].reshape(-1, 3))
    elif layout == "strided":
        a = a[::2]
    elif layout == "offset" and a.size > 2:
        a = a[1:-1]
    elif layout == "scalar0d" and a.size:
        a = np.array(a[0], dtype=a.dtype)
    return a


def frames() -> st.SearchStrategy:
    @st.composite
    def build(draw: Any) -> Any:
        n = draw(st.integers(0, 40))
        cols = {
            "i": np.arange(n, dtype="int64"),
            "f": np.linspace(0, 1, n),
            "s": [f"v{i}" if i % 5 else None for i in range(n)],
            "c": pd.Categorical([("a", "b", "c")[i % 3] for i in range(n)]),
            "t": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "naive": pd.date_range("2020-02-29", periods=n, freq="D"),
        }
        index = draw(st.sampled_from(["range", "labels", "dates"]))
        idx: Any = None
        if index == "labels":
            idx = pd.Index([f"r{i}" for i in range(n)], name="row")
        elif index == "dates":
            idx = pd.date_range("2000-01-01", periods=n, freq="min")
        df = pd.DataFrame(cols, index=idx)
        if draw(st.booleans()):
            return df
        return df[draw(st.sampled_from(list(cols)))].rename("series")

    return build()


def arrow_values() -> st.SearchStrategy:
    @st.composite
    def build(draw: Any) -> Any:
        n = draw(st.sampled_from([0, 1, 7, 1000, 20000]))
        t = pa.table(
            {
                "id": pa.array(range(n), pa.int64()),
                "s": pa.array([None if i % 7 == 0 else f"x{i}" for i in range(n)]),
                "l": pa.array([[i, i + 1] for i in range(n)], pa.list_(pa.int32())),
            }
        )
        kind = draw(st.sampled_from(["table", "batch", "array", "chunked", "sliced"]))
        if kind == "table":
            return t
        if kind == "batch":
            return t.to_batches()[0] if n else pa.RecordBatch.from_pylist([], schema=t.schema)
        if kind == "array":
            return t.column("s").combine_chunks()
        if kind == "chunked":
            return pa.chunked_array([t.column("id").combine_chunks()] * 2)
        return t.slice(n // 3, n // 3)

    return build()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=False),
    st.text(max_size=50),
    st.binary(max_size=200),
    st.binary(min_size=INLINE_MAX - 8, max_size=INLINE_MAX + 8),
    st.datetimes(timezones=st.sampled_from([None, datetime.timezone.utc])),
    st.decimals(allow_nan=False),
)

objects = st.one_of(
    st.builds(Point, st.integers(), st.text(max_size=10), st.none() | arrays()),
    st.builds(MainPoint, st.integers(), st.none() | arrays()),
    st.builds(ValueError, st.text(max_size=20)),
    st.builds(KeyError, st.integers()),
    st.builds(CustomError, st.integers(), st.text(max_size=10)),
)

leaves = st.one_of(scalars, arrays(), frames(), arrow_values(), objects)


def values() -> st.SearchStrategy:
    """Any value: leaves, and containers of them (lists, tuples, dicts, sets), some
    holding object refs."""
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.tuples(children, children),
            st.dictionaries(st.text(max_size=8), children, max_size=4),
            st.frozensets(st.integers() | st.text(max_size=5), max_size=4),
            st.builds(Ref, children),
        ),
        max_leaves=6,
    )


def same(a: Any, b: Any) -> Optional[str]:
    """``None`` if ``b`` is ``a`` after a round trip, else where they differ."""
    if type(a) is not type(b) and not (
        type(a).__qualname__ == type(b).__qualname__ and dataclasses.is_dataclass(a)
    ):
        return f"type {type(a)!r} became {type(b)!r}"
    if isinstance(a, np.ndarray):
        if (a.dtype, a.shape) != (b.dtype, b.shape):
            return f"array {a.dtype}{a.shape} became {b.dtype}{b.shape}"
        if a.dtype.kind == "O":
            return None if all(x == y for x, y in zip(a.ravel(), b.ravel())) else "objects"
        if a.flags.f_contiguous and not a.flags.c_contiguous and not b.flags.f_contiguous:
            return "a Fortran-ordered array lost its order"
        if np.ascontiguousarray(a).tobytes() != np.ascontiguousarray(b).tobytes():
            return f"array {a.dtype}{a.shape}: bytes differ"
        return None
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        return None
    if isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True)
        return None
    if isinstance(a, (pa.Table, pa.RecordBatch, pa.Array, pa.ChunkedArray)):
        if not a.equals(b):
            return f"Arrow {type(a).__name__} differs"
        if isinstance(a, (pa.Table, pa.RecordBatch)) and a.schema.metadata != b.schema.metadata:
            return "Arrow schema metadata differs"
        return None
    if isinstance(a, BaseException):
        if a.args != b.args:
            return f"exception args {a.args!r} became {b.args!r}"
        return same(vars(a), vars(b))
    if isinstance(a, float):
        return None if struct.pack("<d", a) == struct.pack("<d", b) else f"{a!r} became {b!r}"
    if isinstance(a, complex):
        return same(a.real, b.real) or same(a.imag, b.imag)
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"length {len(a)} became {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y)
            if d:
                return f"[{i}]: {d}"
        return None
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"keys {list(a)!r} became {list(b)!r}"
        for k in a:
            d = same(a[k], b[k])
            if d:
                return f"[{k!r}]: {d}"
        return None
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return same(vars(a), vars(b))
    return None if a == b else f"{a!r} became {b!r}"
