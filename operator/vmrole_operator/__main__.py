"""`python -m vmrole_operator` (or `vmrole-operator`): run the operator with kopf.

Environment: VMROLE_NAMESPACES (comma-separated; default: every namespace), VMROLE_LIVENESS
(default http://0.0.0.0:8080/healthz), VMROLE_LOG_FORMAT (json, the default, or plain),
VMROLE_METRICS_PORT (serve Prometheus /metrics there; unset: no metrics server, so several local
operators on one host never fight over a port; the Deployment in manifests/ sets 9090).
"""

from __future__ import annotations

import contextlib
import ctypes
import os

import kopf

from . import handlers  # noqa: F401 - registers the handlers
from .kopf_namespaces import install as install_kopf_namespaces
from .kopf_toggles import install as install_kopf_toggles
from .metrics import start_metrics_server

M_ARENA_MAX = -8  # glibc's mallopt parameter number
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """glibc gives threads that allocate at once arenas of their own (up to 8 per core), and the
    blocking client's worker threads then leave freed memory spread over all of them: peak RSS grew
    with the fleet. Same effect as MALLOC_ARENA_MAX=2, without relying on the environment."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to limit
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def main() -> None:
    limit_malloc_arenas()
    install_kopf_toggles()
    install_kopf_namespaces()
    log_format = (
        kopf.LogFormat.PLAIN if os.environ.get("VMROLE_LOG_FORMAT") == "plain" else kopf.LogFormat.JSON
    )
    kopf.configure(verbose=bool(os.environ.get("VMROLE_DEBUG")), log_format=log_format)
    if os.environ.get("VMROLE_METRICS_PORT"):
        start_metrics_server(int(os.environ["VMROLE_METRICS_PORT"]))
    namespaces = [ns for ns in os.environ.get("VMROLE_NAMESPACES", "").split(",") if ns]
    kopf.run(
        standalone=True,  # one replica with a Recreate strategy; no peering objects needed
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=os.environ.get("VMROLE_LIVENESS", "http://0.0.0.0:8080/healthz"),
    )


if __name__ == "__main__":
    main()
