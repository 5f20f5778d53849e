"""Pinning the golden image: a tag becomes a digest before any instance runs.

A digest in spec.image is used as it is. A tag that the nodes already hold under one digest is
pinned from their image lists (state/node_images.py) at once; any other tag goes to a resolver pod
(specs/resolver_pod.py), which makes the kubelet resolve it. The digest is written to `status.image`
(with `status.specImage`, the tag it came from), and only then is the Deployment created or rolled,
always with the digest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from ..kube.api import PODS, KubeApi
from ..kube.errors import EXISTS, GONE_OR_REPLACED, message_of, refused, unless
from ..kube.events import EventPoster
from ..models import VMRole
from ..specs.resolver_pod import build_resolver_pod, resolver_pod_name
from ..state.node_images import NodeImages
from ..state.observed import Observed
from ..state.pinning import is_digest_reference, read_resolver_pod
from .status_io import patch_role_status


@dataclass(frozen=True)
class Pin:
    """The digest reference instances run, and the spec.image it was resolved from."""

    image: str | None
    resolved_from: str | None

    def covers(self, spec_image: str) -> bool:
        return self.image is not None and self.resolved_from == spec_image


@dataclass(frozen=True)
class Resolving:
    """Where resolving spec.image stands after one step: the pin, and the API server's refusal of
    the resolver pod (a quota, say), which only a later try can get past."""

    pin: Pin
    refused: str | None = None


def current_pin(role: VMRole, status: Mapping[str, Any]) -> Pin:
    if is_digest_reference(role.spec.image):
        return Pin(role.spec.image, role.spec.image)
    return Pin(status.get("image"), status.get("specImage"))


class ImagePinning:
    def __init__(self, kube: KubeApi, post_event: EventPoster, node_images: NodeImages | None = None) -> None:
        self.kube = kube
        self.post_event = post_event
        self.node_images = node_images or NodeImages()

    def resolve(self, body: Mapping[str, Any], role: VMRole, pin: Pin, observed: Observed) -> Resolving:
        """The new pin when the nodes or the resolver pod tell it, else the current one. A failure
        the resolver pod reports is the status writer's to tell (Degraded, one Event per change)."""
        held = self.node_images.pin_for(role.spec.image, role.spec.nodeSelector or {})
        if held is not None:
            return Resolving(self._pin(body, role, held, observed, "the digest its nodes hold"))
        namespace = body["metadata"]["namespace"]
        resolver = build_resolver_pod(role)
        kopf.adopt(resolver, owner=body)  # type: ignore[arg-type]
        actual = observed.resolver(resolver["metadata"]["name"])
        if actual is None:
            # Created, never applied: it is never updated, and a 409 tells an index that has not
            # seen our pod yet apart from a first creation (one Event, not one per run).
            try:
                created = unless(EXISTS, lambda: self.kube.create(PODS, namespace, resolver))
            except ApiException as e:
                if not refused(e):
                    raise
                return Resolving(pin, refused=message_of(e))
            if created is not None:
                self.post_event(
                    body,
                    "Normal",
                    "ResolvingImage",
                    f"resolving {role.spec.image} to a digest with pod {resolver['metadata']['name']}",
                )
            return Resolving(pin)
        resolution = read_resolver_pod(actual)
        if resolution is None or resolution.pinned is None:
            return Resolving(pin)
        source = f"the digest pod {resolver['metadata']['name']} pulled"
        return Resolving(self._pin(body, role, resolution.pinned, observed, source))

    def _pin(self, body: Mapping[str, Any], role: VMRole, image: str, observed: Observed, source: str) -> Pin:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        pin = Pin(image, role.spec.image)
        patch_role_status(self.kube, namespace, name, {"image": pin.image, "specImage": pin.resolved_from})
        self.post_event(
            body, "Normal", "ImagePinned", f"golden image {role.spec.image} pinned as {pin.image} ({source})"
        )
        self.delete_resolvers(namespace, observed, keep=None)
        return pin

    def tidy(self, role: VMRole, pin: Pin, namespace: str, observed: Observed) -> None:
        """Resolver pods no longer needed go: all once pinned, else all but the current tag's."""
        keep = None if pin.covers(role.spec.image) else resolver_pod_name(role.name, role.spec.image)
        self.delete_resolvers(namespace, observed, keep=keep)

    def delete_resolvers(self, namespace: str, observed: Observed, keep: str | None) -> None:
        for pod in observed.resolvers:
            meta = pod["metadata"]
            if meta["name"] != keep and not meta.get("deletionTimestamp"):
                self._delete(namespace, meta["name"], meta["uid"])

    def _delete(self, namespace: str, name: str, uid: str) -> None:
        unless(GONE_OR_REPLACED, lambda: self.kube.delete(PODS, namespace, name, uid))
