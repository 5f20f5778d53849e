"""kopf wiring: which events reach which part. Handlers stay thin; the work is in the reconciler and
the instance operations.

Handlers run in the event loop and only route: role work goes through `RoleWorkers` (one run per
role at a time, in a thread, since the official client blocks), instance requests to their own
asyncio tasks. kopf indexes keep what the reconciler would otherwise GET and LIST.
No handler here needs a finalizer: children go with their owner through garbage collection, and
deleting a VMRole or a pod never waits for the operator.
"""

from __future__ import annotations

import asyncio
import datetime
import fnmatch
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes import client, config

from . import constants as c
from . import metrics
from .admission import HANDLER_ID, RegisteringWebhookServer, Reservations, WebhookSettings, name_new_pod
from .control.instance_api import InstanceApi
from .control.instance_operations import InstanceOperations
from .control.node_maintenance import NodeMaintenance
from .control.role_reader import RoleReader
from .control.role_reconciler import RoleReconciler
from .control.role_workers import RoleWorkers, Work
from .indexes import IndexedObjects, owning_role
from .kube.api import PODS, KubeApi
from .kube.errors import describe, transient
from .kube.events import post_event
from .models import VMRole, parse_role
from .state.node_images import NodeImages
from .state.requests import request_problems
from .state.role_changes import RoleChanges

logger = logging.getLogger(__name__)

ROLE = (c.GROUP, c.VERSION, c.PLURAL)
WORKER_THREADS = 8  # blocking API calls in flight at once (kopf's sync handlers and role work)
WORKER_IDLE_S = 0.5  # kopf's per-object worker exits after this long without events (kopf: 5 s)


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
    # Only event handlers: kopf stores nothing on the objects (no progress, no last-handled
    # configuration). Should a handler ever need it, it goes to annotations under our domain.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.KOPF_ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.KOPF_ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # Our own Events are explicit; kopf's per-handler INFO chatter stays in the log.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.execution.max_workers = WORKER_THREADS
    # A per-object worker keeps the last watch event it handled (a parsed pod is ~23 KB) until it
    # exits; kopf's 5 s kept one per object alive through a burst of starts (docs/design.md).
    settings.queueing.idle_timeout = WORKER_IDLE_S
    # Events say they come from the operator, not from "kopf".
    settings.posting.reporting_component = c.MANAGED_BY
    settings.posting.reporting_instance = os.environ.get("HOSTNAME", c.MANAGED_BY)
    kube = _kube_api()
    roles = RoleReader(kube)
    check_image = os.environ.get(c.CHECK_IMAGE_ENV) or c.DEFAULT_CHECK_IMAGE
    memo.node_images = NodeImages()
    reconciler = RoleReconciler(kube, roles, check_image, post_event, node_images=memo.node_images)
    memo.indexed = IndexedObjects()
    memo.workers = RoleWorkers(reconciler.run, memo.indexed.snapshot, WORKER_THREADS)
    memo.operations = InstanceOperations(kube, roles, post_event)
    memo.nodes = NodeMaintenance(InstanceApi(kube, roles), post_event, memo.indexed.pods_on_node)
    memo.reservations = Reservations()
    memo.role_changes = RoleChanges()
    memo.kube = kube
    if WEBHOOK.enabled:
        settings.admission.server = RegisteringWebhookServer(WEBHOOK, kube)


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    await memo.operations.close()
    await memo.nodes.close()
    await memo.workers.close()


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


@kopf.on.event(*ROLE)
async def role_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """Every event of a role, the listing at start included; the reconcile is level-based, so it
    needs no diff and no record of what was last handled on the object (docs/design.md)."""
    key = (str(body.metadata.namespace), str(body.metadata.name))
    workers = _workers(memo, kwargs)
    changes: RoleChanges = memo.role_changes
    if type == "DELETED":
        metrics.forget_role(*key)
        workers.forget(*key)
        changes.forget(key)
        return
    if not changes.changed(key, body):
        return  # our own status write coming back
    for problem in request_problems(body, pod=False):
        post_event(body, "Warning", "InvalidRequest", f"{problem}; nothing done")
    if _role_or_report(body) is not None:
        workers.request(*key, Work.RECONCILE)


