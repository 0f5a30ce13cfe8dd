"""Ray's aggregations (``ray.data.aggregate``): ``Count``, ``Sum``, ``Min``, ``Max``, ``Mean``,
``Std``, ``AbsMax``, ``Quantile``, ``Unique``, and custom ones (``AggregateFnV2`` subclasses,
or the older ``AggregateFn(init=, merge=, accumulate_row= | accumulate_block=, finalize=)``),
for ``ds.aggregate(...)`` and ``ds.groupby(key).aggregate(...)``.

The built-in ones run natively (DataFusion, hash-partitioned over the node's CPUs) when
every aggregation of the call is built in with its default null handling (and ``Std``'s
``ddof=1``); otherwise each group's rows go to Python once (``map_groups``) and every
aggregation of the call runs there, with the semantics below, as Ray's do.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "AbsMax",
    "AggregateFn",
    "AggregateFnV2",
    "Count",
    "Max",
    "Mean",
    "Min",
    "Quantile",
    "Std",
    "Sum",
    "Unique",
]


class AggregateFn:
    """A custom aggregation (Ray's older form): ``init(key)`` makes a group's accumulator,
    ``accumulate_row(acc, row)`` or ``accumulate_block(acc, table)`` adds rows,
    ``merge(a, b)`` combines two, ``finalize(acc)`` gives the value of column ``name``."""

    def __init__(
        self,
        init: Callable[[Any], Any],
        merge: Callable[[Any, Any], Any],
        name: str,
        accumulate_row: Optional[Callable[[Any, Any], Any]] = None,
        accumulate_block: Optional[Callable[[Any, Any], Any]] = None,
        finalize: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        if (accumulate_row is None) == (accumulate_block is None):
            raise ValueError("Exactly one of accumulate_row or accumulate_block must be provided.")
        if not isinstance(name, str):
            raise TypeError("`name` must be provided.")
        if accumulate_block is None:
            row_fn = accumulate_row

            def accumulate_block(acc: Any, block: pa.Table) -> Any:
                for row in block.to_pylist():
                    acc = row_fn(acc, row)  # type: ignore[misc]
                return acc

        self.name = name
        self.init = init
        self.merge = merge
        self.accumulate_block = accumulate_block
        self.finalize = finalize if finalize is not None else (lambda a: a)

    # What the engine runs natively, if it can: ``(kind, column, engine's output name)``.
    def _native(self) -> Optional[Tuple[str, Optional[str], str]]:
        return None

    def _value(self, key: Any, table: pa.Table) -> Any:
        """The value of this aggregation over one group's rows (the Python path)."""
        return self.finalize(self.accumulate_block(self.init(key), table))

    def _type(self, schema: pa.Schema) -> Optional[pa.DataType]:
        """The type of its column, given its input's schema (``None``: the values')."""
        return None


class AggregateFnV2(AggregateFn):
    """A custom aggregation: subclass it with ``aggregate_block(table)`` (a partial
    result), ``combine(a, b)`` and optionally ``_finalize(acc)``; ``name`` is its column.
    A block whose partial result is ``None`` (empty, or all nulls) is skipped."""

    def __init__(
        self,
        name: str,
        zero_factory: Callable[[], Any],
        *,
        on: Optional[str],
        ignore_nulls: bool,
    ) -> None:
        if not name:
            raise ValueError(f"Non-empty string has to be provided as name (got {name})")
        self._target_col_name = on
        self._ignore_nulls = ignore_nulls
        self.name = name
        self._zero_factory = zero_factory
        self.init = lambda _key: zero_factory()
        self.merge = self._safe_combine
        self.accumulate_block = lambda acc, block: self._safe_combine(
            acc, self.aggregate_block(block)
        )
        self.finalize = lambda acc: None if acc is None else self._finalize(acc)

    def _safe_combine(self, a: Any, b: Any) -> Any:
        if b is None:
            return a
        if a is None:
            return b
        return self.combine(a, b)

    def get_target_column(self) -> Optional[str]:
        return self._target_col_name

    def aggregate_block(self, block: pa.Table) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define aggregate_block")

    def combine(self, current_accumulator: Any, new: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define combine")

    def _finalize(self, accumulator: Any) -> Any:
        return accumulator

    def _values(self, block: pa.Table) -> Any:
        column = self._target_col_name
        if column is None:
            raise ValueError(f"Column to aggregate on has to be provided (got {column})")
        return block.column(column)


def _scalar(s: Any) -> Any:
    return s.as_py() if isinstance(s, pa.Scalar) else s


class _NullType:
    """A partial result that makes the final one null (``ignore_nulls=False``)."""


_Null = _NullType()


class _Builtin(AggregateFnV2):
    """A built-in aggregation: its engine kind, and its Python form — ``_partial`` of a
    block's column (which has a non-null value), partials combined by ``_merge``, the last
    one turned into the value by ``_final``; with ``ignore_nulls=False`` a null makes the
    value null."""

    _kind = ""

    def __init__(
        self,
        label: str,
        on: Optional[str],
        ignore_nulls: bool,
        alias_name: Optional[str],
        zero: Callable[[], Any],
    ) -> None:
        if self._kind != "count" and (on is None or not isinstance(on, str)):
            raise ValueError(f"Column to aggregate on has to be provided (got {on})")
        super().__init__(
            alias_name or f"{label}({on or ''})", zero, on=on, ignore_nulls=ignore_nulls
        )

    def _native(self) -> Optional[Tuple[str, Optional[str], str]]:
        if not self._ignore_nulls:
            return None
        return self._kind, self._target_col_name, f"{self._kind}({self._target_col_name})"

    def _type(self, schema: pa.Schema) -> Optional[pa.DataType]:
        on = self._target_col_name
        given = schema.field(on).type if on is not None else pa.int64()
        return self._result_type(given)

    def _result_type(self, given: pa.DataType) -> pa.DataType:
        return given

    def aggregate_block(self, block: pa.Table) -> Any:
        col = self._values(block)
        if not self._ignore_nulls and col.null_count > 0:
            return _Null
        return self._partial(col) if len(col) > col.null_count else None

    def combine(self, a: Any, b: Any) -> Any:
        return _Null if _Null in (a, b) else self._merge(a, b)

    def _finalize(self, acc: Any) -> Any:
        return None if acc is _Null else self._final(acc)

    def _partial(self, col: Any) -> Any:
        raise NotImplementedError

    def _merge(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def _final(self, acc: Any) -> Any:
        return acc


class Count(_Builtin):
    """Rows (``on=None``), or values of column ``on`` (nulls counted unless
    ``ignore_nulls=True``)."""

    _kind = "count"

    def __init__(
        self, on: Optional[str] = None, ignore_nulls: bool = False, alias_name: Optional[str] = None
    ) -> None:
        super().__init__("count", on, ignore_nulls, alias_name, lambda: 0)

    def _native(self) -> Optional[Tuple[str, Optional[str], str]]:
        on = self._target_col_name
        if on is None or not self._ignore_nulls:
            return "count", None, "count()"
        return "count", on, f"count({on})"

    def _result_type(self, given: pa.DataType) -> pa.DataType:
        return pa.int64()

    def aggregate_block(self, block: pa.Table) -> Any:
        if self._target_col_name is None or not self._ignore_nulls:
            return block.num_rows
        return block.num_rows - self._values(block).null_count

    def combine(self, a: Any, b: Any) -> Any:
        return a + b


class Sum(_Builtin):
    """The sum of column ``on`` (null if a value is null and ``ignore_nulls=False``)."""

    _kind = "sum"

    def __init__(
        self, on: Optional[str] = None, ignore_nulls: bool = True, alias_name: Optional[str] = None
    ) -> None:
        super().__init__("sum", on, ignore_nulls, alias_name, lambda: 0)

    def _result_type(self, given: pa.DataType) -> pa.DataType:
        return pa.float64() if pa.types.is_floating(given) else pa.int64()

    def _partial(self, col: Any) -> Any:
        return _scalar(pc.sum(col))

    def _merge(self, a: Any, b: Any) -> Any:
        return a + b


class Min(_Builtin):
    """The minimum of column ``on``."""

    _kind = "min"

    def __init__(
        self, on: Optional[str] = None, ignore_nulls: bool = True, alias_name: Optional[str] = None
    ) -> None:
        super().__init__("min", on, ignore_nulls, alias_name, lambda: None)

    def _partial(self, col: Any) -> Any:
        return _scalar(pc.min(col))

    def _merge(self, a: Any, b: Any) -> Any:
        return min(a, b)


class Max(_Builtin):
    """The maximum of column ``on``."""

    _kind = "max"

    def __init__(
        self, on: Optional[str] = None, ignore_nulls: bool = True, alias_name: Optional[str] = None
    ) -> None:
        super().__init__("max", on, ignore_nulls, alias_name, lambda: None)

    def _partial(self, col: Any) -> Any:
        return _scalar(pc.max(col))

    def _merge(self, a: Any, b: Any) -> Any:
        return max(a, b)


class AbsMax(_Builtin):
    """The largest absolute value of column ``on``."""

    _kind = "abs_max"

    def __init__(
        self, on: Optional[str] = None, ignore_nulls: bool = True, alias_name: Optional[str] = None
    ) -> None:
        super().__init__("abs_max", on, ignore_nulls, alias_name, lambda: None)

    def _partial(self, col: Any) -> Any:
        return _scalar(pc.max(pc.abs(col)))

    def _merge(self, a: Any, b: Any) -> Any:
        return max(a, b)


class Mean(_Builtin):
    """The mean of column ``on``."""

    _kind = "mean"

    def __init__(
        self, on: Optional[str] = None, ignore_nulls: bool = True, alias_name: Optional[str] = None
    ) -> None:
        super().__init__("mean", on, ignore_nulls, alias_name, lambda: None)

    def _result_type(self, given: pa.DataType) -> pa.DataType:
        return pa.float64()

    def _partial(self, col: Any) -> Any:
        return [_scalar(pc.sum(col)), len(col) - col.null_count]

    def _merge(self, a: Any, b: Any) -> Any:
        return [a[0] + b[0], a[1] + b[1]]

    def _final(self, acc: Any) -> Any:
        return acc[0] / acc[1]


class Std(_Builtin):
    """The standard deviation of column ``on`` with divisor ``N - ddof``."""

    _kind = "std"

    def __init__(
        self,
        on: Optional[str] = None,
        ddof: int = 1,
        ignore_nulls: bool = True,
        alias_name: Optional[str] = None,
    ) -> None:
        super().__init__("std", on, ignore_nulls, alias_name, lambda: None)
        self._ddof = ddof

    def _native(self) -> Optional[Tuple[str, Optional[str], str]]:
        return super()._native() if self._ddof == 1 else None

    def _result_type(self, given: pa.DataType) -> pa.DataType:
        return pa.float64()

    def _partial(self, col: Any) -> Any:
        values = [v for v in col.to_pylist() if v is not None]
        mean = sum(values) / len(values)
        return [sum((v - mean) ** 2 for v in values), mean, len(values)]

    def _merge(self, a: Any, b: Any) -> Any:
        # Two blocks' squared deviations, means and counts, combined exactly.
        (m2a, ma, na), (m2b, mb, nb) = a, b
        n = na + nb
        delta = mb - ma
        return [m2a + m2b + delta * delta * na * nb / n, (ma * na + mb * nb) / n, n]

    def _final(self, acc: Any) -> Any:
        m2, _, n = acc
        return math.sqrt(m2 / (n - self._ddof)) if n - self._ddof > 0 else math.nan


class Quantile(_Builtin):
    """The ``q``-quantile of column ``on``, interpolated linearly between the two nearest
    values (rounded to 5 decimals, as Ray does)."""

    _kind = "quantile"

    def __init__(
        self,
        on: Optional[str] = None,
        q: float = 0.5,
        ignore_nulls: bool = True,
        alias_name: Optional[str] = None,
    ) -> None:
        if not 0 <= q <= 1:
            raise ValueError(f"q must be between 0 and 1, got {q}")
        super().__init__("quantile", on, ignore_nulls, alias_name, list)
        self._q = q

    def _native(self) -> Optional[Tuple[str, Optional[str], str]]:
        if not self._ignore_nulls:
            return None
        on = self._target_col_name
        return f"quantile:{self._q!r}", on, f"quantile({on})"

    def _result_type(self, given: pa.DataType) -> pa.DataType:
        return pa.float64()

    def _partial(self, col: Any) -> Any:
        return [v for v in col.to_pylist() if v is not None]

    def _merge(self, a: Any, b: Any) -> Any:
        return a + b

    def _final(self, acc: Any) -> Any:
        values = sorted(acc)
        k = (len(values) - 1) * self._q
        f, c = math.floor(k), math.ceil(k)
        if f == c:
            return values[int(k)]
        return round(values[f] * (c - k) + values[c] * (k - f), 5)


class Unique(_Builtin):
    """The distinct values of column ``on``, as a list (nulls left out unless
    ``ignore_nulls=False``)."""

    _kind = "unique"

    def __init__(
        self, on: Optional[str] = None, ignore_nulls: bool = True, alias_name: Optional[str] = None
    ) -> None:
        super().__init__("unique", on, ignore_nulls, alias_name, list)

    def _result_type(self, given: pa.DataType) -> pa.DataType:
        return pa.list_(given)

    def aggregate_block(self, block: pa.Table) -> Any:
        values = pc.unique(self._values(block)).to_pylist()
        return [v for v in values if v is not None] if self._ignore_nulls else values

    def combine(self, a: Any, b: Any) -> Any:
        return a + [v for v in b if v not in a]

    def _finalize(self, acc: Any) -> Any:
        return acc


def check_aggs(aggs: Tuple[Any, ...]) -> List[AggregateFn]:
    """Ray's aggregations, checked; Volley's older ``(kind, column)`` pairs are taken as the
    built-in of that kind."""
    kinds = {"count": Count, "sum": Sum, "min": Min, "max": Max, "mean": Mean, "std": Std}
    out: List[AggregateFn] = []
    for a in aggs:
        if isinstance(a, tuple) and len(a) == 2 and a[0] in kinds:
            kind, column = a
            out.append(Count(column, ignore_nulls=True) if kind == "count" else kinds[kind](column))
        elif isinstance(a, AggregateFn):
            out.append(a)
        else:
            raise TypeError(
                f"aggregate() takes AggregateFn instances (volley.data.aggregate), got {a!r}"
            )
    if not out:
        raise ValueError("aggregate() needs at least one aggregation")
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise ValueError(f"aggregations with the same output name: {names}; use alias_name=")
    return out
