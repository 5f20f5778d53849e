"""The operator under test as users run it: the Deployment that `make deploy-e2e` installed.

Same interface as OperatorProcess (stop, start, restart, log_size, log_since), so every e2e test
runs against either. Its log is the pods' logs, followed into a local file for the whole session (one
`kubectl logs -f` per pod, each new pod picked up), so a scan covers pods that were killed since.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.support.operator_process import OperatorLog

from .kube import Kube

NAMESPACE = "vmrole-system"
NAME = "vmrole-operator"
SELECTOR = "app.kubernetes.io/name=vmrole-operator"
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{NAME}"
# A refused API request, in the client's ApiException text, kopf's own errors or its warnings. A 403
# for a write into a namespace being deleted (a test's cleanup racing a reconcile) is no RBAC refusal.
REFUSED = re.compile(r"\b403\b|Forbidden|Not enough permissions", re.IGNORECASE)
NOT_RBAC = "NamespaceTerminating"


class InClusterOperator(OperatorLog):
    def __init__(self, kube: Kube, log_path: Path) -> None:
        self.kube = kube
        self.log_path = log_path
        self._followed: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deployment(self) -> Any:
        return self.kube.apps.read_namespaced_deployment(NAME, NAMESPACE)

    def watched_namespaces(self) -> str:
        """VMROLE_NAMESPACES of the deployed operator ('' when it watches every namespace)."""
        env = self.deployment().spec.template.spec.containers[0].env or []
        return next((e.value for e in env if e.name == "VMROLE_NAMESPACES"), "") or ""

    def ready_pod(self) -> Any | None:
        """The one Running, Ready, not terminating operator pod, if there is exactly one."""
        pods = self.kube.core.list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items
        live = [p for p in pods if p.metadata.deletion_timestamp is None and p.status.phase == "Running"]
        ready = [
            p
            for p in live
            if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        return ready[0] if len(live) == 1 and ready else None

    def attach(self) -> None:
        """Checks that the operator is deployed and ready (it is never installed from here)."""
        try:
            self.deployment()
        except client.ApiException as e:
            if e.status == 404:
                raise RuntimeError(
                    f"OPERATOR=incluster but no Deployment {NAMESPACE}/{NAME}: run `make deploy-e2e` first"
                ) from e
            raise
        self.kube.wait_for(self.ready_pod, 120, f"a ready pod of {NAMESPACE}/{NAME}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._follow_logs, daemon=True)
        self._thread.start()
        self.kube.wait_for(self.log_size, 30, "the operator's log")

    def detach(self) -> None:
        try:
            self._scale(1)  # a test that stopped the operator and failed before start() leaves it down
        except client.ApiException as e:
            if e.status != 404:  # gone with a cluster the lifecycle test restarted
                raise
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for proc in self._followed.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    # ---- the OperatorProcess interface: stop/start keep the operator down in between ----------------

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Scales the Deployment to 0; SIGKILL also kills the pod at once instead of gracefully."""
        pod = self.ready_pod()
        self._scale(0)
        if pod is not None and sig == signal.SIGKILL:
            self._delete(pod, grace_seconds=0)
        self.kube.wait_for(
            lambda: not self.kube.core.list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items,
            60,
            "the operator pod gone",
        )

    def start(self) -> None:
        self._scale(1)
        self.kube.wait_for(self.ready_pod, 120, "a ready operator pod")
        self._settle()

    def restart(self) -> None:
        """A graceful restart, as a rollout does it: the pod is deleted, the Deployment makes another."""
        self.wait_replaced(self.kill_pod(grace_seconds=30))

    # ---- in-cluster only ----------------------------------------------------------------------------

    def kill_pod(self, grace_seconds: int = 0) -> str:
        """Deletes the running operator pod (0: killed at once) and lets the Deployment replace it."""
        pod = self.kube.wait_for(self.ready_pod, 120, "a ready operator pod")
        self._delete(pod, grace_seconds)
        return str(pod.metadata.name)

    def wait_replaced(self, old: str, timeout: float = 120) -> None:
        def replaced() -> bool:
            pod = self.ready_pod()
            return pod is not None and pod.metadata.name != old

        self.kube.wait_for(replaced, timeout, f"a ready operator pod replacing {old}")
        self._settle()

    def _settle(self) -> None:
        """Ready means kopf's liveness endpoint answers; give its watches a moment to start."""

        def followed() -> bool:
            pod = self.ready_pod()
            return pod is not None and pod.metadata.name in self._followed

        self.kube.wait_for(followed, 30, "the new pod's log followed")
        time.sleep(2)

    def _delete(self, pod: Any, grace_seconds: int) -> None:
        try:
            self.kube.core.delete_namespaced_pod(
                pod.metadata.name,
                NAMESPACE,
                grace_period_seconds=grace_seconds,
                body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=pod.metadata.uid)),
            )
        except client.ApiException as e:
            if e.status not in (404, 409):
                raise

    def _scale(self, replicas: int) -> None:
        self.kube.apps.patch_namespaced_deployment_scale(NAME, NAMESPACE, {"spec": {"replicas": replicas}})

    def refused_requests(self, offset: int = 0) -> list[str]:
        lines = self.log_since(offset).splitlines()
        return [line for line in lines if REFUSED.search(line) and NOT_RBAC not in line]

    def _follow_logs(self) -> None:
        """One `kubectl logs -f` per operator pod, appending to the session's log file."""
        with open(self.log_path, "ab", buffering=0) as log:
            while not self._stop.is_set():
                try:
                    pods = self.kube.core.list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items
                except Exception:  # the cluster may be restarting (the lifecycle test); try again
                    pods = []
                for pod in pods:
                    name = pod.metadata.name
                    started = any(
                        s.state.running or s.state.terminated for s in pod.status.container_statuses or []
                    )
                    if name not in self._followed and started:
                        self._followed[name] = subprocess.Popen(
                            ["kubectl", "logs", "-f", "-n", NAMESPACE, name],
                            stdout=log,
                            stderr=subprocess.DEVNULL,
                        )
                self._stop.wait(0.5)
