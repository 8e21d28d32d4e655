"""The README stays true: every setting documented with its default, the CI runs the README's command."""

from __future__ import annotations

import re
from pathlib import Path

from nexus.cli import main
from nexus.settings import SETTINGS, load

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_with_its_default():
    for setting in SETTINGS:
        row = next((line for line in README.splitlines() if line.startswith(f"| `{setting.name}` |")), None)
        assert row is not None, f"{setting.name} is missing from the README's configuration table"
        assert (f"`{setting.default}`" in row) if setting.default else ("empty" in row), row


def test_every_setting_s_minimum_is_documented():
    lines = README.splitlines()
    for setting in SETTINGS:
        if setting.minimum is not None and setting.minimum > 1:
            row = next(line for line in lines if line.startswith(f"| `{setting.name}` |"))
            assert re.search(rf"at least `?{setting.minimum}`?", row), row
    ones = re.search(r"the minimums are those given above, 1 for (.*?), and 0 for the others", " ".join(lines), re.S)
    assert ones, "the README's sentence on minimums is missing"
    assert set(re.findall(r"`(NEXUS_\w+)`", ones[1])) == {s.name for s in SETTINGS if s.minimum == 1}


def test_no_undocumented_setting_is_read():
    source = "\n".join(p.read_text() for p in (ROOT / "nexus").rglob("*.py"))
    used = set(re.findall(r"NEXUS_[A-Z_]*[A-Z]\b(?!\*)", source))
    assert used <= {s.name for s in SETTINGS}


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_cli_command_is_in_the_readme():
    for name in main.commands:
        assert f"`nexus {name}" in README, name


def test_defaults_apply_when_nothing_is_set(tmp_path: Path):
    settings = load({"NEXUS_DATA_DIR": str(tmp_path)})
    assert settings.clickhouse_url == f"chdb://{tmp_path}/clickhouse" and settings.port == 8000
