"""The broker and Connect worker configs of the process stack and of the images come from one source.

Renders each service's properties twice, as `ops/stack.sh render` writes them for the local stack and as
the image entrypoints (`ops/images/*.sh render`, used by docker-compose.yml) write them, and checks that
they differ only in addresses and paths.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
OPS = REPO / "ops"

# the settings that are addresses or paths, and so differ between the stack and the images
KAFKA_ADDRESSES = {"listeners", "advertised.listeners", "inter.broker.listener.name", "log.dirs"}
CONNECT_ADDRESSES = {
    "bootstrap.servers",
    "listeners",
    "rest.advertised.host.name",
    "plugin.path",
    "value.converter.apicurio.registry.url",
}


def _properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key] = value
    return props


def _render(script: Path, service: str, env: dict[str, str]) -> dict[str, str]:
    args = ["bash", str(script), "render"] + ([service] if script.name == "stack.sh" else [])
    done = subprocess.run(
        args, env={**os.environ, **env}, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return _properties(Path(done.stdout.strip().splitlines()[-1]))


def _stack(service: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **extra,
        "STREAMS_STACK_DATA": str(tmp_path / "stack"),
        "STREAMS_STACK_HOME": str(tmp_path / "home"),
        "KAFKA_PORT": "19092",
        "KAFKA_CONTROLLER_PORT": "19093",
        "CONNECT_PORT": "18083",
        "REGISTRY_PORT": "18081",
    }
    return _render(OPS / "stack.sh", service, env)


@pytest.mark.parametrize("service", ["kafka", "connect"])
def test_stack_renders_without_starting_anything(service: str, tmp_path: Path) -> None:
    props = _stack(service, tmp_path)
    assert (tmp_path / "stack" / "conf" / "log4j2.properties").read_text() == (
        OPS / "config" / "log4j2.properties"
    ).read_text()
    if service == "kafka":
        assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
        assert props["log.dirs"] == str(tmp_path / "stack" / "kafka" / "data")
    else:
        assert props["bootstrap.servers"] == "127.0.0.1:19092"
        assert props["listeners"] == "http://127.0.0.1:18083"
        secrets = tmp_path / "stack" / "conf" / "connect-secrets.properties"
        assert secrets.stat().st_mode & 0o077 == 0


def test_the_broker_of_the_stack_and_of_the_image_share_every_setting(tmp_path: Path) -> None:
    stack = _stack("kafka", tmp_path)
    image = _render(OPS / "images" / "kafka.sh", "kafka", {"KAFKA_HOME": str(tmp_path / "image")})
    assert image["advertised.listeners"] == "INTERNAL://kafka:9092,EXTERNAL://127.0.0.1:9092"
    assert image["log.dirs"] == str(tmp_path / "image" / "data")
    assert stack.keys() == image.keys()
    differing = {key for key in stack if stack[key] != image[key]}
    # the controller port is the only address in a shared setting, and both use the default here
    assert differing <= KAFKA_ADDRESSES | {"controller.quorum.voters"}
    assert stack["auto.create.topics.enable"] == image["auto.create.topics.enable"] == "false"
    assert stack["transaction.state.log.min.isr"] == image["transaction.state.log.min.isr"] == "1"


def test_the_connect_worker_of_the_stack_and_of_the_image_share_every_setting(tmp_path: Path) -> None:
    stack = _stack("connect", tmp_path)
    image_conf = tmp_path / "image"
    image_conf.mkdir()
    image = _render(
        OPS / "images" / "connect.sh",
        "connect",
        {"CONNECT_CONF": str(image_conf), "CONNECT_DB_PASSWORD": "pa\\ss", "CONNECT_PORT": "18083"},
    )
    assert image["bootstrap.servers"] == "kafka:9092"
    assert image["listeners"] == "http://0.0.0.0:18083"
    assert stack.keys() == image.keys()
    assert {key for key in stack if stack[key] != image[key]} <= CONNECT_ADDRESSES
    secrets = image_conf / "connect-secrets.properties"
    assert secrets.read_text() == "username=streams\npassword=pa\\\\ss\n"
    assert secrets.stat().st_mode & 0o077 == 0


def test_every_ops_script_parses() -> None:
    for script in [*OPS.glob("*.sh"), *OPS.glob("images/*.sh"), *OPS.glob("config/*.sh")]:
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{script}: {done.stderr}"


def test_a_cluster_renders_one_config_per_node_with_replicated_topics(tmp_path: Path) -> None:
    env = {
        "STREAMS_STACK_DATA": str(tmp_path / "stack"),
        "STREAMS_STACK_HOME": str(tmp_path / "home"),
        "STACK_BROKERS": "3",
        "KAFKA_PORT": "19092",
    }
    done = subprocess.run(
        ["bash", str(OPS / "stack.sh"), "render", "kafka"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    nodes = [_properties(Path(p)) for p in done.stdout.split()]
    assert [n["node.id"] for n in nodes] == ["1", "2", "3"]
    voters = "1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"
    for i, node in enumerate(nodes):
        assert node["controller.quorum.voters"] == voters
        assert node["listeners"] == f"PLAINTEXT://127.0.0.1:{19092 + i},CONTROLLER://127.0.0.1:{19192 + i}"
        assert node["log.dirs"] == str(tmp_path / "stack" / f"kafka-{i + 1}" / "data")
        for key in ("default.replication.factor", "offsets.topic.replication.factor",
                    "transaction.state.log.replication.factor"):  # fmt: skip
            assert node[key] == "3"
        assert node["min.insync.replicas"] == node["transaction.state.log.min.isr"] == "2"
        assert node["unclean.leader.election.enable"] == "false"
        assert node["auto.create.topics.enable"] == "false"