@kopf.on.event("apps", "v1", "deployments", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "services", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "configmaps", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels={c.ROLE_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={c.RESOLVER_FOR_LABEL: kopf.PRESENT})
async def child_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """A child edited or deleted by hand is restored; a Deployment's progress updates the status; a
    resolver pod that reported the digest pins the image."""
    owner = owning_role(body)
    if owner is not None and not (type == "MODIFIED" and _budget_status_only(body)):
        _workers(memo, kwargs).request(str(body.metadata.namespace), owner, Work.RECONCILE)


def _budget_status_only(body: kopf.Body) -> bool:
    """A disruption budget's status moves with every pod of the role; only its spec is ours."""
    generation = body.metadata.get("generation")
    return body.get("kind") == "PodDisruptionBudget" and body.status.get("observedGeneration") == generation


@kopf.on.event("", "v1", "pods", labels={c.ROLE_LABEL: kopf.PRESENT})
async def instance_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    namespace = str(body.metadata.namespace)
    owner = owning_role(body, via_replica_set=True)
    if owner is None:
        _refuse_requests_on_non_instance(body)
        return
    pod = dict(body)
    for problem in request_problems(pod, pod=True):
        post_event(pod, "Warning", "InvalidRequest", f"{problem}; nothing done")
    if type != "DELETED":
        # Requests act first: the status write below may wait behind other work.
        memo.operations.observe(pod)
        memo.nodes.pod_changed(pod)
    _workers(memo, kwargs).request(namespace, owner, Work.STATUS)


@kopf.on.event("", "v1", "nodes")
async def node_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """A cordoned node's instances are replaced surge first; uncordoning withdraws what still serves.
    The images a node holds may pin a tag with no resolver pod."""
    memo.indexed.remember(kwargs)
    memo.nodes.node_changed(body, deleted=type == "DELETED")
    memo.node_images.node_changed(body, deleted=type == "DELETED")


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


async def name_instance(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, dryrun: bool = False, **_: Any
) -> None:
    """Admission of a new instance pod: its name, before setup runs (admission.py)."""
    namespace = str(body.metadata.namespace or "")
    role = str(body.metadata.labels.get(c.ROLE_LABEL))
    if WATCHED and not any(fnmatch.fnmatchcase(namespace, pattern) for pattern in WATCHED):
        return  # another operator's namespace: this one knows nothing of its pods
    # Read, not the index: the ReplicaSet creates this pod because it saw another finish or go, and
    # the API server has seen that already, while the operator's watch may not have yet.
    selector = f"{c.ROLE_LABEL}={role}"
    try:
        pods = await asyncio.to_thread(memo.kube.list, PODS, namespace, selector)
    except Exception as e:
        if not transient(e):
            raise
        # As with the webhook down (failurePolicy Ignore): the pod starts unnamed, named later.
        logger.warning("naming a new pod of %s/%s deferred: %s", namespace, role, describe(e))
        return
    reservations = Reservations() if dryrun else memo.reservations
    marks = name_new_pod(dict(body), namespace, pods, reservations, time.monotonic())
    patch.metadata.setdefault("labels", {}).update(marks["labels"])
    patch.metadata.setdefault("annotations", {}).update(marks["annotations"])


WEBHOOK = WebhookSettings.from_env()
WATCHED = [ns for ns in os.environ.get("VMROLE_NAMESPACES", "").split(",") if ns]
if WEBHOOK.enabled:
    kopf.on.mutate(
        "",
        "v1",
        "pods",
        id=HANDLER_ID,
        operations=["CREATE"],
        labels={c.ROLE_LABEL: kopf.PRESENT},
        ignore_failures=True,
        side_effects=False,
    )(name_instance)


@kopf.on.probe(id="now")
def liveness_timestamp(**_: Any) -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()
