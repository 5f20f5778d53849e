"""`python -m vmrole_operator` (or `vmrole-operator`): run the operator with kopf.

Environment: VMROLE_NAMESPACES (comma-separated; default: every namespace), VMROLE_LIVENESS
(default http://0.0.0.0:8080/healthz), VMROLE_LOG_FORMAT (json, the default, or plain).
"""

from __future__ import annotations

import os

import kopf

from . import handlers  # noqa: F401 - registers the handlers


def main() -> None:
    log_format = (
        kopf.LogFormat.PLAIN if os.environ.get("VMROLE_LOG_FORMAT") == "plain" else kopf.LogFormat.JSON
    )
    kopf.configure(verbose=bool(os.environ.get("VMROLE_DEBUG")), log_format=log_format)
    namespaces = [ns for ns in os.environ.get("VMROLE_NAMESPACES", "").split(",") if ns]
    kopf.run(
        standalone=True,  # one replica with a Recreate strategy; no peering objects needed
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=os.environ.get("VMROLE_LIVENESS", "http://0.0.0.0:8080/healthz"),
    )


if __name__ == "__main__":
    main()
