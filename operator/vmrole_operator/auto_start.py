"""The auto-start gate: an instance joins load-balancer rotation only when every auto-start check passes.

The operator probes each starting instance from outside (TCP connect, HTTP GET to the pod IP), so no
shell or agent is needed inside the image, and opens the pod's readiness gate `vmrole.dev/auto-start-
complete` when all checks pass. The gate then stays open without the operator: instances in rotation
stay there while it is down. The kubelet's readiness probe (the first check) watches ongoing health,
and a container restart makes the gate stale, so the operator closes it and probes again.

One asyncio task per starting instance; none per ready one, so a large settled fleet costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from .constants import BUSY_ANNOTATION
from .instance_state import gate_action, main_container_started_at
from .models import AutoStartCheck

logger = logging.getLogger(__name__)

PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 1.0

PodKey = tuple[str, str]
# (namespace, pod, open?, reason, message, as of): `as of` is when the checks that justify it began.
GateWriter = Callable[[str, str, bool, str, str, datetime.datetime], Awaitable[None]]
DeadlineCallback = Callable[[str, str], Awaitable[None]]


async def tcp_check(host: str, port: int, limit_s: float = PROBE_TIMEOUT_S) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), limit_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


_NO_VERIFY = ssl.create_default_context()
_NO_VERIFY.check_hostname = False
_NO_VERIFY.verify_mode = ssl.CERT_NONE


async def http_check(
    session: aiohttp.ClientSession,
    host: str,
    port: int,
    path: str,
    scheme: str,
    limit_s: float = PROBE_TIMEOUT_S,
) -> bool:
    """2xx and 3xx pass, as for the kubelet's httpGet probe (which does not verify TLS either)."""
    netloc = f"[{host}]" if ":" in host else host  # an IPv6 pod IP needs brackets in a URL
    url = f"{scheme.lower()}://{netloc}:{port}{path}"
    try:
        async with session.get(
            url,
            timeout=aiohttp.ClientTimeout(total=limit_s),
            allow_redirects=False,
            ssl=_NO_VERIFY if scheme.upper() == "HTTPS" else True,
        ) as response:
            return 200 <= response.status < 400
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


async def failing_checks(
    session: aiohttp.ClientSession, host: str, checks: Sequence[AutoStartCheck]
) -> list[str]:
    async def run(check: AutoStartCheck) -> bool:
        if check.tcpSocket is not None:
            return await tcp_check(host, check.tcpSocket.port)
        assert check.httpGet is not None
        get = check.httpGet
        return await http_check(session, host, get.port, get.path, get.scheme)

    results = await asyncio.gather(*(run(check) for check in checks))
    return [check.name for check, ok in zip(checks, results, strict=True) if not ok]


@dataclass
class _Probing:
    task: asyncio.Task[None]
    started_at: datetime.datetime | None


class AutoStartGate:
    """Keeps every instance's gate in step with its auto-start checks."""

    def __init__(self, write_gate: GateWriter, on_deadline: DeadlineCallback) -> None:
        self.write_gate = write_gate
        self.on_deadline = on_deadline
        self._probing: dict[PodKey, _Probing] = {}
        self._closing: set[PodKey] = set()
        self._background: set[asyncio.Task[None]] = set()  # keeps fire-and-forget tasks referenced
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        for probing in self._probing.values():
            probing.task.cancel()
        if self._session is not None:
            await self._session.close()

    def observe(self, pod: Mapping[str, Any], checks: Sequence[AutoStartCheck], timeout_s: int) -> None:
        """Called on every event of an instance pod; starts or stops work for it as needed."""
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        action = gate_action(pod)
        started_at = main_container_started_at(pod)
        current = self._probing.get(key)
        if current is not None and (action != "probe" or current.started_at != started_at):
            current.task.cancel()
            del self._probing[key]
            current = None
        if action == "close" and key not in self._closing:
            self._closing.add(key)
            task = asyncio.create_task(self._close(key, pod))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif action == "probe" and current is None:
            pod_ip = (pod.get("status") or {}).get("podIP")
            if pod_ip:
                task = asyncio.create_task(
                    self._probe_until_open(key, pod_ip, list(checks), started_at, timeout_s)
                )
                self._probing[key] = _Probing(task, started_at)

    def forget(self, namespace: str, name: str) -> None:
        probing = self._probing.pop((namespace, name), None)
        if probing is not None:
            probing.task.cancel()

    async def _close(self, key: PodKey, pod: Mapping[str, Any]) -> None:
        try:
            reason, message = _close_reason(pod)
            await self.write_gate(key[0], key[1], False, reason, message, datetime.datetime.now(datetime.UTC))
        finally:
            self._closing.discard(key)

    async def _probe_until_open(
        self,
        key: PodKey,
        pod_ip: str,
        checks: list[AutoStartCheck],
        started_at: datetime.datetime | None,
        timeout_s: int,
    ) -> None:
        deadline = (started_at or datetime.datetime.now(datetime.UTC)) + datetime.timedelta(seconds=timeout_s)
        deadline_reported = False
        try:
            while True:
                round_started = datetime.datetime.now(datetime.UTC)
                failing = await failing_checks(self.session, pod_ip, checks)
                if not failing:
                    await self.write_gate(
                        key[0],
                        key[1],
                        True,
                        "AutoStartComplete",
                        f"all {len(checks)} auto-start checks passed",
                        round_started,
                    )
                    return
                if not deadline_reported and datetime.datetime.now(datetime.UTC) > deadline:
                    deadline_reported = True
                    await self.on_deadline(key[0], key[1])
                await asyncio.sleep(PROBE_INTERVAL_S)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("auto-start probing of %s/%s failed; the next pod event retries", *key)
        finally:
            current = self._probing.get(key)
            if current is not None and current.task is asyncio.current_task():
                del self._probing[key]


def _close_reason(pod: Mapping[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating", "the instance is being stopped"
    if (meta.get("annotations") or {}).get(BUSY_ANNOTATION) == "true":
        return "Busy", f"{BUSY_ANNOTATION}=true"
    return "ContainerRestarted", "the main container restarted; auto-start checks run again"
