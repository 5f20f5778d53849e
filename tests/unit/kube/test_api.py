from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from vmrole_operator.kube.api import (
    APPLY_PATCH,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    MERGE_PATCH,
    PODS,
    STRATEGIC_MERGE_PATCH,
    VMROLES,
    KubeApi,
)


def test_paths_of_core_group_and_custom_resources() -> None:
    assert PODS.path("ns") == "/api/v1/namespaces/ns/pods"
    assert PODS.path("ns", "web-1", "status") == "/api/v1/namespaces/ns/pods/web-1/status"
    assert DEPLOYMENTS.path("ns", "web") == "/apis/apps/v1/namespaces/ns/deployments/web"
    assert ENDPOINT_SLICES.path("ns") == "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"
    assert VMROLES.path("ns", "web", "status") == "/apis/vmrole.dev/v1alpha1/namespaces/ns/vmroles/web/status"


class _Recorder(BaseHTTPRequestHandler):
    """An API server stand-in that records each request and answers with the queued reply."""

    requests: ClassVar[list[dict[str, Any]]] = []
    replies: ClassVar[list[tuple[int, dict[str, Any]]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "user_agent": self.headers.get("User-Agent"),
                "body": json.loads(raw) if raw else None,
            }
        )
        status, reply = self.replies.pop(0)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def kube() -> Iterator[KubeApi]:
    _Recorder.requests, _Recorder.replies = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    configuration = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    configuration.retries = 0
    api = client.ApiClient(configuration)
    api.user_agent = "vmrole-operator/test"
    try:
        yield KubeApi(api)
    finally:
        server.shutdown()
        server.server_close()


def test_server_side_apply_sends_yaml_content_type_field_manager_and_force(kube: KubeApi) -> None:
    _Recorder.replies = [(200, {"kind": "Deployment", "metadata": {"name": "web"}})]
    applied = kube.patch(
        DEPLOYMENTS,
        "ns",
        "web",
        {"kind": "Deployment"},
        content_type=APPLY_PATCH,
        field_manager="m",
        force=True,
    )
    assert applied == {"kind": "Deployment", "metadata": {"name": "web"}}
    (sent,) = _Recorder.requests
    assert sent["method"] == "PATCH"
    assert sent["path"] == "/apis/apps/v1/namespaces/ns/deployments/web?fieldManager=m&force=true"
    assert sent["content_type"] == APPLY_PATCH
    assert sent["body"] == {"kind": "Deployment"}
    assert sent["user_agent"] == "vmrole-operator/test"


def test_patches_default_to_strategic_merge_and_reach_subresources(kube: KubeApi) -> None:
    _Recorder.replies = [(200, {}), (200, {})]
    kube.patch(PODS, "ns", "web-1", {"status": {"conditions": []}}, subresource="status")
    kube.patch(VMROLES, "ns", "web", {"status": {}}, content_type=MERGE_PATCH, subresource="status")
    first, second = _Recorder.requests
    assert (first["path"], first["content_type"]) == (
        "/api/v1/namespaces/ns/pods/web-1/status",
        STRATEGIC_MERGE_PATCH,
    )
    assert (second["path"], second["content_type"]) == (
        "/apis/vmrole.dev/v1alpha1/namespaces/ns/vmroles/web/status",
        MERGE_PATCH,
    )


def test_delete_carries_the_uid_precondition(kube: KubeApi) -> None:
    _Recorder.replies = [(200, {"kind": "Status"})]
    kube.delete(PODS, "ns", "web-1", "uid-1")
    (sent,) = _Recorder.requests
    assert sent["method"] == "DELETE"
    assert sent["body"]["preconditions"] == {"uid": "uid-1"}


def test_list_returns_items_and_sends_the_label_selector(kube: KubeApi) -> None:
    _Recorder.replies = [(200, {"items": [{"metadata": {"name": "a"}}]})]
    assert kube.list(PODS, "ns", "vmrole.dev/role=web") == [{"metadata": {"name": "a"}}]
    path, _, query = _Recorder.requests[0]["path"].partition("?")
    assert path == "/api/v1/namespaces/ns/pods"
    assert parse_qs(query) == {"labelSelector": ["vmrole.dev/role=web"]}


@pytest.mark.parametrize("status", [404, 409, 422, 500])
def test_an_error_answer_raises_with_its_status(kube: KubeApi, status: int) -> None:
    _Recorder.replies = [(status, {"kind": "Status", "message": "nope"})]
    with pytest.raises(ApiException) as raised:
        kube.get(PODS, "ns", "web-1")
    assert raised.value.status == status
    assert "nope" in str(raised.value.body)
