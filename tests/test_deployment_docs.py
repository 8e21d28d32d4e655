"""The deployment guide stays true: every analysis kind says where it runs on a cluster, every figure it sizes by is
labelled measured or extrapolated, and every file or page it links to exists."""

from __future__ import annotations

import re
from pathlib import Path

from nexus.analyses import registry
from nexus.store.sql_files import load

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs/deployment.md").read_text()


def _section(text: str, heading: str) -> str:
    return re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ |\Z)", text, re.M | re.S)[1]


def test_every_analysis_kind_says_where_it_runs_on_a_cluster():
    rows = [line for line in _section(GUIDE, "Where each analysis runs").splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`(\w+)`", row.split(" | ")[0])}
    tables = set(re.findall(r"^CREATE TABLE (\w+)", load("schema.sql"), re.M))
    assert named - (tables - set(registry.ANALYSES)) == set(registry.ANALYSES)  # `events`, `persons`: both


def test_every_sizing_figure_is_labelled_measured_or_extrapolated():
    rows = [line for line in _section(GUIDE, "Sizing: what was measured").splitlines()
            if line.startswith("| ") and not line.startswith(("| quantity", "| ---"))]
    assert rows
    for row in rows:
        assert re.search(r"\*\*(measured|extrapolated)\*\*", row), row


def test_every_relative_link_of_the_guides_exists():
    for page in ("docs/deployment.md", "docs/threat-model.md"):
        text = (ROOT / page).read_text()
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if not target.startswith("http"):
                assert (ROOT / page).parent.joinpath(target).resolve().exists(), f"{page} links to missing {target}"
        for path in re.findall(r"`((?:nexus|tests|benchmarks|clickhouse|proxy|sql)/[\w./-]+\.(?:py|xml|conf|sql))`",
                               text):
            assert (ROOT / path).exists(), f"{page} names missing {path}"
