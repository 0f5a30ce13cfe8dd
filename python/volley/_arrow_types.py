"""The Arrow extension types of Volley's columns, registered with pyarrow before any Arrow
value is read (see ``_serialization.loads``), so a worker's function sees the same types as
the driver: Python objects (:class:`PythonObjectType`) and tensors.

Tensor columns are Ray's Arrow extension types, so files and blocks move between Ray and
Volley unchanged: a column of numpy arrays of one shape is ``ray.data.arrow_tensor_v2``
(``large_list<T>``, each row its array's values in C order, the shape as JSON in the type's
metadata; Ray's default), the older ``ray.data.arrow_tensor`` (``list<T>``) reads back
the same, and arrays of one number of dimensions but different shapes are
``ray.data.arrow_variable_shaped_tensor`` (``struct<data: large_list<T>, shape:
list<int64>>``, the number of dimensions as JSON). The engine carries them as their
storage with the field's extension metadata (through its operators, the object store and
parquet files); this module converts between them and numpy."""

from __future__ import annotations

import json
from typing import Any, List, Optional, Sequence, Tuple

import pyarrow as pa

from volley._serialization import loads

try:
    import numpy as np
except ImportError:  # numpy is optional: only converting tensor columns needs it
    np = None  # type: ignore[assignment]


class _PythonObjectScalar(pa.ExtensionScalar):
    def as_py(self, **kwargs: Any) -> Any:
        return None if self.value is None else loads(self.value.as_py())


class PythonObjectType(pa.ExtensionType):
    """A column of Python objects Arrow has no type for (a user's classes, mixed values,
    numpy arrays no tensor type holds), each stored as Volley's serialization of it: rows read
    back (``take``, ``iter_rows``) as the objects themselves (Ray's object columns)."""

    def __init__(self) -> None:
        super().__init__(pa.large_binary(), "volley.python_object")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> "PythonObjectType":
        return cls()

    def __arrow_ext_scalar_class__(self) -> type:
        return _PythonObjectScalar


class _TensorScalar(pa.ExtensionScalar):
    def as_py(self, **kwargs: Any) -> Any:
        if not self.is_valid:
            return None
        return to_numpy(pa.ExtensionArray.from_storage(self.type, pa.array([self.value])))[0]


class _FixedShapeTensorType(pa.ExtensionType):
    _name = ""
    _list = staticmethod(pa.large_list)

    def __init__(self, shape: Tuple[int, ...], dtype: pa.DataType) -> None:
        self._shape = tuple(int(d) for d in shape)
        super().__init__(self._list(dtype), self._name)

    @property
    def shape(self) -> Tuple[int, ...]:
        return self._shape

    @property
    def scalar_type(self) -> pa.DataType:
        storage: Any = self.storage_type
        return storage.value_type

    def __arrow_ext_serialize__(self) -> bytes:
        return json.dumps(self._shape).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> Any:
        return cls(tuple(json.loads(serialized)), storage_type.value_type)

    def __arrow_ext_scalar_class__(self) -> type:
        return _TensorScalar

    def __reduce__(self) -> Any:
        return type(self), (self._shape, self.scalar_type)

    def __str__(self) -> str:
        return f"{type(self).__name__}(shape={self._shape}, dtype={self.scalar_type})"


class ArrowTensorType(_FixedShapeTensorType):
    """Ray's first tensor type: ``list<T>`` storage (32-bit offsets)."""

    _name = "ray.data.arrow_tensor"
    _list = staticmethod(pa.list_)  # type: ignore[assignment]


class ArrowTensorTypeV2(_FixedShapeTensorType):
    """Ray's default tensor type: ``large_list<T>`` storage."""

    _name = "ray.data.arrow_tensor_v2"


class ArrowVariableShapedTensorType(pa.ExtensionType):
    """Arrays of ``ndim`` dimensions whose shapes differ from row to row."""

    def __init__(self, dtype: pa.DataType, ndim: int) -> None:
        self._ndim = int(ndim)
        storage = pa.struct([("data", pa.large_list(dtype)), ("shape", pa.list_(pa.int64()))])
        super().__init__(storage, "ray.data.arrow_variable_shaped_tensor")

    @property
    def ndim(self) -> int:
        return self._ndim

    @property
    def scalar_type(self) -> pa.DataType:
        storage: Any = self.storage_type
        return storage.field("data").type.value_type

    def __arrow_ext_serialize__(self) -> bytes:
        return json.dumps(self._ndim).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> Any:
        return cls(storage_type.field("data").type.value_type, json.loads(serialized))

    def __arrow_ext_scalar_class__(self) -> type:
        return _TensorScalar

    def __reduce__(self) -> Any:
        return type(self), (self.scalar_type, self._ndim)

    def __str__(self) -> str:
        return f"ArrowVariableShapedTensorType(ndim={self._ndim}, dtype={self.scalar_type})"


TENSOR_TYPES = (_FixedShapeTensorType, ArrowVariableShapedTensorType)

for _t in (
    PythonObjectType(),
    ArrowTensorType((0,), pa.int64()),
    ArrowTensorTypeV2((0,), pa.int64()),
    ArrowVariableShapedTensorType(pa.int64(), 0),
):
    try:
        pa.register_extension_type(_t)  # type: ignore[arg-type]
    except pa.ArrowKeyError:  # Ray's own tensor types, registered first in this process
        pass


def is_tensor(t: pa.DataType) -> bool:
    """Whether ``t`` is one of the tensor types (Volley's classes or Ray's, by name)."""
    return isinstance(t, pa.BaseExtensionType) and t.extension_name in (
        "ray.data.arrow_tensor",
        "ray.data.arrow_tensor_v2",
        "ray.data.arrow_variable_shaped_tensor",
    )


