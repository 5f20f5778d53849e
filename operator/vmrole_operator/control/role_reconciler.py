"""Level-based reconciliation of one VMRole: its image pin, reimage-all round, children and status.

Every write is skipped when the object already matches what the indexes hold, so a restart with
nothing changed makes zero writes. Children are written with server-side apply (field manager
`vmrole-operator`): it creates, repairs hand edits, and drops fields the role no longer asks for, in
one idempotent call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from .. import metrics
from ..clock import Clock
from ..kube.api import APPLY_PATCH, BY_KIND, CONFIGMAPS, KubeApi, Resource
from ..kube.errors import GONE, GONE_OR_REPLACED, namespace_terminating, unless
from ..kube.events import EventPoster
from ..models import VMRole
from ..specs.children import build_children
from ..specs.drift import child_differs
from ..specs.environment import topology_configmap_name
from ..state.instance_state import seconds_to_next_deadline
from ..state.node_images import NodeImages
from ..state.observed import Observed, trim_child
from ..state.problems import answer_config_map, next_volume_deadline, role_problems, waiting_for_volumes_since
from ..state.scheduling import room_to_surge
from .image_pinning import ImagePinning, Pin, current_pin
from .instance_names import InstanceNames
from .role_environment import nudge, topology_of
from .role_reader import RoleReader
from .role_workers import Work
from .status_writer import StatusWriter
from .terminating import TerminatingNamespaces

logger = logging.getLogger(__name__)

FIELD_MANAGER = "vmrole-operator"
# A refused resolver pod (a quota, say) is tried again this often: no event announces a raised quota.
RESOLVER_RETRY_S = 30.0

# Children that go when the role stops asking for them (the Deployment never does: it is the role).
SWEPT_KINDS = ("ConfigMap", "Service", "NetworkPolicy")


class RoleReconciler:
    """The blocking work for one role; `RoleWorkers` runs it one role at a time, off the event loop.

    What the role's children and pods look like comes in an `Observed` snapshot of kopf's indexes;
    only the VMRole itself is read from the API (`RoleReader`).
    """

    def __init__(
        self,
        kube: KubeApi,
        roles: RoleReader,
        check_image: str,
        post_event: EventPoster,
        clock: Clock | None = None,
        node_images: NodeImages | None = None,
    ) -> None:
        self.kube = kube
        self.clock = clock or Clock()
        self.roles = roles
        self.check_image = check_image
        self.terminating = TerminatingNamespaces()
        post_event = self.terminating.gate(post_event)
        self.post_event = post_event
        self.pinning = ImagePinning(kube, post_event, node_images)
        self.status = StatusWriter(kube, post_event)
        self.names = InstanceNames(kube, post_event)

    def run(self, namespace: str, name: str, work: Work, observed: Observed) -> float | None:
        """Converges one role: its image pin while spec.image is not pinned; for RECONCILE its
        reimage round and children; always its status. `observed` is what the indexes held when
        this run started. Returns in how many seconds the status needs another look though no
        object may change by then (an auto-start deadline, a volume wait, a refused resolver pod),
        or None.

        In a namespace being deleted nothing can be created any more, and the role is about to go:
        the run stops there, with no retry, no Event, and one line in the log for the namespace."""
        with metrics.timed_reconcile(namespace, name):
            try:
                return self._run(namespace, name, work, observed)
            except ApiException as e:
                if not namespace_terminating(e):
                    raise
                if self.terminating.mark(namespace, self.clock.now()):
                    logger.info("namespace %s is being deleted: its roles get no new objects", namespace)
                return None

    def _run(self, namespace: str, name: str, work: Work, observed: Observed) -> float | None:
        found = self.roles.read(namespace, name)
        if found is None:
            return None
        body, role = found
        self.terminating.seen_role(body)
        status = dict(body.get("status") or {})
        pin = current_pin(role, status)
        deployment = observed.child("Deployment", name)
        topology = topology_of(role, observed.pods)
        # A role being deleted gets nothing new: its children go with it (and under foreground
        # deletion, one re-created here would only be collected again).
        deleting = bool(body["metadata"].get("deletionTimestamp"))
        resolver_refused = None
        if not deleting and not pin.covers(role.spec.image):
            # In every kind of run: a refused resolver pod is tried again by the recheck below.
            resolving = self.pinning.resolve(body, role, pin, observed)
            pin, resolver_refused = resolving.pin, resolving.refused
            if pin.covers(role.spec.image):
                status.update(image=pin.image, specImage=pin.resolved_from)
        if work >= Work.RECONCILE and not deleting:
            self.status.start_reimage_round(body, role, status, self.clock.now())
            reimage_round = (status.get("lastReimage") or {}).get("token")
            deployment = self._ensure_children(body, role, pin, reimage_round, topology, observed)
        elif not deleting:
            # Pods came, went or changed: the instance list may have, and the room to surge.
            for child in self._children(body, role, pin, None, topology, observed):
                if (child["kind"], child["metadata"]["name"]) in self._pod_driven(role):
                    self._apply_child(body, child, observed, repair_event=False)
        if not self.names.keep(body, role.name, observed.pods):
            nudge(self.kube, role, observed.pods)
        now = self.clock.now()
        problems = role_problems(
            role,
            observed.pods,
            deployment,
            observed.resolvers,
            now,
            config_map_missing=self._config_map_missing(namespace, role, observed),
            resolver_refused=resolver_refused,
        )
        self.status.write(body, role, pin, status, observed.pods, deployment, now, problems)
        waits = [seconds_to_next_deadline(role, observed.pods, now)]
        volume_deadline = next_volume_deadline(role, observed.pods, now)
        if volume_deadline is not None:
            # Whole-second timestamps: one more second makes sure the wait has passed when it runs.
            waits.append((volume_deadline - now).total_seconds() + 1.0)
        if resolver_refused is not None:
            waits.append(RESOLVER_RETRY_S)
        return min((w for w in waits if w is not None), default=None)

    def _config_map_missing(self, namespace: str, role: VMRole, observed: Observed) -> bool:
        """Looks the answer file's ConfigMap up, only while an instance waits for its volumes."""
        config_map = answer_config_map(role)
        if config_map is None or not any(waiting_for_volumes_since(p) for p in observed.pods):
            return False
        return unless(GONE, lambda: self.kube.get(CONFIGMAPS, namespace, config_map)) is None

    @staticmethod
    def _pod_driven(role: VMRole) -> set[tuple[str, str]]:
        """Children whose content follows the pods, not only the spec."""
        return {("ConfigMap", topology_configmap_name(role)), ("PodDisruptionBudget", role.name)}

    def _children(
        self,
        body: Mapping[str, Any],
        role: VMRole,
        pin: Pin,
        reimage_round: str | None,
        topology: str,
        observed: Observed,
    ) -> list[dict[str, Any]]:
        image = pin.image or role.spec.image
        return build_children(
            body,
            role,
            image,
            role.spec.instances,
            reimage_round,
            self.check_image,
            topology=topology,
            room_to_surge=room_to_surge(observed.pods),
        )

    def _ensure_children(
        self,
        body: Mapping[str, Any],
        role: VMRole,
        pin: Pin,
        reimage_round: str | None,
        topology: str,
        observed: Observed,
    ) -> dict[str, Any] | None:
        """Applies what drifted, deletes what is no longer asked for; returns the Deployment."""
        namespace = body["metadata"]["namespace"]
        children = self._children(body, role, pin, reimage_round, topology, observed)
        if pin.image is None:
            # Nothing runs before the golden image is pinned; Services and policy may exist already.
            children = [ch for ch in children if ch["kind"] != "Deployment"]
        else:
            self.pinning.tidy(role, pin, namespace, observed)
        deployment = observed.child("Deployment", role.name)
        pod_driven = self._pod_driven(role)
        for child in children:
            key = (child["kind"], child["metadata"]["name"])
            applied = self._apply_child(body, child, observed, repair_event=key not in pod_driven)
            if child["kind"] == "Deployment":
                deployment = applied
        self._delete_unwanted(body, {(ch["kind"], ch["metadata"]["name"]) for ch in children}, observed)
        return deployment

    def _apply_child(
        self,
        body: Mapping[str, Any],
        desired: dict[str, Any],
        observed: Observed,
        *,
        repair_event: bool = True,
    ) -> dict[str, Any]:
        """Server-side applies `desired` when it drifted. `repair_event=False` for a child whose
        content follows the pods: its updates are routine, and an Event each would cost a write per
        pod change."""
        namespace, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        actual = observed.child(desired["kind"], name)
        if actual is not None and not child_differs(desired, actual):
            return actual
        applied = self.kube.patch(
            BY_KIND[desired["kind"]],
            namespace,
            name,
            desired,
            content_type=APPLY_PATCH,
            field_manager=FIELD_MANAGER,
            force=True,
        )
        verb = "Created" if actual is None else "Repaired"
        if actual is None or repair_event:
            self.post_event(
                body, "Normal", f"{verb}{desired['kind']}", f"{verb.lower()} {desired['kind']} {name}"
            )
        return trim_child(applied)

    def _delete_unwanted(
        self, body: Mapping[str, Any], wanted: set[tuple[str, str]], observed: Observed
    ) -> None:
        """Children the role no longer asks for (an endpoint list emptied, an inline answer file dropped)."""
        namespace, uid = body["metadata"]["namespace"], body["metadata"]["uid"]
        for (kind, child_name), obj in observed.children.items():
            meta = obj["metadata"]
            owned = any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or [])
            if (
                kind not in SWEPT_KINDS
                or not owned
                or (kind, child_name) in wanted
                or meta.get("deletionTimestamp")
            ):
                continue
            self._delete(BY_KIND[kind], namespace, child_name, meta["uid"])
            self.post_event(
                body,
                "Normal",
                f"Deleted{kind}",
                f"deleted {kind} {child_name}: the role no longer asks for it",
            )

    def _delete(self, resource: Resource, namespace: str, name: str, uid: str) -> None:
        unless(GONE_OR_REPLACED, lambda: self.kube.delete(resource, namespace, name, uid))
