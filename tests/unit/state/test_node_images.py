"""Pinning a tag from the image lists the kubelets report, and every case left to a resolver pod."""

from __future__ import annotations

from typing import Any

import pytest

from vmrole_operator.state.node_images import NodeImages, canonical_tag, tagged_digests

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
WEB = "localhost/vmrole-test/web"


def node(name: str, *images: list[str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"images": [{"names": names, "sizeBytes": 1} for names in images]},
    }


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("team/app:2", "docker.io/team/app:2"),
        ("docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36"),
        ("localhost/vmrole-test/web:1", "localhost/vmrole-test/web:1"),
        ("localhost:5000/web", "localhost:5000/web:latest"),
        ("registry.example.com:443/team/app:v1", "registry.example.com:443/team/app:v1"),
    ],
)
def test_canonical_tag_spells_a_reference_the_way_containerd_lists_it(image: str, expected: str) -> None:
    assert canonical_tag(image) == expected


def test_tagged_digests_keeps_only_digests_of_the_tags_own_repository() -> None:
    found = tagged_digests(
        node(
            "n",
            [f"{WEB}@{A}", f"{WEB}:1", "localhost/other/web:9", f"localhost/other/web@{B}"],
            ["registry.k8s.io/pause:3.10.1"],
        )
    )
    assert found == {
        f"{WEB}:1": frozenset({A}),
        "localhost/other/web:9": frozenset({B}),
        "registry.k8s.io/pause:3.10.1": frozenset(),
    }


def test_one_digest_on_every_node_holding_the_tag_is_the_pin() -> None:
    images = NodeImages()
    images.node_changed(node("n1", [f"{WEB}@{A}", f"{WEB}:1"]))
    images.node_changed(node("n2", [f"{WEB}@{A}", f"{WEB}:1"]))
    images.node_changed(node("n3", ["registry.k8s.io/pause:3.10.1"]))  # must pull it: no say
    assert images.pin_for(f"{WEB}:1", {}) == f"{WEB}@{A}"


def test_the_pin_keeps_the_repository_as_the_user_spelled_it() -> None:
    images = NodeImages()
    images.node_changed(node("n1", [f"docker.io/library/busybox@{A}", "docker.io/library/busybox:1.36"]))
    assert images.pin_for("busybox:1.36", {}) == f"busybox@{A}"


def test_what_the_nodes_do_not_settle_is_left_to_a_resolver_pod() -> None:
    images = NodeImages()
    assert images.pin_for(f"{WEB}:1", {}) is None  # no node seen yet
    images.node_changed(node("n1", [f"{WEB}@{A}", f"{WEB}:1"]))
    images.node_changed(node("n2", [f"{WEB}@{B}", f"{WEB}:1"]))
    assert images.pin_for(f"{WEB}:1", {}) is None  # the tag moved between two pulls
    assert images.pin_for(f"{WEB}:2", {}) is None  # held by no node
    assert images.pin_for(f"{WEB}@{A}", {}) is None  # a digest needs no pin
    images.node_changed(node("n2", ["loaded:1"]))
    assert images.pin_for("loaded:1", {}) is None  # no repository digest: nothing pullable


def test_only_the_nodes_the_role_may_run_on_count() -> None:
    images = NodeImages()
    images.node_changed(node("n1", [f"{WEB}@{A}", f"{WEB}:1"], labels={"pool": "web"}))
    images.node_changed(node("n2", [f"{WEB}@{B}", f"{WEB}:1"], labels={"pool": "batch"}))
    assert images.pin_for(f"{WEB}:1", {"pool": "web"}) == f"{WEB}@{A}"
    assert images.pin_for(f"{WEB}:1", {"pool": "gpu"}) is None


def test_a_deleted_node_no_longer_counts() -> None:
    images = NodeImages()
    images.node_changed(node("n1", [f"{WEB}@{A}", f"{WEB}:1"]))
    images.node_changed(node("n2", [f"{WEB}@{B}", f"{WEB}:1"]))
    images.node_changed(node("n2", []), deleted=True)
    assert images.pin_for(f"{WEB}:1", {}) == f"{WEB}@{A}"
