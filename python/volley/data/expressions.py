"""Ray's expressions (``ray.data.expressions``): ``col("a") * 2 + lit(1)``, comparisons,
``&`` / ``|`` / ``~``, ``is_null``, ``is_in``, ``cast``, math, and the ``.str``, ``.dt``,
``.list`` and ``.struct`` namespaces, for ``Dataset.with_column(name, expr)``,
``with_columns({name: expr, ...})`` and ``filter(expr=...)``.

Volley evaluates an expression natively: it becomes SQL over exactly named (quoted)
columns, run by the engine and pushed into parquet reads like any native filter. The values
are Ray's (its pyarrow kernels): ``//`` is ``floor(a / b)`` and ``%`` is
``a - floor(a / b) * b`` (both float, as in Ray), ``/`` of integers truncates, ``+`` of
strings concatenates, ``round`` rounds half to even, ``is_in`` / ``not_in`` are never null
(a null is "in" a list that holds ``None``).

Not supported (each raises ``NotImplementedError`` naming it): Python UDFs in expressions
(``udf``, ``pyarrow_udf``: use ``map_batches``), ``download``, ``unnest``, ``star``,
``random``, ``uuid``, ``monotonically_increasing_id``, the ``.arr`` and ``.map``
namespaces, and the namespace methods not defined below. Unlike Ray, an expression has no
truth value: ``col("a") > 1 and col("b") < 2`` raises ``TypeError`` (Ray silently keeps the
second comparison only); write ``&``.
"""

from __future__ import annotations

import builtins
from enum import Enum
from typing import Any, Callable, List, Optional, Sequence, Tuple

import pyarrow as pa

from volley.data._expr import _ident, literal
from volley.data.datatype import ARROW_NAMES, DataType

__all__ = [
    "Operation",
    "Expr",
    "ColumnExpr",
    "LiteralExpr",
    "BinaryExpr",
    "UnaryExpr",
    "UDFExpr",
    "AliasExpr",
    "col",
    "lit",
    "udf",
    "pyarrow_udf",
    "download",
    "star",
    "unnest",
    "random",
    "uuid",
    "monotonically_increasing_id",
]


class Operation(str, Enum):
    """The binary and unary operations of an expression (Ray's names and values)."""

    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    MOD = "mod"
    FLOORDIV = "floordiv"
    GT = "gt"
    LT = "lt"
    GE = "ge"
    LE = "le"
    EQ = "eq"
    NE = "ne"
    AND = "and"
    OR = "or"
    NOT = "not"
    IS_NULL = "is_null"
    IS_NOT_NULL = "is_not_null"
    IN = "in"
    NOT_IN = "not_in"


_INFIX = {
    Operation.ADD: "+",
    Operation.SUB: "-",
    Operation.MUL: "*",
    Operation.DIV: "/",
    Operation.GT: ">",
    Operation.LT: "<",
    Operation.GE: ">=",
    Operation.LE: "<=",
    Operation.EQ: "=",
    Operation.NE: "<>",
    Operation.AND: "AND",
    Operation.OR: "OR",
}


class _Sql:
    """Compiles expressions to SQL; the input schema (for ``+`` of strings and casts) is
    looked up once, and only when needed."""

    def __init__(self, schema: Callable[[], pa.Schema]) -> None:
        self._schema_fn = schema
        self._schema: Optional[pa.Schema] = None

    def column_type(self, name: str) -> Optional[pa.DataType]:
        if self._schema is None:
            self._schema = self._schema_fn()
        i = self._schema.get_field_index(name)
        return self._schema.field(i).type if i >= 0 else None

    def is_string(self, e: "Expr") -> bool:
        if isinstance(e, LiteralExpr):
            return isinstance(e.value, str)
        if isinstance(e, ColumnExpr):
            t = self.column_type(e.name)
            if t is not None and pa.types.is_dictionary(t):
                t = t.value_type
            return t is not None and (
                pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
            )
        if isinstance(e, AliasExpr):
            return self.is_string(e.expr)
        if isinstance(e, BinaryExpr) and e.op == Operation.ADD:
            return self.is_string(e.left) or self.is_string(e.right)
        return isinstance(e, UDFExpr) and e._returns_string

    def sql(self, e: "Expr") -> str:
        return e._to_sql(self)