def is_ndarray(value: Any) -> bool:
    """Whether ``value`` is a numpy array (without importing numpy where it is absent)."""
    return np is not None and isinstance(value, np.ndarray)


def _values(flat: np.ndarray) -> Optional[pa.Array]:
    """Arrow values of a 1-D numpy array, or ``None`` for dtypes a tensor does not give
    back as they were (objects, strings, complex numbers, dates and times, non-native byte
    order): those stay Python objects."""
    if flat.dtype.kind not in "biuf" or not flat.dtype.isnative:
        return None
    return pa.array(flat)


def _faithful(a: Any) -> bool:
    """Whether a tensor gives ``a`` back as it is: a plain numpy array (not a subclass) of at
    least one dimension, in C order (a Fortran-ordered one would come back in C order)."""
    return type(a) is np.ndarray and a.ndim >= 1 and (a.flags.c_contiguous or a.ndim == 1)


def from_ndarray(arr: np.ndarray) -> Optional[pa.Array]:
    """A tensor column of ``arr``'s rows (its first axis; a batch a function returned, so
    any memory order); ``None`` where a tensor cannot hold its dtype."""
    arr = np.ascontiguousarray(arr)
    values = _values(arr.reshape(-1))
    if values is None:
        return None
    per_row = int(np.prod(arr.shape[1:], dtype=np.int64))
    offsets: Any = pa.array(np.arange(len(arr) + 1, dtype=np.int64) * per_row)
    storage = pa.LargeListArray.from_arrays(offsets, values)
    return pa.ExtensionArray.from_storage(ArrowTensorTypeV2(arr.shape[1:], values.type), storage)


def from_arrays(items: Sequence[Any]) -> Optional[pa.Array]:
    """A tensor column of ``items`` (numpy arrays or ``None``): fixed-shape where every
    array has one shape and there is no ``None``, variable-shaped where they share a number
    of dimensions; ``None`` where no tensor type holds them (mixed dimensions or dtypes,
    objects)."""
    arrays = [a for a in items if a is not None]
    if not arrays or not all(_faithful(a) for a in arrays):
        return None
    if len({a.dtype for a in arrays}) != 1 or len({a.ndim for a in arrays}) != 1:
        return None
    if len(arrays) == len(items) and len({a.shape for a in arrays}) == 1:
        return from_ndarray(np.stack(arrays))
    flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]
    values = _values(np.concatenate(flat))
    if values is None:
        return None
    lengths = iter([len(f) for f in flat])
    shapes = iter([list(a.shape) for a in arrays])
    offsets, shape_rows, valid, end = [0], [], [], 0
    for a in items:
        end += 0 if a is None else next(lengths)
        offsets.append(end)
        shape_rows.append(None if a is None else next(shapes))
        valid.append(a is not None)
    data = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), values)
    mask = pa.array([not v for v in valid])
    storage = pa.StructArray.from_arrays(
        [data, pa.array(shape_rows, pa.list_(pa.int64()))],
        names=["data", "shape"],
        mask=mask if not all(valid) else None,
    )
    ndim = arrays[0].ndim
    return pa.ExtensionArray.from_storage(ArrowVariableShapedTensorType(values.type, ndim), storage)


def to_numpy(column: Any) -> np.ndarray:
    """A tensor column as numpy: one array of shape ``(rows, *shape)`` for a fixed shape
    without nulls, else an object array of each row's array (``None`` for a null)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    t = column.type
    parts: List[np.ndarray] = []
    for chunk in chunks:
        storage: Any = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
        if isinstance(t.storage_type, pa.StructType):
            parts.append(_variable_rows(storage))
            continue
        shape = tuple(t.shape)
        flat = storage.flatten().to_numpy(zero_copy_only=False)
        if storage.null_count:
            parts.append(_fixed_rows_with_nulls(storage, shape))
        else:
            parts.append(flat.reshape((len(storage),) + shape))
    if not parts:
        shape = () if isinstance(t.storage_type, pa.StructType) else t.shape
        return np.empty((0,) + tuple(shape))
    if len(parts) == 1:
        return parts[0]
    if any(p.dtype == object for p in parts):
        return object_rows([r for p in parts for r in p])
    return np.concatenate(parts)


def object_rows(rows: List[Any]) -> np.ndarray:
    """An object array of ``rows`` (numpy would make one array of equal-shaped ones)."""
    out = np.empty(len(rows), dtype=object)
    for i, r in enumerate(rows):
        out[i] = r
    return out


def _fixed_rows_with_nulls(storage: Any, shape: Tuple[int, ...]) -> np.ndarray:
    rows = [
        None if v is None else np.asarray(v).reshape(shape)
        for v in storage.to_numpy(zero_copy_only=False)
    ]
    return object_rows(rows)


def _variable_rows(storage: Any) -> np.ndarray:
    data = storage.field("data")
    shapes = storage.field("shape").to_pylist()
    rows: List[Any] = []
    for i, shape in enumerate(shapes):
        if not storage[i].is_valid:
            rows.append(None)
            continue
        values = data[i].values.to_numpy(zero_copy_only=False)
        rows.append(values.reshape(shape))
    return object_rows(rows)


def as_column(value: Any) -> Any:
    """A batch column a function returned, as Arrow where it holds arrays of more than one
    dimension (a numpy array of ``ndim > 1``, an object array or a list of arrays): a tensor
    column; anything else as it was."""
    column = None
    if is_ndarray(value):
        if value.ndim > 1 and value.dtype != object:
            column = from_ndarray(value)
        elif value.dtype == object and len(value) and is_ndarray(value[0]):
            column = from_arrays(list(value))
    elif isinstance(value, list) and value and is_ndarray(value[0]):
        column = from_arrays(value)
    return value if column is None else column
