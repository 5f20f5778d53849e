"""Resolving a tag to the digest the runtime pulled."""

from __future__ import annotations

import pytest

from vmrole_operator.state.pinning import is_digest_reference, pinned_reference, repository_of

HEX = "5b0d7c8a1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
OTHER_HEX = "0" * 64


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (f"localhost/vmrole-test/web@sha256:{HEX}", True),
        (f"localhost:5000/web:1@sha256:{HEX}", True),
        ("localhost/vmrole-test/web:1", False),
        ("busybox", False),
        ("busybox@sha256:short", False),
        (f"sha256:{HEX}", False),
    ],
)
def test_is_digest_reference(image: str, expected: bool) -> None:
    assert is_digest_reference(image) is expected


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("busybox", "busybox"),
        ("busybox:1.36", "busybox"),
        ("localhost/vmrole-test/web:1", "localhost/vmrole-test/web"),
        ("localhost:5000/x", "localhost:5000/x"),
        ("localhost:5000/x:2", "localhost:5000/x"),
        (f"localhost:5000/x:2@sha256:{HEX}", "localhost:5000/x"),
        (f"docker.io/library/busybox@sha256:{HEX}", "docker.io/library/busybox"),
        ("registry.example.com:443/team/app:v1.2.3-rc.1", "registry.example.com:443/team/app"),
    ],
)
def test_repository_of(image: str, expected: str) -> None:
    assert repository_of(image) == expected


@pytest.mark.parametrize(
    ("spec_image", "image_id", "expected"),
    [
        # containerd: a repo digest of the same repository
        (
            "localhost/vmrole-test/web:1",
            f"localhost/vmrole-test/web@sha256:{HEX}",
            f"localhost/vmrole-test/web@sha256:{HEX}",
        ),
        # containerd spells the repository in full; the spec's spelling is kept
        ("busybox:1.36", f"docker.io/library/busybox@sha256:{HEX}", f"busybox@sha256:{HEX}"),
        ("localhost:5000/x:2", f"localhost:5000/x@sha256:{HEX}", f"localhost:5000/x@sha256:{HEX}"),
        # dockershim / cri-dockerd prefix
        ("busybox", f"docker-pullable://busybox@sha256:{HEX}", f"busybox@sha256:{HEX}"),
        # a bare config id is not pullable
        ("localhost/vmrole-test/web:1", f"sha256:{HEX}", None),
        ("localhost/vmrole-test/web:1", "", None),
        ("localhost/vmrole-test/web:1", f"@sha256:{HEX}", None),
        # already pinned by the user: unchanged, whatever the runtime says
        (
            f"localhost/vmrole-test/web@sha256:{HEX}",
            f"localhost/vmrole-test/web@sha256:{OTHER_HEX}",
            f"localhost/vmrole-test/web@sha256:{HEX}",
        ),
        (
            f"localhost/vmrole-test/web@sha256:{HEX}",
            f"sha256:{OTHER_HEX}",
            f"localhost/vmrole-test/web@sha256:{HEX}",
        ),
    ],
)
def test_pinned_reference(spec_image: str, image_id: str, expected: str | None) -> None:
    assert pinned_reference(spec_image, image_id) == expected


def test_pinned_reference_is_a_digest_reference() -> None:
    pinned = pinned_reference("localhost/vmrole-test/web:1", f"localhost/vmrole-test/web@sha256:{HEX}")
    assert pinned is not None
    assert is_digest_reference(pinned)
    assert repository_of(pinned) == "localhost/vmrole-test/web"
