"""The image's pinned dependency list and the deploy overlay, without building or deploying anything."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import deploy
import operator_image

REPO = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    lines = operator_image.REQUIREMENTS.read_text().splitlines()
    entries = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in entries}


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    """Both Dockerfile routes install requirements/operator.txt; it must still satisfy pyproject.toml
    (else: `python3 hack/operator_image.py lock`)."""
    pinned = pins()
    for spec in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in requirements/operator.txt"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]} is not {spec}"


def test_the_dockerfile_installs_the_pinned_list_and_runs_as_nonroot() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY requirements/operator.txt" in dockerfile
    assert "--no-deps" in dockerfile
    assert "USER 65532:65532" in dockerfile
    assert 'ENTRYPOINT ["/usr/bin/python3", "-m", "vmrole_operator"]' in dockerfile


@pytest.mark.parametrize(
    ("text", "mirror"),
    [
        (
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
            "Components: main\n\nTypes: deb\nURIs: http://security.example/debian-security\n"
            "Suites: bookworm-security\n",
            "http://mirror.example/debian",
        ),
        ("deb [arch=amd64] http://old.example/debian bookworm main\n", "http://old.example/debian"),
    ],
)
def test_apt_mirror_is_read_from_the_hosts_sources(
    text: str, mirror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / ("debian.sources" if "URIs" in text else "debian.list")).write_text(text)
    monkeypatch.setattr(operator_image, "APT_DIR", tmp_path)
    assert operator_image.apt_mirror() == mirror


def test_deploy_overlay_pins_the_loaded_digest_and_scopes_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deploy, "OVERLAY", tmp_path)
    digest = "sha256:" + "a" * 64
    deploy.write_overlay(f"localhost/vmrole-operator@{digest}", None)
    plain = json.loads((tmp_path / "kustomization.yaml").read_text())
    assert plain["resources"] == ["../../manifests"]
    assert plain["images"] == [
        {"name": "localhost/vmrole-operator", "newName": "localhost/vmrole-operator", "digest": digest}
    ]
    assert "patches" not in plain

    deploy.write_overlay(f"localhost/vmrole-operator@{digest}", "e2e-ic-*")
    scoped = json.loads((tmp_path / "kustomization.yaml").read_text())
    assert scoped["resources"] == ["../../manifests", "watch-rbac.yaml"]
    (patch,) = scoped["patches"]
    assert json.loads(patch["patch"])[0]["value"] == {"name": "VMROLE_NAMESPACES", "value": "e2e-ic-*"}
    assert "resources: [namespaces]" in (tmp_path / "watch-rbac.yaml").read_text()


def test_manifests_name_the_image_deploy_replaces() -> None:
    kustomization = (REPO / "manifests" / "kustomization.yaml").read_text()
    assert f"newName: {deploy.BASE_IMAGE}\n" in kustomization
