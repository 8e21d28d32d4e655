"""What can be checked of compose.cluster.yaml without a Docker engine: the ClickHouse nodes, their macros and the
cluster's remote_servers describe the same 2 shards x 2 replicas; the Keeper ensemble is the one every node talks
to; every file mounted exists and parses; the Nexus processes are nexus commands configured with known settings and
the cluster name the servers define; the proxy balances exactly the API processes; the query settings the cluster
layout relies on are real settings of the engine, and the engine itself reads each node's cluster and macros."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from nexus.cli import main
from nexus.settings import SETTINGS
from nexus.store import cluster

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "compose.cluster.yaml").read_text())
SERVICES = COMPOSE["services"]
CLICKHOUSE = {n: s for n, s in SERVICES.items() if s.get("image", "").startswith("clickhouse/clickhouse-server:")}
KEEPERS = {n: s for n, s in SERVICES.items() if s.get("image", "").startswith("clickhouse/clickhouse-keeper:")}
NEXUS = {n: s for n, s in SERVICES.items() if s.get("image") == "nexus:local"}
REMOTE_SERVERS = ET.parse(ROOT / "clickhouse/cluster/remote_servers.xml").getroot()
CLUSTER_NAME = SERVICES["migrate"]["environment"]["NEXUS_CLICKHOUSE_CLUSTER"]


def _mounts(service: dict) -> dict[str, str]:
    """Mounted repository file → path in the container."""
    return {v.split(":")[0]: v.split(":")[1] for v in service.get("volumes", []) if v.startswith("./")}


def _config(service: dict, target: str) -> ET.Element:
    source = next(s for s, t in _mounts(service).items() if t == target)
    return ET.parse(ROOT / source).getroot()


def test_every_mounted_file_exists_and_every_xml_parses():
    for name, service in SERVICES.items():
        for source in _mounts(service):
            assert (ROOT / source).is_file(), f"{name} mounts missing {source}"
            if source.endswith(".xml"):
                ET.parse(ROOT / source)
        for volume in service.get("volumes", []):
            if not volume.startswith("./"):
                assert volume.split(":")[0] in COMPOSE["volumes"], f"{name}: volume {volume} is not declared"
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} waits for {dependency}, which is not a service"


def test_four_nodes_are_two_shards_of_two_replicas_as_their_macros_and_remote_servers_say():
    assert len(CLICKHOUSE) == 4
    placement = {}
    for name, service in CLICKHOUSE.items():
        macros = _config(service, "/etc/clickhouse-server/config.d/macros.xml").find("macros")
        assert macros.findtext("replica") == name == service["hostname"]  # unique across the cluster
        assert macros.findtext("cluster") == CLUSTER_NAME
        placement[name] = macros.findtext("shard")
        assert _config(service, "/etc/clickhouse-server/config.d/remote_servers.xml") is not None
        assert _config(service, "/etc/clickhouse-server/users.d/cluster.xml") is not None
        assert service["volumes"][0].split(":")[0] == name  # a data volume of its own
    shards = REMOTE_SERVERS.find(f"remote_servers/{CLUSTER_NAME}").findall("shard")
    assert len(shards) == 2
    for number, shard in enumerate(shards, start=1):
        assert shard.findtext("internal_replication") == "true"
        hosts = [replica.findtext("host") for replica in shard.findall("replica")]
        assert sorted(hosts) == sorted(n for n, s in placement.items() if s == str(number))
        assert len(hosts) == 2


def test_every_node_talks_to_the_three_keepers_of_the_ensemble():
    nodes = REMOTE_SERVERS.findall("zookeeper/node")
    assert sorted(n.findtext("host") for n in nodes) == sorted(KEEPERS) and len(KEEPERS) == 3
    ids = set()
    for name, service in KEEPERS.items():
        keeper = _config(service, "/etc/clickhouse-keeper/keeper_config.xml").find("keeper_server")
        assert {n.findtext("port") for n in nodes} == {keeper.findtext("tcp_port")}
        servers = {s.findtext("hostname"): s.findtext("id") for s in keeper.findall("raft_configuration/server")}
        assert servers[name] == service["environment"]["KEEPER_SERVER_ID"]
        assert set(servers) == set(KEEPERS)
        ids.add(service["environment"]["KEEPER_SERVER_ID"])
    assert ids == {"1", "2", "3"}


def test_nexus_processes_run_nexus_commands_with_known_settings_on_the_cluster():
    known = {s.name for s in SETTINGS}
    commands = {}
    for name, service in NEXUS.items():
        command = service["command"]
        assert command[0] == "nexus" and command[1] in main.commands
        commands.setdefault(command[1], []).append(name)
        environment = service["environment"]
        assert {k for k in environment if k.startswith("NEXUS_")} <= known
        assert environment["NEXUS_CLICKHOUSE_CLUSTER"] == CLUSTER_NAME
        host = re.fullmatch(r"http://nexus:\$\{NEXUS_CLICKHOUSE_PASSWORD\}@([\w-]+):8123/nexus",
                            environment["NEXUS_CLICKHOUSE_URL"])
        assert host and host[1] in CLICKHOUSE, environment["NEXUS_CLICKHOUSE_URL"]
        assert environment["NEXUS_REDIS_URL"] == "redis://redis:6379/0"
    assert len(commands["api"]) == 2 and len(commands["worker"]) == 2 and commands["migrate"] == ["migrate"]
    for name in commands["api"] + commands["worker"]:
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "exports:/exports" in SERVICES[name]["volumes"]
        assert SERVICES[name]["environment"]["NEXUS_EXPORT_DIR"] == "/exports"
    assert cluster.check_cluster_name(CLUSTER_NAME)


def test_the_proxy_balances_exactly_the_api_processes_and_they_trust_only_its_forwarded_address():
    proxy = SERVICES["proxy"]
    config = (ROOT / next(iter(_mounts(proxy)))).read_text()
    upstream = re.search(r"upstream nexus_api \{(.*?)\}", config, re.S)[1]
    apis = {n: s for n, s in NEXUS.items() if s["command"][1] == "api"}
    assert sorted(re.findall(r"server ([\w-]+):(\d+)", upstream)) == sorted((n, s["command"][-1]) for n, s in apis.items())
    assert re.search(r"listen (\d+);", config)[1] == proxy["ports"][0].split(":")[1]
    address = proxy["networks"]["nexus"]["ipv4_address"]
    for name, service in apis.items():
        assert service["environment"]["FORWARDED_ALLOW_IPS"] == address
        assert "ports" not in service, f"{name} is reached through the proxy only"
    assert set(proxy["depends_on"]) == set(apis)


def test_the_cluster_profile_sets_real_engine_settings(client):
    profile = ET.parse(ROOT / "clickhouse/cluster/users.xml").getroot().find("profiles/default")
    settings = {child.tag: child.text for child in profile}
    assert settings["distributed_product_mode"] == "global"
    assert settings["distributed_foreground_insert"] == "1"
    known = {row[0] for row in client.query("SELECT name FROM system.settings WHERE name IN {n:Array(String)}",
                                            parameters={"n": list(settings)}).result_rows}
    assert known == set(settings)


def test_the_cluster_runs_the_clickhouse_release_of_server_mode():
    server_mode = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["clickhouse"]["image"]
    release = server_mode.split(":")[1]
    assert {s["image"].split(":")[1] for s in [*CLICKHOUSE.values(), *KEEPERS.values()]} == {release}


# Run in a process of its own (chDB allows one engine per process): the engine reads a node's configuration
# directory as the server would, and answers what it understood.
_READ_CONFIG = """
import json, os, sys, chdb
os.environ["CLICKHOUSE_PASSWORD"] = "x"
connection = chdb.connect(f"{sys.argv[1]}/data?config-file={sys.argv[1]}/config.xml")
cursor = connection.cursor()
cursor.execute("SELECT shard_num, replica_num, host_name, port, user FROM system.clusters WHERE cluster = 'nexus' "
               "ORDER BY shard_num, replica_num")
