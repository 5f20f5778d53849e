"""kopf wiring: which events reach which part. Handlers stay thin; the work is in the reconciler and
the instance operations.

Handlers run in the event loop and only route: role work goes through `RoleWorkers` (one run per
role at a time, in a thread, since the official client blocks), instance requests to their own
asyncio tasks. kopf indexes keep what the reconciler would otherwise GET and LIST.
No handler here needs a finalizer: children go with their owner through garbage collection, and
deleting a VMRole or a pod never waits for the operator.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes import client, config

from . import constants as c
from . import metrics
from .instance_operations import InstanceOperations
from .instance_requests import request_problems
from .kube_api import KubeApi
from .models import VMRole, parse_role
from .observed import Observed, pack, trim_child, trim_pod
from .reconciler import RoleReconciler
from .role_workers import RoleWorkers, Work

ROLE = (c.GROUP, c.VERSION, c.PLURAL)
RETRY_BACKOFF_S = 2.0
WORKER_THREADS = 8  # blocking API calls in flight at once (kopf's sync handlers and role work)


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(dict(body), type=type_, reason=reason, message=message[:1024])  # type: ignore[arg-type]


def _kube_api() -> KubeApi:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    api = client.ApiClient()
    api.configuration.retries = 3
    api.user_agent = c.USER_AGENT  # tells the operator's writes apart in audit logs
    return KubeApi(api)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf's bookkeeping goes to annotations under our domain, never into the VMRole status schema.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.KOPF_ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.KOPF_ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # Our own Events are explicit; kopf's per-handler INFO chatter stays in the log.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.execution.max_workers = WORKER_THREADS
    kube = _kube_api()
    check_image = os.environ.get(c.CHECK_IMAGE_ENV) or c.DEFAULT_CHECK_IMAGE
    memo.reconciler = RoleReconciler(kube, check_image, post_event)
    memo.indexed = IndexedObjects()
    memo.workers = RoleWorkers(memo.reconciler.run, memo.indexed.snapshot, WORKER_THREADS)
    memo.operations = InstanceOperations(kube, post_event)


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    await memo.operations.close()
    await memo.workers.close()


# ---- indexes: what the reconciler reads instead of GET/LIST calls (see observed.py) -------------


def _owning_role(body: kopf.Body, via_replica_set: bool = False) -> str | None:
    """The role named by the label, but only for objects that really belong to a VMRole."""
    role = body.metadata.labels.get(c.ROLE_LABEL) or body.metadata.labels.get(c.RESOLVER_FOR_LABEL)
    refs = body.metadata.get("ownerReferences") or []
    owner_kinds = {(ref.get("kind"), ref.get("apiVersion", "").split("/")[0]) for ref in refs}
    if (c.KIND, c.GROUP) in owner_kinds:
        return str(role) if role else None
    if via_replica_set and any(kind == "ReplicaSet" for kind, _ in owner_kinds):
        return str(role) if role else None  # instance pods are owned by the Deployment's ReplicaSet
    return None


def _index_entry(key_role: str | None, namespace: str | None, value: dict[str, Any]) -> Any:
    return {(namespace, key_role): pack(value)} if key_role and namespace else None


@kopf.index("", "v1", "pods", labels={c.ROLE_LABEL: kopf.PRESENT})
def instances_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _index_entry(_owning_role(body, via_replica_set=True), namespace, trim_pod(body))


@kopf.index("", "v1", "pods", labels={c.RESOLVER_FOR_LABEL: kopf.PRESENT})
def resolvers_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _index_entry(_owning_role(body), namespace, trim_pod(body))


@kopf.index("apps", "v1", "deployments", labels={c.ROLE_LABEL: kopf.PRESENT})
def deployments_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _index_entry(_owning_role(body), namespace, trim_child(body))


@kopf.index("", "v1", "services", labels={c.ROLE_LABEL: kopf.PRESENT})
def services_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _index_entry(_owning_role(body), namespace, trim_child(body))


@kopf.index("networking.k8s.io", "v1", "networkpolicies", labels={c.ROLE_LABEL: kopf.PRESENT})
def policies_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _index_entry(_owning_role(body), namespace, trim_child(body))


@kopf.index("", "v1", "configmaps", labels={c.ROLE_LABEL: kopf.PRESENT})
def configmaps_by_role(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
    return _index_entry(_owning_role(body), namespace, trim_child(body))


INDEXES = (
    "instances_by_role",
    "resolvers_by_role",
    "deployments_by_role",
    "services_by_role",
    "policies_by_role",
    "configmaps_by_role",
)
CHILD_INDEXES = INDEXES[2:]


class IndexedObjects:
    """kopf hands its indexes only to handlers; the first handler to run leaves them here.

    One instance, made at startup and shared by reference: kopf gives every object its own shallow
    copy of the memo, so an attribute set on `memo` in a handler would not reach the others.
    """

    def __init__(self) -> None:
        self.indexes: dict[str, kopf.Index[Any, Any]] | None = None

    def remember(self, kwargs: Mapping[str, Any]) -> None:
        if self.indexes is None:
            self.indexes = {name: kwargs[name] for name in INDEXES}

    def snapshot(self, namespace: str, name: str) -> Observed:
        if self.indexes is None:
            raise RuntimeError("no handler has run yet: kopf's indexes are not known")
        indexes, key = self.indexes, (namespace, name)

        def entries(index: str) -> list[Any]:
            return list(indexes[index].get(key, []))

        children = [ch for index in CHILD_INDEXES for ch in entries(index)]
        return Observed.of(entries("instances_by_role"), entries("resolvers_by_role"), children)


def _workers(memo: kopf.Memo, kwargs: Mapping[str, Any]) -> RoleWorkers:
    memo.indexed.remember(kwargs)
    workers: RoleWorkers = memo.workers
    return workers


# ---- handlers -------------------------------------------------------------------------------------


def _role_or_report(body: Mapping[str, Any]) -> VMRole | None:
    """A spec the schema let through but the operator cannot use is reported, never retried forever."""
    try:
        return parse_role(body)
    except ValueError as e:
        post_event(body, "Warning", "InvalidSpec", str(e))
        return None


@kopf.on.resume(*ROLE, backoff=RETRY_BACKOFF_S)
@kopf.on.create(*ROLE, backoff=RETRY_BACKOFF_S)
@kopf.on.update(*ROLE, backoff=RETRY_BACKOFF_S)
async def reconcile_role(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    for problem in request_problems(body, pod=False):
        post_event(body, "Warning", "InvalidRequest", f"{problem}; nothing done")
    if _role_or_report(body) is not None:
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        await _workers(memo, kwargs).run_now(namespace, name, Work.RECONCILE)


@kopf.on.event(*ROLE)
async def role_deleted(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    if type == "DELETED":
        namespace, name = str(body.metadata.namespace), str(body.metadata.name)
        metrics.forget_role(namespace, name)
        _workers(memo, kwargs).forget(namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "services", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "configmaps", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={c.RESOLVER_FOR_LABEL: kopf.PRESENT})
async def child_changed(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """A child edited or deleted by hand is restored; a Deployment's progress updates the status; a
    resolver pod that reported the digest pins the image."""
    owner = _owning_role(body)
    if owner is not None:
        _workers(memo, kwargs).request(str(body.metadata.namespace), owner, Work.RECONCILE)


@kopf.on.event("", "v1", "pods", labels={c.ROLE_LABEL: kopf.PRESENT})
async def instance_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    namespace = str(body.metadata.namespace)
    owner = _owning_role(body, via_replica_set=True)
    if owner is None:
        _refuse_requests_on_non_instance(body)
        return
    pod = dict(body)
    for problem in request_problems(pod, pod=True):
        post_event(pod, "Warning", "InvalidRequest", f"{problem}; nothing done")
    if type != "DELETED":
        # Requests act first: the status write below may wait behind other work.
        memo.operations.observe(pod)
    _workers(memo, kwargs).request(namespace, owner, Work.STATUS)


REQUEST_ANNOTATIONS = (c.REIMAGE_ANNOTATION, c.REBOOT_ANNOTATION, c.BUSY_ANNOTATION)


@kopf.on.event(
    "", "v1", "pods", labels={c.ROLE_LABEL: kopf.ABSENT}, annotations={c.REIMAGE_ANNOTATION: kopf.PRESENT}
)
@kopf.on.event(
    "", "v1", "pods", labels={c.ROLE_LABEL: kopf.ABSENT}, annotations={c.REBOOT_ANNOTATION: kopf.PRESENT}
)
@kopf.on.event(
    "", "v1", "pods", labels={c.ROLE_LABEL: kopf.ABSENT}, annotations={c.BUSY_ANNOTATION: kopf.PRESENT}
)
def request_on_other_pod(body: kopf.Body, type: str | None, **_: Any) -> None:
    if type != "DELETED":
        _refuse_requests_on_non_instance(body)


def _refuse_requests_on_non_instance(body: kopf.Body) -> None:
    """A request on a pod no VMRole owns is refused loudly, and nothing is done to the pod."""
    asked = [k for k in REQUEST_ANNOTATIONS if k in (body.metadata.annotations or {})]
    if asked:
        post_event(
            body,
            "Warning",
            "NotAnInstance",
            f"{', '.join(asked)} ignored: pod {body.metadata.name} is not an instance of a VMRole",
        )


@kopf.on.probe(id="now")
def liveness_timestamp(**_: Any) -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()
