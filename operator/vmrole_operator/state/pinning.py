"""Pinning the golden image: a tag is resolved once to a digest, then only the digest is used.

The operator cannot ask a registry (there may be none reachable, and it holds no pull secrets),
so it lets the container runtime resolve the tag: the first instance runs from the tag, and its
`status.containerStatuses[].imageID` names the digest that was pulled. Every other instance and
every later reimage then runs `<repository>@sha256:<digest>`, even if the tag moves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import constants as c

_DIGEST_SUFFIX = re.compile(r"@(sha256:[a-f0-9]{64})$")
# Prefixes some runtimes put before a pullable reference (dockershim / cri-dockerd).
_RUNTIME_PREFIXES = ("docker-pullable://", "docker://")


def is_digest_reference(image: str) -> bool:
    """True when `image` names its content by digest (`...@sha256:<64 hex>`)."""
    return _DIGEST_SUFFIX.search(image) is not None


def repository_of(image: str) -> str:
    """`image` without its tag and digest, keeping a registry host and port.

    `localhost:5000/x:1` -> `localhost:5000/x`; `busybox@sha256:...` -> `busybox`.
    """
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    last_colon = name.rfind(":")
    # A colon after the last slash is a tag; one before it belongs to the registry's port.
    if last_colon > last_slash:
        name = name[:last_colon]
    return name


def pinned_reference(spec_image: str, image_id: str) -> str | None:
    """The digest reference to run for `spec_image`, from a pod's `containerStatuses[].imageID`.

    containerd reports e.g. `localhost/vmrole-test/web@sha256:<hex>` or
    `docker.io/library/busybox@sha256:<hex>`: a repository digest, which is pullable. The digest
    is joined to spec_image's own repository (the runtime may spell the repository differently,
    e.g. with `docker.io/library/`). A bare `sha256:<hex>` is the image *config* id, which no
    registry serves by that name, so it gives None (the caller must wait or report).
    A spec_image that already has a digest is returned unchanged.
    """
    if is_digest_reference(spec_image):
        return spec_image
    reference = image_id.strip()
    for prefix in _RUNTIME_PREFIXES:
        reference = reference.removeprefix(prefix)
    match = _DIGEST_SUFFIX.search(reference)
    if match is None or match.start() == 0:
        return None
    return f"{repository_of(spec_image)}@{match.group(1)}"


# Waiting reasons that mean the kubelet cannot get the image; anything else is still in progress.
IMAGE_FAILURE_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)


@dataclass(frozen=True)
class Resolution:
    """What a resolver pod tells: the image it resolves and, once known, its pin or the failure."""

    image: str
    pinned: str | None = None
    failure: str | None = None


def read_resolver_pod(pod: Mapping[str, Any]) -> Resolution | None:
    """None for a pod that is not a resolver pod."""
    image = ((pod.get("metadata") or {}).get("annotations") or {}).get(c.RESOLVES_IMAGE_ANNOTATION)
    if not image:
        return None
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != c.RESOLVER_CONTAINER:
            continue
        image_id = status.get("imageID") or ""
        pinned = pinned_reference(image, image_id)
        if pinned:
            return Resolution(image, pinned=pinned)
        if image_id:
            # The runtime knows the image only by its config id: there is no digest to pin by.
            return Resolution(image, failure=f"the node reports image ID {image_id}, not a repository digest")
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_FAILURE_REASONS:
            return Resolution(image, failure=f"{waiting['reason']}: {waiting.get('message', '')}".strip(": "))
    return Resolution(image)