class Expr:
    """A column expression (Ray's ``Expr``): build it with :func:`col` and :func:`lit`,
    combine it with Python's operators."""

    __slots__ = ()

    @property
    def name(self) -> Optional[builtins.str]:
        """The column name this expression yields, where it names one."""
        return None

    def structurally_equals(self, other: Any) -> bool:
        return isinstance(other, Expr) and self._key() == other._key()

    def _key(self) -> Tuple[Any, ...]:
        raise NotImplementedError

    def _to_sql(self, c: _Sql) -> builtins.str:
        raise NotImplementedError

    def _tree(self) -> Tuple[builtins.str, List[Tuple[builtins.str, "Expr"]]]:
        """This node's label and its labelled children (for ``repr``)."""
        raise NotImplementedError

    def __repr__(self) -> builtins.str:
        label, children = self._tree()
        lines = [label]
        _tree_lines(children, "    ", lines)
        return "\n".join(lines)

    def __bool__(self) -> bool:
        raise TypeError(
            f"an expression has no truth value ({self._tree()[0]}): combine conditions with "
            "& and |, and negate with ~, not with and / or / not"
        )

    __hash__ = object.__hash__

    def _bin(self, other: Any, op: Operation) -> "BinaryExpr":
        return BinaryExpr(op, self, _as_expr(other))

    def _rbin(self, other: Any, op: Operation) -> "BinaryExpr":
        return BinaryExpr(op, _as_expr(other), self)

    def __add__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.ADD)

    def __radd__(self, other: Any) -> "Expr":
        return self._rbin(other, Operation.ADD)

    def __sub__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.SUB)

    def __rsub__(self, other: Any) -> "Expr":
        return self._rbin(other, Operation.SUB)

    def __mul__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.MUL)

    def __rmul__(self, other: Any) -> "Expr":
        return self._rbin(other, Operation.MUL)

    def __truediv__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.DIV)

    def __rtruediv__(self, other: Any) -> "Expr":
        return self._rbin(other, Operation.DIV)

    def __floordiv__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.FLOORDIV)

    def __rfloordiv__(self, other: Any) -> "Expr":
        return self._rbin(other, Operation.FLOORDIV)

    def __mod__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.MOD)

    def __rmod__(self, other: Any) -> "Expr":
        return self._rbin(other, Operation.MOD)

    def __gt__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.GT)

    def __lt__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.LT)

    def __ge__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.GE)

    def __le__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.LE)

    def __eq__(self, other: Any) -> "Expr":  # type: ignore[override]
        return self._bin(other, Operation.EQ)

    def __ne__(self, other: Any) -> "Expr":  # type: ignore[override]
        return self._bin(other, Operation.NE)

    def __and__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.AND)

    def __rand__(self, other: Any) -> "Expr":
        return self._rbin(other, Operation.AND)

    def __or__(self, other: Any) -> "Expr":
        return self._bin(other, Operation.OR)

    def __ror__(self, other: Any) -> "Expr":
        return self._rbin(other, Operation.OR)

    def __invert__(self) -> "Expr":
        return UnaryExpr(Operation.NOT, self)

    def __neg__(self) -> "Expr":
        return self.negate()

    def is_null(self) -> "Expr":
        return UnaryExpr(Operation.IS_NULL, self)

    def is_not_null(self) -> "Expr":
        return UnaryExpr(Operation.IS_NOT_NULL, self)

    def is_in(self, values: Sequence[Any]) -> "Expr":
        return BinaryExpr(Operation.IN, self, _values(values, "is_in"))

    def not_in(self, values: Sequence[Any]) -> "Expr":
        return BinaryExpr(Operation.NOT_IN, self, _values(values, "not_in"))

    def alias(self, name: builtins.str) -> "Expr":
        """This expression's values under the column name ``name``."""
        return AliasExpr(self._unalias(), name)

    def _unalias(self) -> "Expr":
        return self

    def _fn(
        self, name: builtins.str, template: builtins.str, *params: Any, string: bool = False
    ) -> "UDFExpr":
        return UDFExpr(name, (self,), template, params, string)

    def ceil(self) -> "Expr":
        return self._fn("ceil", "ceil({0})")

    def floor(self) -> "Expr":
        return self._fn("floor", "floor({0})")

    def round(self) -> "Expr":
        """Rounded to the nearest whole number, halves to even (as pyarrow's ``round``)."""
        return self._fn(
            "round",
            "(CASE WHEN abs({0} - trunc({0})) = 0.5 THEN 2 * round({0} / 2) ELSE round({0}) END)",
        )

    def trunc(self) -> "Expr":
        return self._fn("trunc", "trunc({0})")

    def ln(self) -> "Expr":
        return self._fn("ln", "ln({0})")

    def log10(self) -> "Expr":
        return self._fn("log10", "log10({0})")

    def log2(self) -> "Expr":
        return self._fn("log2", "log2({0})")

    def exp(self) -> "Expr":
        return self._fn("exp", "exp({0})")

    def sin(self) -> "Expr":
        return self._fn("sin", "sin({0})")

    def cos(self) -> "Expr":
        return self._fn("cos", "cos({0})")

    def tan(self) -> "Expr":
        return self._fn("tan", "tan({0})")

    def asin(self) -> "Expr":
        return self._fn("asin", "asin({0})")

    def acos(self) -> "Expr":
        return self._fn("acos", "acos({0})")

    def atan(self) -> "Expr":
        return self._fn("atan", "atan({0})")

    def negate(self) -> "Expr":
        return self._fn("negate", "(-{0})")

    def sign(self) -> "Expr":
        return self._fn("sign", "signum({0})")

    def abs(self) -> "Expr":
        return self._fn("abs", "abs({0})")

    def power(self, exponent: Any) -> "Expr":
        return UDFExpr("power", (self, _as_expr(exponent)), "power({0}, {1})", (), False)

    def cast(self, target_type: DataType, *, safe: bool = True) -> "Expr":
        """These values as ``target_type`` (a ``DataType``; a value that does not fit is
        an error, as Ray's ``safe=True``)."""
        if not isinstance(target_type, DataType):
            raise TypeError(
                f"target_type must be a volley.data.datatype.DataType, got: "
                f"{type(target_type).__name__}. Use the DataType factories (e.g., "
                "DataType.int64(), DataType.string())."
            )
        if not safe:
            raise NotImplementedError(
                "Expr.cast(safe=False) is not supported by Volley: a value that does not "
                "fit the type is an error (safe=True)"
            )
        arrow = target_type.to_arrow_dtype()
        if arrow not in ARROW_NAMES:
            raise NotImplementedError(
                f"Expr.cast to {arrow} is not supported by Volley yet (numbers, booleans, "
                "strings, binary and dates are)"
            )
        return self._fn(
            "cast", "arrow_cast({0}, '" + ARROW_NAMES[arrow] + "')", string=arrow == pa.string()
        )

    @property
    def str(self) -> "_StringNamespace":
        return _StringNamespace(self)

    @property
    def dt(self) -> "_DatetimeNamespace":
        return _DatetimeNamespace(self)

    @property
    def list(self) -> "_ListNamespace":
        return _ListNamespace(self)

    @property
    def struct(self) -> "_StructNamespace":
        return _StructNamespace(self)

    @property
    def arr(self) -> Any:
        raise NotImplementedError("Expr.arr (Ray's array namespace) is not supported by Volley yet")

    @property
    def map(self) -> Any:
        raise NotImplementedError("Expr.map (Ray's map namespace) is not supported by Volley yet")