clusters = cursor.fetchall()
cursor.execute("SELECT getMacro('cluster'), getMacro('shard'), getMacro('replica')")
print(json.dumps({"clusters": [list(row) for row in clusters], "macros": list(cursor.fetchall()[0])}))
"""


@pytest.mark.parametrize("node", sorted(CLICKHOUSE))
def test_the_engine_reads_each_node_s_cluster_and_macros_as_the_tests_above_do(node: str, tmp_path: Path):
    config = tmp_path / "config.d"
    config.mkdir()
    (tmp_path / "config.xml").write_text("<clickhouse></clickhouse>")
    for source, target in _mounts(CLICKHOUSE[node]).items():
        if target.endswith(("/config.d/remote_servers.xml", "/config.d/macros.xml")):
            shutil.copy(ROOT / source, config / Path(target).name)
    done = subprocess.run([sys.executable, "-c", _READ_CONFIG, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["macros"] == [CLUSTER_NAME, _config(CLICKHOUSE[node], "/etc/clickhouse-server/config.d/macros.xml")
                                .findtext("macros/shard"), node]
    assert [row[2] for row in answer["clusters"]] == ["ch-s1-r1", "ch-s1-r2", "ch-s2-r1", "ch-s2-r2"]
    assert [(row[0], row[1]) for row in answer["clusters"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert {(row[3], row[4]) for row in answer["clusters"]} == {(9000, "nexus")}
