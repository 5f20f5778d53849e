"""The tags the nodes already hold: a tag pinned from the nodes' image lists, with no resolver pod.

The kubelet reports each node's images in `status.images[].names`, where the runtime's repository
tags and repository digests of one image stand side by side. A resolver pod (pull policy
IfNotPresent) placed on such a node would report that very digest, so when every node the role may
run on (its nodeSelector) that holds the tag names one and the same digest, that digest is the pin.
In every other case the resolver pod decides, as before: no node holds the tag (it must be pulled),
the nodes disagree (the tag moved between pulls), or a node left the image out of its list (the
kubelet reports only its 50 largest images by default, `nodeStatusMaxImages`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .pinning import is_digest_reference, repository_of

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"


def _split_domain(name: str) -> tuple[str, str]:
    """(`domain`, `path`) the way container runtimes read a reference: the first component is a
    registry only when it has a dot or a port, or is `localhost`."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DEFAULT_DOMAIN, name


def canonical_name(image: str) -> str:
    """`image`'s repository as the runtime reports it: `busybox:1` -> `docker.io/library/busybox`."""
    domain, path = _split_domain(repository_of(image))
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return f"{domain}/{path}"


def canonical_tag(image: str) -> str:
    """`image` (a tag reference) as the runtime lists it: `busybox` -> `docker.io/library/busybox:latest`."""
    tag = image.split("@", 1)[0][len(repository_of(image)) + 1 :]
    return f"{canonical_name(image)}:{tag or DEFAULT_TAG}"


def tagged_digests(node: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """Every tag a node reports, mapped to the digests (`sha256:<hex>`) its entry lists for the same
    repository."""
    found: dict[str, set[str]] = {}
    for image in (node.get("status") or {}).get("images") or []:
        names = [str(n) for n in image.get("names") or []]
        digests = [n for n in names if is_digest_reference(n)]
        for tag in (canonical_tag(n) for n in names if "@" not in n):
            repository = tag.rsplit(":", 1)[0]
            same_repository = {d.split("@", 1)[1] for d in digests if canonical_name(d) == repository}
            found.setdefault(tag, set()).update(same_repository)
    return {tag: frozenset(digests) for tag, digests in found.items()}


class NodeImages:
    """What each node holds, fed from the node watch; read by the reconciler's worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, tuple[dict[str, str], dict[str, frozenset[str]]]] = {}

    def node_changed(self, node: Mapping[str, Any], deleted: bool = False) -> None:
        name = str(node["metadata"]["name"])
        with self._lock:
            if deleted:
                self._nodes.pop(name, None)
            else:
                labels = dict((node.get("metadata") or {}).get("labels") or {})
                self._nodes[name] = (labels, tagged_digests(node))

    def pin_for(self, image: str, node_selector: Mapping[str, str]) -> str | None:
        """The digest reference for tag `image`, or None when the nodes do not settle it."""
        if is_digest_reference(image):
            return None
        tag = canonical_tag(image)
        with self._lock:
            nodes = list(self._nodes.values())
        digests: set[str] = set()
        for labels, tags in nodes:
            if any(labels.get(key) != value for key, value in node_selector.items()):
                continue
            if tag in tags:
                if not tags[tag]:
                    return None  # held without a repository digest: nothing pullable to pin
                digests |= tags[tag]
        if len(digests) != 1:
            return None
        return f"{repository_of(image)}@{next(iter(digests))}"