def _tree_lines(children: List[Tuple[str, Expr]], indent: str, out: List[str]) -> None:
    for i, (label, child) in enumerate(children):
        last = i == len(children) - 1
        own, grand = child._tree()
        out.append(f"{indent}{'└── ' if last else '├── '}{label}{own}")
        _tree_lines(grand, indent + ("    " if last else "│   "), out)


class ColumnExpr(Expr):
    """The column named exactly ``name``."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a column name is a str, not {type(name).__name__}")
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def _key(self) -> Tuple[Any, ...]:
        return ("col", self._name)

    def _tree(self) -> Tuple[str, List[Tuple[str, Expr]]]:
        return f"COL({self._name!r})", []

    def _to_sql(self, c: _Sql) -> str:
        return _ident(self._name)


class LiteralExpr(Expr):
    """A constant."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def _key(self) -> Tuple[Any, ...]:
        return ("lit", type(self.value).__name__, repr(self.value))

    def _tree(self) -> Tuple[str, List[Tuple[str, Expr]]]:
        return f"LIT({self.value!r})", []

    def _to_sql(self, c: _Sql) -> str:
        return literal(self.value)


class BinaryExpr(Expr):
    """``left op right``."""

    __slots__ = ("op", "left", "right")

    def __init__(self, op: Operation, left: Expr, right: Expr) -> None:
        self.op, self.left, self.right = op, left, right

    def _key(self) -> Tuple[Any, ...]:
        return ("bin", self.op, self.left._key(), self.right._key())

    def _tree(self) -> Tuple[str, List[Tuple[str, Expr]]]:
        return self.op.name, [("left: ", self.left), ("right: ", self.right)]

    def _to_sql(self, c: _Sql) -> str:
        op, left = self.op, c.sql(self.left)
        if op in (Operation.IN, Operation.NOT_IN):
            assert isinstance(self.right, LiteralExpr)
            values = self.right.value
            known = [v for v in values if v is not None]
            inside = (
                f"coalesce({left} IN ({', '.join(literal(v) for v in known)}), FALSE)"
                if known
                else "FALSE"
            )
            if len(known) < len(values):
                inside = f"({inside} OR {left} IS NULL)"
            return f"(NOT {inside})" if op == Operation.NOT_IN else f"({inside})"
        right = c.sql(self.right)
        if op == Operation.ADD and (c.is_string(self.left) or c.is_string(self.right)):
            return f"({left} || {right})"
        if op == Operation.FLOORDIV:
            return f"floor({left} / {right})"
        if op == Operation.MOD:
            return f"({left} - floor({left} / {right}) * {right})"
        return f"({left} {_INFIX[op]} {right})"


