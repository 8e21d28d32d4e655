"""The engine's function catalog, read once from system.functions: resolves a name as written (aliases,
case-insensitive names, aggregate combinators such as `uniqMergeState`) to the function it calls."""

from __future__ import annotations

import msgspec
from clickhouse_connect.driver.client import Client


class FunctionInfo(msgspec.Struct, frozen=True):
    name: str
    category: str
    is_aggregate: bool


class FunctionCatalog(msgspec.Struct, frozen=True):
    exact: dict[str, FunctionInfo]
    folded: dict[str, FunctionInfo]  # lower-cased names of case-insensitive functions
    combinators: tuple[str, ...]  # longest first, so `MergeState` is tried before `State`

    def resolve(self, name: str) -> FunctionInfo | None:
        """The function `name` calls, or None when the engine does not know it."""
        found = self.exact.get(name) or self.folded.get(name.lower())
        if found is not None:
            return found
        # sumIf, uniqMergeState, argMinStateIf: an aggregate function with combinator suffixes.
        for suffix in self.combinators:
            if name.endswith(suffix) and len(name) > len(suffix):
                base = self.resolve(name[: -len(suffix)])
                if base is not None and base.is_aggregate:
                    return base
        return None


def load(client: Client) -> FunctionCatalog:
    rows = client.query(
        "SELECT name, categories, is_aggregate, case_insensitive, alias_to FROM system.functions"
    ).result_rows
    canonical = {name: FunctionInfo(name, category, bool(aggregate)) for name, category, aggregate, _, alias in rows
                 if not alias}
    exact: dict[str, FunctionInfo] = {}
    folded: dict[str, FunctionInfo] = {}
    for name, _, _, case_insensitive, alias in rows:
        info = canonical.get(alias or name)
        if info is None:
            continue  # an alias of a function the catalog does not list: unknown, so refused
        exact[name] = info
        if case_insensitive:
            folded[name.lower()] = info
    combinators = [row[0] for row in client.query(
        "SELECT name FROM system.aggregate_function_combinators WHERE NOT is_internal").result_rows]
    return FunctionCatalog(exact, folded, tuple(sorted(combinators, key=len, reverse=True)))
