"""The kind tooling's pure parts: the runc wrapper, the pod network's configuration, the node image's
config. The cluster itself is exercised by `CLUSTER=kind make test`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kind import cluster, network, node_image
from kind.network import Node

WRAPPER = Path(__file__).resolve().parents[2] / "hack" / "kind" / "runc_wrapper.py"
ALL_CAPS = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_NET_ADMIN"]


def _run_wrapper(tmp_path: Path, *args: str) -> list[str]:
    """Runs the wrapper with a stand-in runc that records the arguments it was given."""
    recorder = tmp_path / "runc"
    recorder.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "argv"}\n')
    recorder.chmod(0o755)
    env = {**os.environ, "VMROLE_REAL_RUNC": str(recorder)}
    subprocess.run([sys.executable, str(WRAPPER), *args], env=env, check=True)
    return (tmp_path / "argv").read_text().splitlines()


def test_runc_wrapper_drops_sys_resource_from_the_bundle_and_passes_arguments_on(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    caps = {kind: list(ALL_CAPS) for kind in ("bounding", "effective", "permitted")}
    spec = {"ociVersion": "1.0.2", "process": {"capabilities": caps}}
    (bundle / "config.json").write_text(json.dumps(spec))
    argv = ["--root", "/run/x", "--log", "/run/x/log.json", "--log-format", "json", "create"]
    argv += ["--bundle", str(bundle), "--pid-file", "/run/x/pid", "c1"]

    assert _run_wrapper(tmp_path, *argv) == argv
    spec = json.loads((bundle / "config.json").read_text())
    for kind in ("bounding", "effective", "permitted"):
        assert spec["process"]["capabilities"][kind] == ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"]
    assert spec["ociVersion"] == "1.0.2"


def test_runc_wrapper_drops_it_from_an_exec_process_file(tmp_path: Path) -> None:
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["sh"], "capabilities": {"bounding": list(ALL_CAPS)}}))
    argv = ["--root", "/run/x", "exec", "--process", str(process), "--detach", "c1"]

    assert _run_wrapper(tmp_path, *argv) == argv
    assert "CAP_SYS_RESOURCE" not in json.loads(process.read_text())["capabilities"]["bounding"]


def test_runc_wrapper_leaves_other_commands_alone(tmp_path: Path) -> None:
    assert _run_wrapper(tmp_path, "--root", "/run/x", "state", "c1") == ["--root", "/run/x", "state", "c1"]


def test_cni_configuration_routes_the_nodes_pod_cidr_without_masquerade() -> None:
    config = json.loads(network.cni_config(Node("vmrole-worker", "172.18.0.3", "10.244.2.0/24")))
    bridge, portmap = config["plugins"]
    assert bridge["type"] == "bridge"
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.2.0/24"}]]
    assert portmap["capabilities"] == {"portMappings": True}


def test_only_routes_into_the_cluster_ranges_are_ours() -> None:
    assert network._ours("10.244.1.0/24")
    assert network._ours("10.96.0.0/16")
    assert not network._ours("172.18.0.0/16")
    assert not network._ours("default")


def test_node_image_config_boots_systemd_through_the_entrypoint() -> None:
    layer = node_image.Layer(Path("/nonexistent"), "sha256:" + "0" * 64)
    config = json.loads(node_image.NodeImage("localhost/n:1", (layer, layer)).config())
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/entrypoint", "/sbin/init"]
    assert config["config"]["StopSignal"] == "SIGRTMIN+3"
    assert config["rootfs"]["diff_ids"] == [layer.diff_id, layer.diff_id]


def test_the_kind_config_carries_the_kubelet_patch_and_the_env_names_the_webhook_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    kind = cluster.KindCluster(tmp_path, "vmrole", tmp_path / "bin", "kind", None)
    monkeypatch.setattr(cluster, "host_address_on_kind_network", lambda network="kind": "172.18.0.1")
    kind.write_env()
    assert "export VMROLE_E2E_WEBHOOK_HOST=172.18.0.1\n" in (tmp_path / "env").read_text()
    config = yaml.safe_load(kind.write_config("localhost/vmrole-kind-node:test").read_text())
    patches = [yaml.safe_load(p) for p in config["kubeadmConfigPatches"]]
    [kubelet] = [p for p in patches if p["kind"] == "KubeletConfiguration"]
    assert kubelet["volumeStatsAggPeriod"] == "10s"
