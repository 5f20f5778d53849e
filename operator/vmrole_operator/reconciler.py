"""Level-based reconciliation of one VMRole: children, image pin and status.

Every write is skipped when the object already matches what the indexes hold, so a restart with
nothing changed makes zero writes. Children are written with server-side apply (field manager
`vmrole-operator`): it creates, repairs hand edits, and drops fields the role no longer asks for, in
one idempotent call.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from . import constants as c
from . import metrics
from .builders import build_children, child_differs
from .healing import heal_token, plan_heals, round_complete, start_round, unrequested_heals
from .image_resolution import build_resolver_pod, read_resolver_pod, resolver_pod_name
from .instance_requests import role_reimage_token
from .instance_state import auto_start_deadline, compute_status, format_time, seconds_to_next_deadline
from .kube_api import APPLY_PATCH, BY_KIND, MERGE_PATCH, PODS, VMROLES, KubeApi, Resource
from .models import VMRole, parse_role
from .observed import Observed, trim_child
from .pinning import is_digest_reference
from .role_workers import Work

FIELD_MANAGER = "vmrole-operator"

EventPoster = Callable[[Mapping[str, Any], str, str, str], None]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Pin:
    """The digest reference instances run, and the spec.image it was resolved from."""

    image: str | None
    resolved_from: str | None

    def covers(self, spec_image: str) -> bool:
        return self.image is not None and self.resolved_from == spec_image


def current_pin(role: VMRole, status: Mapping[str, Any]) -> Pin:
    if is_digest_reference(role.spec.image):
        return Pin(role.spec.image, role.spec.image)
    return Pin(status.get("image"), status.get("specImage"))


# Children that go when the role stops asking for them (the Deployment never does: it is the role).
SWEPT_KINDS = ("ConfigMap", "Service", "NetworkPolicy")


class RoleReconciler:
    """The blocking work for one role; `RoleWorkers` runs it one role at a time, off the event loop.

    What the role's children and pods look like comes in an `Observed` snapshot of kopf's indexes;
    only the VMRole itself is read from the API, because its status holds the commit points of
    reimage rounds and heals, which must never be acted on from a stale copy.
    """

    def __init__(self, kube: KubeApi, check_image: str, post_event: EventPoster) -> None:
        self.kube = kube
        self.check_image = check_image
        self.post_event = post_event

    def _read_role(self, namespace: str, name: str) -> tuple[dict[str, Any], VMRole] | None:
        try:
            body = self.kube.get(VMROLES, namespace, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        try:
            return body, parse_role(body)
        except ValueError:
            return None  # reported as an InvalidSpec Event by the role handler

    # ---- entry point --------------------------------------------------------------------------

    def run(self, namespace: str, name: str, work: Work, observed: Observed) -> float | None:
        """Converges one role: for RECONCILE its image pin, reimage round and children; always its
        status. `observed` is what the indexes held when this run started. Returns in how many
        seconds the status needs another look though no object may change by then (an auto-start
        deadline), or None."""
        with metrics.timed_reconcile(namespace, name):
            found = self._read_role(namespace, name)
            if found is None:
                return None
            body, role = found
            status = dict(body.get("status") or {})
            pin = current_pin(role, status)
            deployment = observed.child("Deployment", name)
            if work >= Work.RECONCILE:
                if not pin.covers(role.spec.image):
                    pin = self._resolve_image(body, role, pin, observed)
                    if pin.covers(role.spec.image):
                        status.update(image=pin.image, specImage=pin.resolved_from)
                self._start_reimage_round(body, role, status)
                reimage_round = (status.get("lastReimage") or {}).get("token")
                deployment = self._ensure_children(body, role, pin, reimage_round, observed)
            self._write_status(body, role, pin, status, observed.pods, deployment)
            return seconds_to_next_deadline(role, observed.pods, utcnow())

    # ---- reimage all ------------------------------------------------------------------------------

    def _start_reimage_round(self, body: Mapping[str, Any], role: VMRole, status: dict[str, Any]) -> None:
        """Records a new reimage-all token in status first: that write is the round's commit point, and
        the pod template follows from it (a new token supersedes a round still running)."""
        paused = role.spec.upgrade.paused
        new_round = start_round(status.get("lastReimage"), role_reimage_token(body), paused, utcnow())
        if new_round is None:
            return
        self._patch_status(
            body["metadata"]["namespace"], body["metadata"]["name"], {"lastReimage": new_round}
        )
        status["lastReimage"] = new_round
        token = new_round["token"]
        if paused:
            self.post_event(body, "Warning", "ReimageHeld", f"reimage-all {token}: {new_round['message']}")
        else:
            self.post_event(
                body,
                "Normal",
                "ReimageAllStarted",
                f"reimage-all {token}: replacing every instance, at most "
                f"{role.spec.upgrade.maxUnavailable} out of rotation at once",
            )

    # ---- image pinning ----------------------------------------------------------------------------

    def _resolve_image(self, body: Mapping[str, Any], role: VMRole, pin: Pin, observed: Observed) -> Pin:
        """Returns the new pin when the resolver pod has reported it, else the current one."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        resolver = build_resolver_pod(role)
        kopf.adopt(resolver, owner=body)  # type: ignore[arg-type]
        actual = observed.resolver(resolver["metadata"]["name"])
        if actual is None:
            # Created, never applied: it is never updated, and a 409 tells an index that has not
            # seen our pod yet apart from a first creation (one Event, not one per run).
            try:
                self.kube.create(PODS, namespace, resolver)
            except ApiException as e:
                if e.status != 409:
                    raise
                return pin
            self.post_event(
                body,
                "Normal",
                "ResolvingImage",
                f"resolving {role.spec.image} to a digest with pod {resolver['metadata']['name']}",
            )
            return pin
        resolution = read_resolver_pod(actual)
        if resolution is None or resolution.pinned is None:
            if resolution is not None and resolution.failure:
                self.post_event(
                    body,
                    "Warning",
                    "ImageResolutionFailed",
                    f"spec.image {role.spec.image}: {resolution.failure}",
                )
            return pin
        new_pin = Pin(resolution.pinned, role.spec.image)
        self._patch_status(namespace, name, {"image": new_pin.image, "specImage": new_pin.resolved_from})
        self.post_event(
            body, "Normal", "ImagePinned", f"golden image {role.spec.image} pinned as {new_pin.image}"
        )
        self._delete_resolvers(namespace, observed, keep=None)
        return new_pin

    def _delete_resolvers(self, namespace: str, observed: Observed, keep: str | None) -> None:
        for pod in observed.resolvers:
            meta = pod["metadata"]
            if meta["name"] != keep and not meta.get("deletionTimestamp"):
                self._delete(PODS, namespace, meta["name"], meta["uid"])

    # ---- children -------------------------------------------------------------------------------

    def _ensure_children(
        self,
        body: Mapping[str, Any],
        role: VMRole,
        pin: Pin,
        reimage_round: str | None,
        observed: Observed,
    ) -> dict[str, Any] | None:
        """Applies what drifted, deletes what is no longer asked for; returns the Deployment."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        image = pin.image or role.spec.image
        children = build_children(body, role, image, role.spec.instances, reimage_round, self.check_image)
        if pin.image is None:
            # Nothing runs before the golden image is pinned; Services and policy may exist already.
            children = [ch for ch in children if ch["kind"] != "Deployment"]
        elif pin.covers(role.spec.image):
            self._delete_resolvers(namespace, observed, keep=None)
        else:
            self._delete_resolvers(namespace, observed, keep=resolver_pod_name(name, role.spec.image))
        deployment = observed.child("Deployment", name)
        for child in children:
            applied = self._apply_child(body, child, observed)
            if child["kind"] == "Deployment":
                deployment = applied
        self._delete_unwanted(body, {(ch["kind"], ch["metadata"]["name"]) for ch in children}, observed)
        return deployment

    def _apply_child(
        self, body: Mapping[str, Any], desired: dict[str, Any], observed: Observed
    ) -> dict[str, Any]:
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
        self.post_event(
            body, "Normal", f"{verb}{desired['kind']}", f"{verb.lower()} {desired['kind']} {name}"
        )
        return trim_child(applied)

    def _delete_unwanted(
        self, body: Mapping[str, Any], wanted: set[tuple[str, str]], observed: Observed
    ) -> None:
        """Children the role no longer asks for (an endpoint list emptied, an inline answer file dropped)."""
        namespace, uid = body["metadata"]["namespace"], body["metadata"]["uid"]
        for (kind_name, child_name), obj in observed.children.items():
            meta = obj["metadata"]
            owned = any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or [])
            if kind_name in SWEPT_KINDS and owned and (kind_name, child_name) not in wanted:
                if meta.get("deletionTimestamp"):
                    continue
                self._delete(BY_KIND[kind_name], namespace, child_name, meta["uid"])
                self.post_event(
                    body,
                    "Normal",
                    f"Deleted{kind_name}",
                    f"deleted {kind_name} {child_name}: the role no longer asks for it",
                )

    def _delete(self, resource: Resource, namespace: str, name: str, uid: str) -> None:
        try:
            self.kube.delete(resource, namespace, name, uid)
        except ApiException as e:
            if e.status not in (404, 409):  # gone already, or a newer object of that name
                raise

    # ---- status ---------------------------------------------------------------------------------

    def _write_status(
        self,
        body: Mapping[str, Any],
        role: VMRole,
        pin: Pin,
        previous: dict[str, Any],
        pod_dicts: list[dict[str, Any]],
        deployment: Mapping[str, Any] | None,
    ) -> None:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        now = utcnow()
        status = compute_status(role, pod_dicts, deployment, pin.image, pin.resolved_from, previous, now)
        self._advance_reimage_round(body, role, status, deployment, now)
        metrics.set_instance_states(namespace, name, Counter(i["state"] for i in status["instances"]))
        heals = plan_heals(role, pod_dicts, previous.get("recentHeals") or [], now)
        if heals.recent:
            status["recentHeals"] = heals.recent
        else:
            status.pop("recentHeals", None)
        status["heals"] = int(status.get("heals") or 0) + len(heals.new)
        if status != previous:
            # A merge patch keeps keys it does not name, so name the ones that went away as null.
            patch: dict[str, Any] = {k: None for k in previous if k not in status}
            patch.update(status)
            self._patch_status(namespace, name, patch)
            self._announce_state_changes(body, previous, status, pod_dicts, now)
        for record in heals.new:
            metrics.count_action("heal", "succeeded")
            self.post_event(
                body,
                "Warning",
                "Healing",
                f"reimaging instance {record['pod']}: {record['reason']} "
                f"({status['heals']} automatic reimages so far)",
            )
        # Recorded first, requested second: a restart in between finds the record and requests it here.
        for pod in unrequested_heals(heals.recent, pod_dicts):
            record = next(h for h in heals.recent if h["uid"] == pod["metadata"]["uid"])
            self._request_reimage(pod, heal_token(record))

    def _request_reimage(self, pod: Mapping[str, Any], token: str) -> None:
        meta = pod["metadata"]
        try:
            self.kube.patch(
                PODS,
                meta["namespace"],
                meta["name"],
                {"metadata": {"uid": meta["uid"], "annotations": {c.REIMAGE_ANNOTATION: token}}},
            )
        except ApiException as e:
            if e.status not in (404, 409, 422):  # gone, or another pod now has the name
                raise

    def _advance_reimage_round(
        self,
        body: Mapping[str, Any],
        role: VMRole,
        status: dict[str, Any],
        deployment: Mapping[str, Any] | None,
        now: datetime.datetime,
    ) -> None:
        last = status.get("lastReimage")
        if not isinstance(last, dict):
            return
        paused = role.spec.upgrade.paused
        if last.get("message") and not paused:
            last = {k: v for k, v in last.items() if k != "message"}
        if round_complete(last, deployment, paused):
            last = {**last, "completedAt": format_time(now)}
            self.post_event(
                body, "Normal", "ReimageAllCompleted", f"reimage-all {last['token']}: every instance replaced"
            )
        status["lastReimage"] = last

    def _patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.kube.patch(
            VMROLES, namespace, name, {"status": dict(status)}, content_type=MERGE_PATCH, subresource="status"
        )

    def _announce_state_changes(
        self,
        body: Mapping[str, Any],
        previous: Mapping[str, Any],
        status: Mapping[str, Any],
        pods: list[dict[str, Any]],
        now: datetime.datetime,
    ) -> None:
        """Warning Events the first time an instance enters a failed state; a missed auto-start
        deadline is told on the pod as well."""
        before = {i["name"]: i["state"] for i in previous.get("instances") or []}
        by_name = {p["metadata"]["name"]: p for p in pods}
        timeout_s = int(body["spec"].get("autoStartTimeoutSeconds") or 0)
        for instance in status.get("instances") or []:
            state = instance["state"]
            if state in WARNING_STATES and before.get(instance["name"]) != state:
                reason, what = WARNING_STATES[state]
                self.post_event(
                    body,
                    "Warning",
                    reason,
                    f"instance {instance['name']} {what}: {instance.get('message', '')}".rstrip(": "),
                )
                pod = by_name.get(instance["name"])
                deadline = auto_start_deadline(pod, timeout_s) if pod is not None and timeout_s else None
                if pod is not None and deadline is not None and deadline < now:
                    self.post_event(
                        pod,
                        "Warning",
                        "AutoStartTimeout",
                        f"auto-start checks did not all pass within {timeout_s}s "
                        "(spec.autoStartTimeoutSeconds)",
                    )


WARNING_STATES = {
    "FailedStartingVM": ("SetupFailed", "setup failed"),
    "FailedStartingRole": ("AutoStartFailed", "did not complete auto-start"),
    "UnresponsiveRole": ("InstanceUnresponsive", "stopped answering its auto-start checks"),
}
