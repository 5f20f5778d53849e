"""Auto-start, decided by the kubelet: what each `spec.autoStart` check becomes in the pod.

An instance is in rotation only when the kubelet reports its pod Ready, and a pod is Ready only when
every container is: so the first check is the main container's readiness probe, and each further
check is the readiness probe of a container of its own (the probe targets the pod IP, so it reaches
the main container's port). Nothing of the operator is in this path: a pod started while the
operator is down enters rotation by itself, and nothing inside the image is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import AutoStartCheck

# Every check is probed each second and one failure takes the instance out of rotation: entering
# rotation fast after a (re)image is the point, and an extra check must notice a main-container
# restart within one period (see RESTART_GUARD_SECONDS).
PROBE_PERIOD_SECONDS = 1
PROBE_TIMEOUT_SECONDS = 1
# An extra check's probe lives on another container, so a restart of the main container does not
# reset it. Holding the main probe back this long after each start means every extra check has been
# probed (and, if its service is still down, failed) since the restart before the instance can be
# Ready again: one period plus one timeout.
RESTART_GUARD_SECONDS = PROBE_PERIOD_SECONDS + PROBE_TIMEOUT_SECONDS


def auto_start_plan(checks: Sequence[AutoStartCheck]) -> tuple[AutoStartCheck | None, list[AutoStartCheck]]:
    """(the check probed on the main container, the checks that each need a container of their own).

    A TCP check on a port that an HTTP check also probes adds nothing (the GET had to connect), so it
    is dropped; the first remaining check goes on the main container.
    """
    http_ports = {check.httpGet.port for check in checks if check.httpGet is not None}
    kept = [check for check in checks if check.httpGet is not None or check.port not in http_ports]
    if not kept:
        return None, []
    return kept[0], kept[1:]
