"""Decides whether a parsed query may run, from the engine's own syntax tree (`parseQueryToJSON`).

The tree is what ClickHouse itself will execute, so comments, quoting and spacing cannot hide anything:
every table the query names (FROM, JOIN, IN, subqueries, CTEs, UNION branches), every table function
and every function is a node here. A query passes when it is a single SELECT without FORMAT, INTO
OUTFILE or SETTINGS, names only allowed tables and table functions, and calls no refused function.
Row isolation is not decided here: the engine filters every allowed table by project at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from nexus.adhoc import policy
from nexus.adhoc.errors import QueryRefused
from nexus.adhoc.functions import FunctionCatalog

# Node types a SELECT is made of. Anything else (a new construct, a non-SELECT statement) is refused
# until someone has looked at what it can reach.
_NODE_TYPES = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ExpressionList", "Literal",
    "Identifier", "Function", "QueryParameter", "Subquery", "WithElement", "TablesInSelectQuery",
    "TablesInSelectQueryElement", "TableExpression", "TableIdentifier", "TableJoin", "ArrayJoin",
    "OrderByElement", "WindowDefinition", "WindowListElement", "Asterisk", "QualifiedAsterisk",
    "ColumnsRegexpMatcher", "ColumnsListMatcher", "QualifiedColumnsRegexpMatcher",
    "QualifiedColumnsListMatcher", "ColumnsTransformerList", "ColumnsExceptTransformer",
    "ColumnsReplaceTransformer", "ColumnsReplaceTransformerReplacement", "ColumnsApplyTransformer",
    "SampleRatio", "InterpolateElement", "Interpolate",
})
_STATEMENT_CLAUSES = {"out_file": "INTO OUTFILE", "format_ast": "FORMAT", "settings_ast": "SETTINGS",
                      "compression": "INTO OUTFILE ... COMPRESSION"}


class Parameter(msgspec.Struct, frozen=True):
    name: str
    type: str


class Checked(msgspec.Struct, frozen=True):
    """What an allowed query reads and which `{name:Type}` parameters it needs."""

    tables: tuple[str, ...]
    parameters: tuple[Parameter, ...]


class VisibleTables(msgspec.Struct, frozen=True):
    """The tables an ad-hoc query may see: this database's, by the names it holds (a CTE must not take
    the name of a table it could then fall back to)."""

    database: str
    existing_tables: frozenset[str]


def check(ast: dict[str, Any], visible: VisibleTables, catalog: FunctionCatalog) -> Checked:
    """The query's tables and parameters when it may run; QueryRefused naming the first reason it may not."""
    if ast.get("type") != "SelectWithUnionQuery":
        raise QueryRefused(f"only SELECT queries can run here, not {_statement_name(ast)}")
    ctes = {node["name"] for node in _nodes(ast) if node.get("type") == "WithElement" and "subquery" in node}
    walker = _Walker(visible, catalog, ctes)
    walker.visit(ast)
    return Checked(tuple(sorted(walker.tables)), tuple(walker.parameters.values()))


class _Walker:
    def __init__(self, visible: VisibleTables, catalog: FunctionCatalog, ctes: set[str]):
        self.visible = visible
        self.catalog = catalog
        self.ctes = ctes
        self.tables: set[str] = set()
        self.parameters: dict[str, Parameter] = {}

    def visit(self, node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                self.visit(item)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind is not None and kind not in _NODE_TYPES:
            raise QueryRefused(f"{_describe(kind)} is not allowed in ad-hoc SQL")
        if kind == "SelectWithUnionQuery":
            for key, clause in _STATEMENT_CLAUSES.items():
                if key in node:
                    raise QueryRefused(f"{clause} is not allowed: the API chooses the output and the settings")
        if kind == "SelectQuery" and "settings" in node:
            raise QueryRefused("SETTINGS is not allowed: each API key's limits are set by the server")
        if kind == "TableExpression" and "table_function" in node:
            self._table_function(node["table_function"])
            self.visit({k: v for k, v in node.items() if k != "table_function"})
            return
        if kind == "TableIdentifier":
            self._table(node)
        elif kind == "Function":
            self._function(node)
        elif kind == "ColumnsApplyTransformer":
            # `SELECT * APPLY(f)` names its function as text, not as a Function node: check it the same way.
            self._function({"name": node.get("func_name", "")})
        elif kind == "QueryParameter":
            self._parameter(node)
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                self.visit(value)

    def _table(self, node: dict[str, Any]) -> None:
        parts = node.get("name_parts") or [node.get("name", "")]
        if node.get("children") or not all(parts):
            raise QueryRefused("table names cannot come from query parameters")
        self._table_name(parts)

    def _table_name(self, parts: list[str]) -> None:
        if len(parts) == 1:
            (name,) = parts
            if name in policy.PROJECT_TABLES:
                self.tables.add(name)
                return
            if name in self.ctes and name not in self.visible.existing_tables:
                return  # a CTE of this query; with no table of its name, nothing else can answer to it
            raise QueryRefused(f"table {name!r} is not available to ad-hoc SQL; GET /v1/schema lists those that are")
        if len(parts) == 2:
            database, name = parts
            if database == self.visible.database and name in policy.PROJECT_TABLES:
                self.tables.add(name)
                return
            if database == "system" and name in policy.SYSTEM_TABLES:
                self.tables.add(f"system.{name}")
                return
        raise QueryRefused(f"table {'.'.join(parts)!r} is not available to ad-hoc SQL; GET /v1/schema lists those "
                           f"that are")

    def _table_function(self, node: dict[str, Any]) -> None:
        name = node.get("name", "")
        if node.get("type") != "Function" or name not in policy.TABLE_FUNCTIONS:
            allowed = ", ".join(sorted(policy.TABLE_FUNCTIONS))
            raise QueryRefused(f"table function {name!r} is not allowed; these are: {allowed}")
        self.visit(node.get("arguments"))
        self.visit(node.get("parameters"))

    def _function(self, node: dict[str, Any]) -> None:
        name = node.get("name", "")
        if name not in policy.SYNTAX_FUNCTIONS:
            info = self.catalog.resolve(name)
            if info is None:
                raise QueryRefused(f"unknown function {name!r}")
            if info.name in policy.DENIED_FUNCTIONS or (
                info.category in policy.DENIED_CATEGORIES and info.name not in policy.ALLOWED_DESPITE_CATEGORY
            ):
                raise QueryRefused(f"function {name!r} is not allowed in ad-hoc SQL: it reaches outside the "
                                   f"project's tables")
        if name in policy.SET_FUNCTIONS:
            arguments = (node.get("arguments") or {}).get("children") or []
            if len(arguments) == 2 and arguments[1].get("type") == "Identifier":
                # `x IN name` reads the table (or CTE) called name.
                right = arguments[1]
                self._table_name(right.get("name_parts") or [right.get("name", "")])

    def _parameter(self, node: dict[str, Any]) -> None:
        name, kind = node.get("name", ""), node.get("param_type", "")
        if kind.strip() == "Identifier":
            raise QueryRefused(f"parameter {name!r}: Identifier parameters are not allowed (they can name tables)")
        known = self.parameters.get(name)
        if known is not None and known.type != kind:
            raise QueryRefused(f"parameter {name!r} is used with two types: {known.type} and {kind}")
        self.parameters[name] = Parameter(name, kind)


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _nodes(item)


def _statement_name(ast: dict[str, Any]) -> str:
    kind = str(ast.get("type", "this statement"))
    return kind.removesuffix("Query").upper() or kind


def _describe(kind: str) -> str:
    return f"{kind} (a non-SELECT construct)" if kind.endswith("Query") else kind
