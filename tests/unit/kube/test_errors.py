"""Which failures are the control plane away for a moment, and how they read in one log line."""

from __future__ import annotations

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from vmrole_operator.kube.errors import describe, transient

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
