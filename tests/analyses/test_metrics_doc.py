"""docs/metrics.md stays complete: every analysis kind, metric, operator and funnel mode is defined there, and
every default a request may leave out."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import msgspec
import pytest

from nexus.analyses import filters, funnels, metric_catalogue, registry

DOC = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()


@pytest.mark.parametrize("name", [*registry.ANALYSES, *metric_catalogue.CATALOGUE,
                                  *typing.get_args(filters.Operator), *funnels.MODES])
def test_every_name_is_documented(name):
    assert f"`{name}`" in DOC or f"**{name.capitalize()}**" in DOC, name


def test_every_analysis_module_states_its_definition():
    for kind, module in registry.ANALYSES.items():
        assert module.__doc__ and "Definition" in module.__doc__ or kind == "funnel_persons", kind


def _documented_defaults() -> dict[tuple[str, str], str]:
    """(kind, field) → the default cell of the table under '### Defaults' in docs/metrics.md."""
    section = DOC.split("### Defaults", 1)[1].split("\n#", 1)[0]
    cells = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            field, kinds, default = (cell.strip() for cell in line.strip("|").split(" | ", 2))
            for kind in re.findall(r"`(\w+)`", kinds):
                cells[(kind, field.strip("`"))] = default
    return cells


def test_every_default_of_every_request_is_documented_as_the_code_has_it():
    documented = _documented_defaults()
    expected = {}
    for kind, module in registry.ANALYSES.items():
        for field in msgspec.structs.fields(module.Request):
            if field.default is not msgspec.NODEFAULT:
                expected[(kind, field.encode_name)] = field.default
            elif field.default_factory is not msgspec.NODEFAULT:
                expected[(kind, field.encode_name)] = field.default_factory()
    assert set(documented) == set(expected)
    for key, default in expected.items():
        assert documented[key].startswith(f"`{json.dumps(msgspec.to_builtins(default))}`"), key
