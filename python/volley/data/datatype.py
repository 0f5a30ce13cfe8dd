"""Ray's ``ray.data.datatype.DataType``: a column type named the way Ray's expressions take
it (``col("x").cast(DataType.float32())``), holding an Arrow type."""

from __future__ import annotations

import builtins
from typing import Any, Dict

import pyarrow as pa

__all__ = ["DataType"]


class DataType:
    """An Arrow type (Ray's ``DataType``; built with the factories below or
    ``DataType.from_arrow``)."""

    __slots__ = ("_type",)

    def __init__(self, arrow_type: pa.DataType) -> None:
        if not isinstance(arrow_type, pa.DataType):
            raise TypeError(f"DataType wraps a pyarrow DataType, not {type(arrow_type).__name__}")
        self._type = arrow_type

    @classmethod
    def from_arrow(cls, arrow_type: pa.DataType) -> "DataType":
        return cls(arrow_type)

    @classmethod
    def from_numpy(cls, dtype: Any) -> "DataType":
        return cls(pa.from_numpy_dtype(dtype))

    def to_arrow_dtype(self, values: Any = None) -> pa.DataType:
        return self._type

    @classmethod
    def int8(cls) -> "DataType":
        return cls(pa.int8())

    @classmethod
    def int16(cls) -> "DataType":
        return cls(pa.int16())

    @classmethod
    def int32(cls) -> "DataType":
        return cls(pa.int32())

    @classmethod
    def int64(cls) -> "DataType":
        return cls(pa.int64())

    @classmethod
    def uint8(cls) -> "DataType":
        return cls(pa.uint8())

    @classmethod
    def uint16(cls) -> "DataType":
        return cls(pa.uint16())

    @classmethod
    def uint32(cls) -> "DataType":
        return cls(pa.uint32())

    @classmethod
    def uint64(cls) -> "DataType":
        return cls(pa.uint64())

    @classmethod
    def float32(cls) -> "DataType":
        return cls(pa.float32())

    @classmethod
    def float64(cls) -> "DataType":
        return cls(pa.float64())

    @classmethod
    def bool(cls) -> "DataType":
        return cls(pa.bool_())

    @classmethod
    def string(cls) -> "DataType":
        return cls(pa.string())

    @classmethod
    def binary(cls) -> "DataType":
        return cls(pa.binary())

    @classmethod
    def list(cls, value_type: "DataType") -> "DataType":
        return cls(pa.list_(value_type._type))

    @classmethod
    def large_list(cls, value_type: "DataType") -> "DataType":
        return cls(pa.large_list(value_type._type))

    @classmethod
    def struct(cls, fields: Any) -> "DataType":
        items = fields.items() if isinstance(fields, dict) else fields
        return cls(pa.struct([(name, t._type) for name, t in items]))

    def is_arrow_type(self) -> builtins.bool:
        return True

    def is_integer_type(self) -> builtins.bool:
        return pa.types.is_integer(self._type)

    def is_floating_type(self) -> builtins.bool:
        return pa.types.is_floating(self._type)

    def is_numerical_type(self) -> builtins.bool:
        return pa.types.is_integer(self._type) or pa.types.is_floating(self._type)

    def is_string_type(self) -> builtins.bool:
        return pa.types.is_string(self._type) or pa.types.is_large_string(self._type)

    def is_boolean_type(self) -> builtins.bool:
        return pa.types.is_boolean(self._type)

    def is_list_type(self) -> builtins.bool:
        return pa.types.is_list(self._type) or pa.types.is_large_list(self._type)

    def is_struct_type(self) -> builtins.bool:
        return pa.types.is_struct(self._type)

    def __eq__(self, other: object) -> builtins.bool:
        return isinstance(other, DataType) and self._type == other._type

    def __hash__(self) -> int:
        return hash(self._type)

    def __repr__(self) -> str:
        return f"DataType(arrow:{self._type})"

    def __reduce__(self) -> Any:
        return (DataType, (self._type,))


# The Arrow types a cast can name, as the engine's (arrow-rs) type names.
ARROW_NAMES: Dict[pa.DataType, str] = {
    pa.int8(): "Int8",
    pa.int16(): "Int16",
    pa.int32(): "Int32",
    pa.int64(): "Int64",
    pa.uint8(): "UInt8",
    pa.uint16(): "UInt16",
    pa.uint32(): "UInt32",
    pa.uint64(): "UInt64",
    pa.float32(): "Float32",
    pa.float64(): "Float64",
    pa.bool_(): "Boolean",
    pa.string(): "Utf8",
    pa.large_string(): "LargeUtf8",
    pa.binary(): "Binary",
    pa.large_binary(): "LargeBinary",
    pa.date32(): "Date32",
    pa.date64(): "Date64",
}
