"""VMRole objects as the API returns them, for unit tests: the contract's example and a minimal one."""

from __future__ import annotations

from typing import Any

DIGEST = "a" * 64


def example_body() -> dict[str, Any]:
    """The VMRole of SEMANTICS.md's "API v1alpha1 (contract)" section."""
    return {
        "apiVersion": "vmrole.dev/v1alpha1",
        "kind": "VMRole",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "generation": 2},
        "spec": {
            "image": "localhost/vmrole-test/web:1",
            "instances": 3,
            "command": ["/bin/sh", "-c", "exec httpd -f -p 8080"],
            "args": [],
            "env": [{"name": "MODE", "value": "demo"}],
            "ephemeralDisk": {"mountPaths": ["/scratch", "/tmp"], "sizeLimit": "256Mi"},
            "setup": {
                "command": ["/bin/sh", "-c", "cp /etc/vmrole/answer/unattend.xml /scratch/"],
                "answerFile": {"mountPath": "/etc/vmrole/answer", "data": {"unattend.xml": "<unattend/>"}},
            },
            "autoStart": [
                {"name": "http", "tcpSocket": {"port": 8080}},
                {"name": "api", "httpGet": {"port": 8080, "path": "/healthz"}},
            ],
            "autoStartTimeoutSeconds": 300,
            "endpoints": {
                "input": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                "internal": [{"name": "peer", "port": 7000, "protocol": "TCP"}],
                "serviceType": "ClusterIP",
            },
            "upgrade": {"maxUnavailable": 1, "maxSurge": 0, "paused": False},
        },
        "status": {
            "observedGeneration": 2,
            "image": f"localhost/vmrole-test/web@sha256:{DIGEST}",
            "replicas": 3,
            "readyReplicas": 3,
            "selector": "vmrole.dev/role=web",
            "instances": [
                {
                    "name": "web_IN_0",
                    "pod": "web-7d9c5-x2k4p",
                    "state": "ReadyRole",
                    "ready": True,
                    "restarts": 0,
                    "podIP": "10.88.0.7",
                    "node": "n1",
                    "since": "2026-11-22T10:00:00Z",
                }
            ],
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumInstancesReady",
                    "message": "3 of 3 instances ready",
                    "observedGeneration": 2,
                    "lastTransitionTime": "2026-11-22T10:00:00Z",
                }
            ],
            "lastReimage": {"token": "2026-11-22T10:00:00Z", "startedAt": "2026-11-22T10:00:00Z"},
        },
    }


def minimal_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vmrole.dev/v1alpha1",
        "kind": "VMRole",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"image": "localhost/vmrole-test/web:1", **spec},
    }
