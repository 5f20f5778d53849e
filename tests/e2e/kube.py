"""Small helpers over the official client, shared by the e2e tests."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.rest import ApiException

T = TypeVar("T")
WEB_IMAGE = "localhost/vmrole-test/web"


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.networking = client.NetworkingV1Api(api)
        self.policy = client.PolicyV1Api(api)

    @staticmethod
    def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.25) -> T:
        """Polls `check` until it returns something truthy; fails the test with `what` on timeout."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = check()
            except (ApiException, OSError) as e:  # OSError: a connection kube-proxy does not route yet
                last_error, value = e, None  # type: ignore[assignment]
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(
            f"timed out after {timeout:.0f}s waiting for {what}"
            + (f" (last error: {last_error})" if last_error else "")
        )

    def service_account_exists(self, namespace: str, name: str) -> bool:
        try:
            self.core.read_namespaced_service_account(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def pod(self, namespace: str, name: str) -> Any:
        return self.api.sanitize_for_serialization(self.core.read_namespaced_pod(name, namespace))

    def pods(self, namespace: str, selector: str) -> list[Any]:
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        return [self.api.sanitize_for_serialization(p) for p in pods]

    def pod_ready(self, namespace: str, name: str) -> bool:
        conditions = self.pod(namespace, name).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def endpoint_states(self, namespace: str, service: str) -> dict[str, bool]:
        """Pod IP -> ready, as the EndpointSlices of `service` list them."""
        slices = self.discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}"
        ).items
        states: dict[str, bool] = {}
        for s in slices:
            for ep in s.endpoints or []:
                for address in ep.addresses:
                    states[address] = bool(ep.conditions and ep.conditions.ready)
        return states


def restricted_container(name: str = "web", image: str = f"{WEB_IMAGE}:1", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        **extra,
    }


def restricted_pod_spec(*containers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 5,
        "containers": list(containers) or [restricted_container()],
        **extra,
    }


def http_get(url: str, timeout: float = 3) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())
