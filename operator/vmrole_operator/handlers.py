"""kopf wiring: which events reach which part. Handlers stay thin; the work is in reconciler/auto_start.

Sync handlers run in kopf's thread pool, so the official (blocking) client is used from them.
No handler here needs a finalizer: children go with their owner through garbage collection, and
deleting a VMRole or a pod never waits for the operator.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes import client, config

from . import constants as c
from . import metrics
from .auto_start import AutoStartGate, GateWriter
from .instance_operations import InstanceOperations
from .instance_requests import request_problems
from .models import VMRole, parse_role
from .reconciler import RoleReconciler

ROLE = (c.GROUP, c.VERSION, c.PLURAL)
RETRY_BACKOFF_S = 2.0


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(dict(body), type=type_, reason=reason, message=message[:1024])  # type: ignore[arg-type]


def _api_client() -> client.ApiClient:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    api = client.ApiClient()
    api.configuration.retries = 3
    api.user_agent = c.USER_AGENT  # tells the operator's writes apart in audit logs
    return api


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
    settings.execution.max_workers = 8
    memo.operator_namespace = os.environ.get("VMROLE_OPERATOR_NAMESPACE", c.OPERATOR_NAMESPACE_DEFAULT)
    api = _api_client()
    memo.reconciler = RoleReconciler(api, memo.operator_namespace, post_event)
    write_gate = _gate_writer(memo.reconciler)
    memo.gate = AutoStartGate(write_gate, _deadline_reporter(memo.reconciler))
    memo.operations = InstanceOperations(api, post_event, write_gate)


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    await memo.gate.close()
    await memo.operations.close()


def _gate_writer(reconciler: RoleReconciler) -> GateWriter:
    async def write(
        namespace: str, name: str, is_open: bool, reason: str, message: str, as_of: datetime.datetime
    ) -> None:
        await asyncio.to_thread(
            reconciler.write_auto_start_gate, namespace, name, is_open, reason, message, as_of
        )

    return write


def _deadline_reporter(reconciler: RoleReconciler) -> Any:
    async def report(namespace: str, name: str) -> None:
        await asyncio.to_thread(reconciler.report_auto_start_deadline, namespace, name)

    return report


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
def reconcile_role(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    for problem in request_problems(body, pod=False):
        post_event(body, "Warning", "InvalidRequest", f"{problem}; nothing done")
    if _role_or_report(body) is not None:
        memo.reconciler.reconcile_by_name(body.metadata.namespace, body.metadata.name)


@kopf.on.event(*ROLE)
def role_deleted(body: kopf.Body, type: str | None, **_: Any) -> None:
    if type == "DELETED":
        metrics.forget_role(str(body.metadata.namespace), str(body.metadata.name))


@kopf.on.event("apps", "v1", "deployments", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "services", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "configmaps", labels={c.ROLE_LABEL: kopf.PRESENT})
def child_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A child edited or deleted by hand is restored; a Deployment's progress updates the status."""
    owner = _owning_role(body)
    if owner is not None:
        memo.reconciler.reconcile_by_name(body.metadata.namespace, owner)


@kopf.on.event("", "v1", "pods", labels={c.RESOLVER_FOR_LABEL: kopf.PRESENT})
def resolver_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    owner = _owning_role(body)
    if type != "DELETED" and owner is not None:
        memo.reconciler.reconcile_by_name(body.metadata.namespace, owner)


@kopf.on.event("", "v1", "pods", labels={c.ROLE_LABEL: kopf.PRESENT})
async def instance_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    namespace, name = body.metadata.namespace, body.metadata.name
    if type == "DELETED":
        memo.gate.forget(namespace, name)
    owner = _owning_role(body, via_replica_set=True)
    if owner is None:
        _refuse_requests_on_non_instance(body)
        return
    pod = dict(body)
    for problem in request_problems(pod, pod=True):
        post_event(pod, "Warning", "InvalidRequest", f"{problem}; nothing done")
    role = await asyncio.to_thread(memo.reconciler.refresh_status_by_name, namespace, owner)
    if role is not None and type != "DELETED":
        memo.gate.observe(pod, role.spec.autoStart, role.spec.autoStartTimeoutSeconds)
        memo.operations.observe(pod)


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


@kopf.on.probe(id="now")
def liveness_timestamp(**_: Any) -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()
