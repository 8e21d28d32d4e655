"""docs/metrics.md stays complete: every analysis kind, metric, operator and funnel mode is defined there."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from nexus.analyses import filters, funnels, metrics, registry

DOC = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()


@pytest.mark.parametrize("name", [*registry.ANALYSES, *metrics.CATALOGUE, *typing.get_args(filters.Operator),
                                  *funnels.MODES])
def test_every_name_is_documented(name):
    assert f"`{name}`" in DOC or f"**{name.capitalize()}**" in DOC, name


def test_every_analysis_module_states_its_definition():
    for kind, module in registry.ANALYSES.items():
        assert module.__doc__ and "Definition" in module.__doc__ or kind == "funnel_persons", kind
