"""Ray's string expressions (``filter(expr="UserID > 7 and key == 'a'")``) as the SQL the
engine evaluates natively.

Ray parses ``expr`` as Python: a name is a column, exactly as written (``UserID``, and a
dotted name ``sepal.length`` is the column of that name); a quoted text, single or double,
is a string; ``and`` / ``or`` / ``not``, comparisons, ``in`` / ``not in`` a list, arithmetic,
and the calls ``is_null(x)``, ``is_valid(x)``, ``is_nan(x)``, ``is_in(x, [...])``. Each
becomes SQL with every column a quoted identifier, so no name is case-folded or split.

An expression that is not Python (``value > 0.5 AND key = 'a'``) is taken as SQL as it is,
as Volley always accepted it: quote odd column names there (``"sepal.length" > 2``).
"""

from __future__ import annotations

import ast
import datetime
from typing import Any

__all__ = ["to_sql"]

_COMPARE = {
    ast.Eq: "=",
    ast.NotEq: "<>",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(v: Any) -> str:
    """The SQL of a constant (``TypeError`` for one no SQL literal holds)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return f"CAST('{v!r}' AS DOUBLE)"
        return repr(v)
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, datetime.datetime):
        return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
    if isinstance(v, datetime.date):
        return f"DATE '{v.isoformat()}'"
    raise TypeError(
        f"a literal of type {type(v).__name__} ({v!r}) is not supported by Volley's "
        "expressions (None, bool, int, float, str, date and datetime are)"
    )


def _literal(value: Any, expr: str) -> str:
    try:
        return literal(value)
    except TypeError:
        raise ValueError(f"unsupported constant {value!r} in the expression {expr!r}") from None


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise ValueError(f"unsupported attribute {ast.unparse(node)!r}")


class _ToSql:
    def __init__(self, expr: str) -> None:
        self.expr = expr

    def fail(self, node: ast.AST, what: str) -> ValueError:
        return ValueError(f"{what} {ast.unparse(node)!r} in the expression {self.expr!r}")

    def items(self, node: ast.AST) -> str:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            raise self.fail(node, "'in' needs a list, not")
        return "(" + ", ".join(self.sql(e) for e in node.elts) + ")"

    def sql(self, node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            return _ident(node.id)
        if isinstance(node, ast.Attribute):
            return _ident(_dotted(node))
        if isinstance(node, ast.Constant):
            return _literal(node.value, self.expr)
        if isinstance(node, ast.BoolOp):
            joint = " AND " if isinstance(node.op, ast.And) else " OR "
            return "(" + joint.join(self.sql(v) for v in node.values) + ")"
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return f"(NOT {self.sql(node.operand)})"
            if isinstance(node.op, ast.USub):
                return f"(-{self.sql(node.operand)})"
            if isinstance(node.op, ast.UAdd):
                return self.sql(node.operand)
            raise self.fail(node, "unsupported operator in")
        if isinstance(node, ast.BinOp):
            arith = _ARITH.get(type(node.op))
            if arith is None:
                raise self.fail(node, "unsupported operator in")
            return f"({self.sql(node.left)} {arith} {self.sql(node.right)})"
        if isinstance(node, ast.Compare):
            parts = []
            left = node.left
            for cmp, right in zip(node.ops, node.comparators):
                if isinstance(cmp, (ast.In, ast.NotIn)):
                    neg = "NOT " if isinstance(cmp, ast.NotIn) else ""
                    parts.append(f"({self.sql(left)} {neg}IN {self.items(right)})")
                elif type(cmp) in _COMPARE:
                    parts.append(f"({self.sql(left)} {_COMPARE[type(cmp)]} {self.sql(right)})")
                else:
                    raise self.fail(node, "unsupported comparison")
                left = right
            return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            name, args = node.func.id, node.args
            if name in ("is_null", "is_valid", "is_nan") and len(args) == 1:
                x = self.sql(args[0])
                return {
                    "is_null": f"({x} IS NULL)",
                    "is_valid": f"({x} IS NOT NULL)",
                    "is_nan": f"isnan({x})",
                }[name]
            if name == "is_in" and len(args) == 2:
                return f"({self.sql(args[0])} IN {self.items(args[1])})"
            raise self.fail(node, "unsupported call")
        raise self.fail(node, "unsupported syntax")


def to_sql(expr: str) -> str:
    """The SQL of Ray's expression ``expr`` (see the module); SQL that is not Python
    passes through unchanged."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return expr
    return _ToSql(expr).sql(tree.body)