class UnaryExpr(Expr):
    """``op operand`` (``~``, ``is_null``, ``is_not_null``)."""

    __slots__ = ("op", "operand")

    def __init__(self, op: Operation, operand: Expr) -> None:
        self.op, self.operand = op, operand

    def _key(self) -> Tuple[Any, ...]:
        return ("unary", self.op, self.operand._key())

    def _tree(self) -> Tuple[str, List[Tuple[str, Expr]]]:
        return self.op.name, [("operand: ", self.operand)]

    def _to_sql(self, c: _Sql) -> str:
        x = c.sql(self.operand)
        return {
            Operation.NOT: f"(NOT {x})",
            Operation.IS_NULL: f"({x} IS NULL)",
            Operation.IS_NOT_NULL: f"({x} IS NOT NULL)",
        }[self.op]


class AliasExpr(Expr):
    """``expr`` under the column name ``name``."""

    __slots__ = ("expr", "_name")

    def __init__(self, expr: Expr, name: str) -> None:
        self.expr, self._name = expr, name

    @property
    def name(self) -> str:
        return self._name

    def _unalias(self) -> Expr:
        return self.expr

    def _key(self) -> Tuple[Any, ...]:
        return ("alias", self._name, self.expr._key())

    def _tree(self) -> Tuple[str, List[Tuple[str, Expr]]]:
        return f"ALIAS({self._name!r})", [("", self.expr)]

    def _to_sql(self, c: _Sql) -> str:
        return c.sql(self.expr)


class UDFExpr(Expr):
    """A function of expressions the engine evaluates natively (math, ``cast``, the
    namespaces' methods)."""

    __slots__ = ("fn_name", "args", "_template", "_params", "_returns_string")

    def __init__(
        self,
        fn_name: str,
        args: Tuple[Expr, ...],
        template: str,
        params: Tuple[Any, ...],
        returns_string: bool,
    ) -> None:
        self.fn_name, self.args = fn_name, args
        self._template, self._params, self._returns_string = template, params, returns_string

    def _key(self) -> Tuple[Any, ...]:
        return ("fn", self._template, self._params, tuple(a._key() for a in self.args))

    def _tree(self) -> Tuple[str, List[Tuple[str, Expr]]]:
        return f"UDF({self.fn_name})", [(f"arg[{i}]: ", a) for i, a in enumerate(self.args)]

    def _to_sql(self, c: _Sql) -> str:
        args = [c.sql(a) for a in self.args]
        params = [literal(p) for p in self._params]
        return self._template.format(*args, *params)


