"""The slices of a window: one per value of each slice column, one per named expression.

A slice is a SQL condition on the window's rows, so that every aggregate of a report is one GROUP BY
GROUPING SETS over all slices at once. Named expressions are written as pandas expressions
(`tenure < 12 and contract == 'monthly'`): they are translated to SQL here for the window, and
evaluated by pandas on the (bounded) reference. An expression that cannot be translated or evaluated is
reported by name, never fatal to the report.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring.columnar import TRAFFIC, Window, literal, quote

_COMPARISONS = {ast.Eq: "=", ast.NotEq: "<>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}


@dataclass(frozen=True)
class Slice:
    name: str
    condition: str  # SQL over the window's columns
    column: str | None  # the slice column it is a value of (None for an expression)
    value: Any = None
    reads: tuple[str, ...] = ()  # the window's columns the condition reads


def window_slices(
    window: Window, columns: list[str], expressions: dict[str, str]
) -> tuple[list[Slice], dict[str, str]]:
    """The window's slices, and the named expressions that could not be used with the reason."""
    slices: list[Slice] = []
    for column in columns:
        if column not in window.columns:
            continue
        values = window.connection.execute(
            f"SELECT DISTINCT {quote(column)} FROM {TRAFFIC} WHERE {quote(column)} IS NOT NULL"
        ).fetchall()
        by_name = {f"{column}={value}": value for (value,) in values}
        slices += [
            Slice(name, f"{quote(column)} = {literal(value)}", column, value, (column,))
            for name, value in sorted(by_name.items())
        ]
    errors: dict[str, str] = {}
    for name, expression in (expressions or {}).items():
        try:
            condition = expression_sql(expression, window.columns)
            window.connection.execute(f"SELECT count(*) FROM {TRAFFIC} WHERE {condition} LIMIT 0").fetchall()
        except Exception as exc:  # a bad expression is reported, not fatal to the report
            errors[name] = f"{expression!r} could not be evaluated: {exc}"[:300]
            continue
        slices.append(Slice(name, condition, None, reads=expression_columns(expression)))
    return slices, errors


def reference_masks(reference: pd.DataFrame, slices: list[Slice], expressions: dict[str, str]) -> dict[str, pd.Series]:
    """Each slice's rows of the reference, where the reference can say (expressions by pandas)."""
    masks: dict[str, pd.Series] = {}
    for piece in slices:
        if piece.column is not None:
            if piece.column in reference:
                masks[piece.name] = reference[piece.column].astype(str) == str(piece.value)
            continue
        try:
            masks[piece.name] = pd.Series(np.asarray(reference.eval(expressions[piece.name]), dtype=bool))
        except Exception:  # noqa: S112 - the reference lacks what the expression reads: the whole reference is the baseline
            continue
    return masks


def expression_sql(expression: str, columns: Collection[str]) -> str:
    """A pandas `DataFrame.eval` boolean expression as SQL over `columns`.

    Supported: comparisons (chained too), `and`/`or`/`not` and their pandas spellings `&`, `|`, `~`,
    arithmetic, `in`/`not in` and `==`/`!=` with a list, numbers, text and True/False. Anything else
    raises ValueError naming it.
    """
    return _sql(_parse(expression).body, columns)


def expression_columns(expression: str) -> tuple[str, ...]:
    """The column names an expression that `expression_sql` translated reads."""
    return tuple(sorted({node.id for node in ast.walk(_parse(expression)) if isinstance(node, ast.Name)}))


def _parse(expression: str) -> ast.Expression:
    # pandas gives & and | the precedence of `and` and `or` by rewriting them before parsing; so do we.
    tokens = []
    for token in tokenize.generate_tokens(io.StringIO(expression).readline):
        spelled = {"&": "and", "|": "or", "~": "not"}.get(token.string) if token.type == tokenize.OP else None
        tokens.append((tokenize.NAME, spelled) if spelled else (token.type, token.string))
    try:
        return ast.parse(tokenize.untokenize(tokens).strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an expression: {exc.msg}") from exc


def _sql(node: ast.AST, columns: Collection[str]) -> str:
    if isinstance(node, ast.BoolOp):
        joiner = " AND " if isinstance(node.op, ast.And) else " OR "
        return "(" + joiner.join(_sql(value, columns) for value in node.values) + ")"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
        return f"(NOT {_sql(node.operand, columns)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return f"(-{_sql(node.operand, columns)})"
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        return f"({_sql(node.left, columns)} {_ARITHMETIC[type(node.op)]} {_sql(node.right, columns)})"
    if isinstance(node, ast.Compare):
        parts, left = [], node.left
        for operator, right in zip(node.ops, node.comparators, strict=True):
            parts.append(_comparison(left, operator, right, columns))
            left = right
        return "(" + " AND ".join(parts) + ")"
    if isinstance(node, ast.Name):
        if node.id not in columns:
            raise ValueError(f"no column {node.id!r} in the window")
        return quote(node.id)
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return literal(node.value)
    raise ValueError(f"{ast.unparse(node)!r} is not supported in a slice expression")


def _comparison(left: ast.AST, operator: ast.cmpop, right: ast.AST, columns: Collection[str]) -> str:
    if isinstance(right, ast.List | ast.Tuple):
        if not isinstance(operator, ast.In | ast.NotIn | ast.Eq | ast.NotEq):
            raise ValueError(f"a list compares with in, not in, == or != only, not {type(operator).__name__}")
        negated = "NOT " if isinstance(operator, ast.NotIn | ast.NotEq) else ""
        items = ", ".join(_sql(item, columns) for item in right.elts) or "NULL"
        return f"{_sql(left, columns)} {negated}IN ({items})"
    if type(operator) not in _COMPARISONS:
        raise ValueError(f"the comparison {type(operator).__name__} is not supported")
    return f"{_sql(left, columns)} {_COMPARISONS[type(operator)]} {_sql(right, columns)}"
