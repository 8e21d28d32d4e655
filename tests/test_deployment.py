"""What can be checked of compose.yaml and the image without a Docker engine: it parses, every file it
mounts or builds from exists, every command it runs is a nexus command, every variable is a setting,
and the installed package carries its SQL files."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from nexus.cli import main
from nexus.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_defines_the_server_mode_services():
    assert {"clickhouse", "redis", "migrate", "api", "worker", "dashboard"} <= set(COMPOSE["services"])
    image = COMPOSE["services"]["clickhouse"]["image"]
    assert re.fullmatch(r"clickhouse/clickhouse-server:\d+\.\d+(\.\d+)*", image), "pin a ClickHouse release"


def test_every_mounted_file_and_build_context_exists():
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name} mounts missing {source}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()


@pytest.mark.parametrize("name", ["migrate", "api", "worker", "dashboard"])
def test_service_commands_are_nexus_commands(name: str):
    command = COMPOSE["services"][name]["command"]
    assert command[0] == "nexus" and command[1] in main.commands
    result = subprocess.run([sys.executable, "-m", "nexus", *command[1:2], "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option in (arg for arg in command[2:] if arg.startswith("--")):
        assert option in result.stdout, f"{name}: nexus {command[1]} has no {option}"


def test_services_are_configured_only_with_known_settings():
    known = {s.name for s in SETTINGS}
    for service in COMPOSE["services"].values():
        assert set(k for k in service.get("environment", {}) if k.startswith("NEXUS_")) <= known


def test_the_dashboard_waits_for_a_healthy_api_and_the_api_for_its_stores():
    assert COMPOSE["services"]["dashboard"]["depends_on"]["api"]["condition"] == "service_healthy"
    api = COMPOSE["services"]["api"]
    assert api["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "/health/ready" in " ".join(api["healthcheck"]["test"])


def test_the_wheel_carries_the_sql_files(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for migration in (ROOT / "sql" / "migrations").glob("*.sql"):
        assert f"nexus/_sql/migrations/{migration.name}" in names


def test_the_api_serves_the_export_files_the_workers_write():
    """In server mode the workers write export files and the API serves them: one volume, at the one
    NEXUS_EXPORT_DIR both read, writable by the image's user."""
    services = COMPOSE["services"]
    directory = services["worker"]["environment"]["NEXUS_EXPORT_DIR"]
    for name in ("api", "worker"):
        assert services[name]["environment"]["NEXUS_EXPORT_DIR"] == directory
        assert any(v.split(":")[1] == directory and v.split(":")[0] in COMPOSE["volumes"] for v in services[name]["volumes"])
    assert f"chown nexus /data {directory}" in (ROOT / "Dockerfile").read_text()
    assert services["worker"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