def _as_expr(value: Any) -> Expr:
    return value if isinstance(value, Expr) else LiteralExpr(value)


def _values(values: Any, what: str) -> LiteralExpr:
    if isinstance(values, Expr):
        if isinstance(values, LiteralExpr) and isinstance(values.value, (list, tuple)):
            return LiteralExpr(list(values.value))
        raise TypeError(f"{what} needs a list of values, not an expression")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{what} needs a list of values, not {type(values).__name__}")
    return LiteralExpr(list(values))


class _Namespace:
    __slots__ = ("_expr",)
    _kind = ""

    def __init__(self, expr: Expr) -> None:
        self._expr = expr

    def _fn(self, name: str, template: str, *params: Any, string: bool = False) -> UDFExpr:
        return self._expr._fn(f"{self._kind}.{name}", template, *params, string=string)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise NotImplementedError(
            f"Expr.{self._kind}.{name} is not supported by Volley yet; see "
            "volley.data.expressions for the methods that are"
        )


class _StringNamespace(_Namespace):
    """String functions (``col("s").str.upper()``)."""

    __slots__ = ()
    _kind = "str"

    def len(self) -> Expr:
        return self._fn("len", "character_length({0})")

    def byte_len(self) -> Expr:
        return self._fn("byte_len", "octet_length({0})")

    def upper(self) -> Expr:
        return self._fn("upper", "upper({0})", string=True)

    def lower(self) -> Expr:
        return self._fn("lower", "lower({0})", string=True)

    def capitalize(self) -> Expr:
        return self._fn(
            "capitalize", "(upper(substr({0}, 1, 1)) || lower(substr({0}, 2)))", string=True
        )

    def title(self) -> Expr:
        return self._fn("title", "initcap({0})", string=True)

    def reverse(self) -> Expr:
        return self._fn("reverse", "reverse({0})", string=True)

    def starts_with(self, pattern: str, ignore_case: bool = False) -> Expr:
        if ignore_case:
            return self._fn("starts_with", "starts_with(lower({0}), lower({1}))", pattern)
        return self._fn("starts_with", "starts_with({0}, {1})", pattern)

    def ends_with(self, pattern: str, ignore_case: bool = False) -> Expr:
        if ignore_case:
            return self._fn("ends_with", "ends_with(lower({0}), lower({1}))", pattern)
        return self._fn("ends_with", "ends_with({0}, {1})", pattern)

    def contains(self, pattern: str, ignore_case: bool = False) -> Expr:
        if ignore_case:
            return self._fn("contains", "(strpos(lower({0}), lower({1})) > 0)", pattern)
        return self._fn("contains", "(strpos({0}, {1}) > 0)", pattern)

    def match(self, pattern: str) -> Expr:
        """SQL ``LIKE`` (``%`` any text, ``_`` one character), as pyarrow's ``match_like``."""
        return self._fn("match", "({0} LIKE {1})", pattern)

    def match_regex(self, pattern: str) -> Expr:
        return self._fn("match_regex", "regexp_like({0}, {1})", pattern)

    def replace(self, pattern: str, replacement: str) -> Expr:
        return self._fn("replace", "replace({0}, {1}, {2})", pattern, replacement, string=True)

    def replace_regex(self, pattern: str, replacement: str) -> Expr:
        return self._fn(
            "replace_regex", "regexp_replace({0}, {1}, {2}, 'g')", pattern, replacement, string=True
        )

    def slice(self, start: int, stop: Optional[int] = None) -> Expr:
        """Characters ``start`` (from 0) up to ``stop`` (not included)."""
        if start < 0 or (stop is not None and stop < 0):
            raise NotImplementedError(
                "Expr.str.slice with negative positions is not supported by Volley yet"
            )
        if stop is None:
            return self._fn("slice", "substr({0}, {1})", start + 1, string=True)
        return self._fn(
            "slice", "substr({0}, {1}, {2})", start + 1, max(stop - start, 0), string=True
        )

    def repeat(self, n: int) -> Expr:
        return self._fn("repeat", "repeat({0}, {1})", int(n), string=True)

    def split(self, pattern: str) -> Expr:
        return self._fn("split", "string_to_array({0}, {1})", pattern)

    def lpad(self, width: int, padding: str = " ") -> Expr:
        """Padded on the left to ``width`` characters (a longer string is kept whole)."""
        return self._fn(
            "lpad",
            "(CASE WHEN character_length({0}) >= {1} THEN {0} ELSE lpad({0}, {1}, {2}) END)",
            int(width),
            padding,
            string=True,
        )

    def rpad(self, width: int, padding: str = " ") -> Expr:
        """Padded on the right to ``width`` characters (a longer string is kept whole)."""
        return self._fn(
            "rpad",
            "(CASE WHEN character_length({0}) >= {1} THEN {0} ELSE rpad({0}, {1}, {2}) END)",
            int(width),
            padding,
            string=True,
        )

    def strip(self, characters: Optional[str] = None) -> Expr:
        return self._trim("strip", "btrim", characters)

    def lstrip(self, characters: Optional[str] = None) -> Expr:
        return self._trim("lstrip", "ltrim", characters)

    def rstrip(self, characters: Optional[str] = None) -> Expr:
        return self._trim("rstrip", "rtrim", characters)

    def _trim(self, name: str, fn: str, characters: Optional[str]) -> Expr:
        chars = " \t\n\r\x0b\x0c" if characters is None else characters
        return self._fn(name, fn + "({0}, {1})", chars, string=True)


