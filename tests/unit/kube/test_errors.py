"""Telling the API server's answers apart: the control plane away for a moment (and how that reads in
one log line), a namespace being deleted, an admission refusal."""

from __future__ import annotations

import json

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from vmrole_operator.kube.errors import describe, message_of, namespace_terminating, refused, transient

REFUSED = urllib3.exceptions.MaxRetryError(
    None,  # type: ignore[arg-type]
    "/api/v1/pods",
    urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused"),  # type: ignore[arg-type]
)


@pytest.mark.parametrize(
    "error",
    [
        ApiException(status=503, reason="Service Unavailable"),
        ApiException(status=500, reason="Internal Server Error"),  # etcd leader lost, request timed out
        ApiException(status=504, reason="Gateway Timeout"),
        ApiException(status=429, reason="Too Many Requests"),
        ApiException(status=0, reason="no response"),
        REFUSED,
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
        urllib3.exceptions.ReadTimeoutError(None, "/api", "read timed out"),  # type: ignore[arg-type]
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
)
def test_a_control_plane_away_for_a_moment_is_transient(error: BaseException) -> None:
    assert transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ApiException(status=403, reason="Forbidden"),
        ApiException(status=422, reason="Unprocessable Entity"),
        ApiException(status=409, reason="Conflict"),
        ValueError("a bug"),
        KeyError("status"),
    ],
)
def test_a_refusal_or_a_bug_is_not(error: BaseException) -> None:
    assert not transient(error)


def test_describe_is_one_line_naming_the_cause() -> None:
    assert describe(ApiException(status=503, reason="Service Unavailable")) == "HTTP 503 Service Unavailable"
    line = describe(REFUSED)
    assert line.startswith("NewConnectionError: ")
    assert "refused" in line
    assert "\n" not in describe(ValueError("two\nlines"))


# As kube-apiserver v1.34 answers a create in a namespace being deleted.
TERMINATING = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": 'services "web" is forbidden: unable to create new content in namespace e2e because it is '
    "being terminated",
    "reason": "Forbidden",
    "details": {
        "name": "web",
        "kind": "services",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace e2e is being terminated",
                "field": "metadata.namespace",
            }
        ],
    },
    "code": 403,
}


def error(status: int, body: object) -> ApiException:
    e = ApiException(status=status, reason="Forbidden" if status == 403 else "Other")
    e.body = body if isinstance(body, str) else json.dumps(body)
    return e


def test_a_namespace_being_deleted_is_told_by_its_cause_or_its_message() -> None:
    assert namespace_terminating(error(403, TERMINATING))
    no_causes = {k: v for k, v in TERMINATING.items() if k != "details"}
    assert namespace_terminating(error(403, no_causes))
    assert not refused(error(403, TERMINATING))


def test_other_answers_are_not_a_namespace_being_deleted() -> None:
    quota = {"kind": "Status", "message": 'pods "x" is forbidden: exceeded quota: q', "code": 403}
    assert not namespace_terminating(error(403, quota))
    assert refused(error(403, quota))
    assert message_of(error(403, quota)) == 'pods "x" is forbidden: exceeded quota: q'
    assert not namespace_terminating(error(409, TERMINATING))
    assert not namespace_terminating(RuntimeError("403"))
    assert not refused(error(404, quota))
    garbled = error(403, "<html>proxy says no</html>")
    assert not namespace_terminating(garbled)
    assert message_of(garbled) == "Forbidden"
    assert message_of(error(403, ["not", "a", "status"])) == "Forbidden"
