"""Pinning the golden image: a tag is resolved once to a digest, then only the digest is used.

The operator cannot ask a registry (there may be none reachable, and it holds no pull secrets),
so it lets the container runtime resolve the tag: the first instance runs from the tag, and its
`status.containerStatuses[].imageID` names the digest that was pulled. Every other instance and
every later reimage then runs `<repository>@sha256:<digest>`, even if the tag moves.
"""

import re

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