class _DatetimeNamespace(_Namespace):
    """Parts of timestamps and dates (``col("t").dt.year()``)."""

    __slots__ = ()
    _kind = "dt"

    def _part(self, part: str) -> Expr:
        return self._fn(part, f"CAST(date_part('{part}', {{0}}) AS BIGINT)")

    def year(self) -> Expr:
        return self._part("year")

    def month(self) -> Expr:
        return self._part("month")

    def day(self) -> Expr:
        return self._part("day")

    def hour(self) -> Expr:
        return self._part("hour")

    def minute(self) -> Expr:
        return self._part("minute")

    def second(self) -> Expr:
        return self._part("second")

    def strftime(self, fmt: str) -> Expr:
        return self._fn("strftime", "to_char({0}, {1})", fmt, string=True)


class _ListNamespace(_Namespace):
    """List functions (``col("l").list.len()``)."""

    __slots__ = ()
    _kind = "list"

    def len(self) -> Expr:
        return self._fn("len", "CAST(cardinality({0}) AS INT)")

    def get(self, index: int) -> Expr:
        """The element at ``index`` (from 0; negative from the end); null past the end."""
        i = int(index)
        return self._fn("get", "array_element({0}, {1})", i + 1 if i >= 0 else i)

    def flatten(self) -> Expr:
        return self._fn("flatten", "flatten({0})")


class _StructNamespace(_Namespace):
    """Struct fields (``col("s").struct.field("x")``, or ``col("s").struct["x"]``)."""

    __slots__ = ()
    _kind = "struct"

    def field(self, field_name: str) -> Expr:
        return self._fn("field", "get_field({0}, {1})", field_name)

    def __getitem__(self, field_name: str) -> Expr:
        return self.field(field_name)


def col(name: str) -> ColumnExpr:
    """The column named exactly ``name``."""
    return ColumnExpr(name)


def lit(value: Any) -> LiteralExpr:
    """A constant (None, bool, int, float, str, date, datetime)."""
    literal(value)
    return LiteralExpr(value)


def _refused(name: str, hint: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"ray.data.expressions.{name} is not supported by Volley yet{hint}"
        )

    refuse.__name__ = name
    return refuse


udf = _refused("udf", ": run Python over batches with Dataset.map_batches")
pyarrow_udf = _refused("pyarrow_udf", ": run pyarrow over batches with Dataset.map_batches")
download = _refused("download", "")
star = _refused("star", "")
unnest = _refused("unnest", "")
random = _refused("random", "")
uuid = _refused("uuid", "")
monotonically_increasing_id = _refused("monotonically_increasing_id", "")


def to_sql(expr: Expr, schema: Callable[[], pa.Schema]) -> str:
    """The SQL of ``expr`` over a dataset whose schema ``schema()`` gives (called only if
    the SQL depends on a column's type)."""
    if not isinstance(expr, Expr):
        raise TypeError(
            f"expected an expression (volley.data.expressions), not {type(expr).__name__}"
        )
    return _Sql(schema).sql(expr)
