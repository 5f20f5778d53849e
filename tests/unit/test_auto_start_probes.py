"""The auto-start probes against real sockets on the loopback interface, and the gate driven end to end.

Nothing here is mocked except `write_gate` / `on_deadline` of AutoStartGate, which stand for the
API calls; every probe is a real TCP connect or HTTP GET to a real server on 127.0.0.1 (or ::1).
pytest-asyncio is not used: each test runs its scenario with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import datetime
import select
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vmrole_operator import constants as c
from vmrole_operator.auto_start import PROBE_INTERVAL_S, AutoStartGate, failing_checks, http_check, tcp_check
from vmrole_operator.models import AutoStartCheck

LOOPBACK = "127.0.0.1"
LIMIT_S = 0.5
SLACK_S = 1.0  # scheduling slack on a busy test machine
NAMESPACE = "default"
POD = "web-7d9c5b6f4-x2k4p"


# --- servers ---


def _refusing_socket(host: str = LOOPBACK) -> socket.socket:
    """A socket bound to a free port but not listening: connections to the port are refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    return sock


@contextmanager
def refused_port() -> Iterator[int]:
    sock = _refusing_socket()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def _status(request: web.Request) -> web.Response:
    status = int(request.match_info["status"])
    if status in (301, 302, 303, 307, 308):
        return web.Response(status=status, headers={"Location": "/status/404"})
    return web.Response(status=status, text=None if status == 204 else f"status {status}")


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def _app() -> web.Application:
    app = web.Application()
    app.router.add_get("/status/{status}", _status)
    app.router.add_get("/healthz", _healthz)
    return app


@asynccontextmanager
async def http_server(
    host: str = LOOPBACK, sock: socket.socket | None = None, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """An aiohttp server: /status/<code> answers <code>, /healthz answers 200. Yields its port."""
    runner = web.AppRunner(_app())
    await runner.setup()
    site: web.BaseSite
    if sock is not None:
        site = web.SockSite(runner, sock, ssl_context=ssl_context)
    else:
        site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
    try:
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and reads requests, but never answers."""
    connections: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(swallow, LOOPBACK, 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


@contextmanager
def full_backlog() -> Iterator[int]:
    """A listening socket that never accepts, its accept queue filled: new connects get no answer at all."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    clients: list[socket.socket] = []
    try:
        for _ in range(64):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.setblocking(False)
            clients.append(client)
            client.connect_ex((LOOPBACK, port))
            _, writable, _ = select.select([], [client], [], 0.2)
            if not writable:
                break  # this connect is left hanging: the queue is full
        else:
            pytest.fail("the accept queue never filled up")
        yield port
    finally:
        for client in clients:
            client.close()
        listener.close()


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "instance.invalid")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("instance.invalid")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def _ipv6_loopback() -> bool:
    try:
        _refusing_socket("::1").close()
    except OSError:
        return False
    return True


async def timed(probe: Awaitable[bool]) -> tuple[bool, float]:
    start = time.monotonic()
    result = await probe
    return result, time.monotonic() - start


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 30))


async def get(port: int, path: str) -> bool:
    """http_check of http://127.0.0.1:<port><path> with a fresh session."""
    async with aiohttp.ClientSession() as session:
        return await http_check(session, LOOPBACK, port, path, "HTTP", LIMIT_S)


# --- tcp_check ---


def test_tcp_check_passes_for_a_listening_server() -> None:
    async def scenario() -> bool:
        server = await asyncio.start_server(lambda _r, w: w.close(), LOOPBACK, 0)
        async with server:
            return await tcp_check(LOOPBACK, server.sockets[0].getsockname()[1], LIMIT_S)

    assert run(scenario) is True


def test_tcp_check_fails_fast_for_a_closed_port() -> None:
    with refused_port() as port:
        ok, elapsed = run(lambda: timed(tcp_check(LOOPBACK, port, 5.0)))
    assert ok is False
    assert elapsed < 1.0  # refused, not timed out


def test_tcp_check_fails_within_its_limit_when_nobody_answers() -> None:
    with full_backlog() as port:
        ok, elapsed = run(lambda: timed(tcp_check(LOOPBACK, port, LIMIT_S)))
    assert ok is False
    assert LIMIT_S * 0.9 <= elapsed < LIMIT_S + SLACK_S


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_tcp_check_speaks_ipv6() -> None:
    async def scenario() -> bool:
        server = await asyncio.start_server(lambda _r, w: w.close(), "::1", 0)
        async with server:
            return await tcp_check("::1", server.sockets[0].getsockname()[1], LIMIT_S)

    assert run(scenario) is True


# --- http_check ---


@pytest.mark.parametrize(
    ("status", "passes"),
    [(200, True), (204, True), (302, True), (399, True), (404, False), (500, False), (503, False)],
)
def test_http_check_passes_for_2xx_and_3xx_only(status: int, passes: bool) -> None:
    async def scenario() -> bool:
        async with http_server() as port:
            return await get(port, f"/status/{status}")

    assert run(scenario) is passes


def test_http_check_does_not_follow_redirects() -> None:
    """302 to a path that would answer 404 still passes: like the kubelet, the 3xx itself counts."""

    async def scenario() -> bool:
        async with http_server() as port:
            return await get(port, "/status/302")

    assert run(scenario) is True


def test_http_check_fails_for_a_closed_port() -> None:
    with refused_port() as port:
        assert run(lambda: get(port, "/healthz")) is False


def test_http_check_fails_within_its_limit_when_the_server_never_answers() -> None:
    async def scenario() -> tuple[bool, float]:
        async with silent_server() as port, aiohttp.ClientSession() as session:
            return await timed(http_check(session, LOOPBACK, port, "/healthz", "HTTP", LIMIT_S))

    ok, elapsed = run(scenario)
    assert ok is False
    assert LIMIT_S * 0.9 <= elapsed < LIMIT_S + SLACK_S


def test_https_check_does_not_verify_the_certificate(tmp_path: Path) -> None:
    context = self_signed(tmp_path)

    async def scenario() -> tuple[bool, bool]:
        async with http_server(ssl_context=context) as port, aiohttp.ClientSession() as session:
            https = await http_check(session, LOOPBACK, port, "/healthz", "HTTPS", LIMIT_S)
            plain = await http_check(session, LOOPBACK, port, "/healthz", "HTTP", LIMIT_S)
            return https, plain

    assert run(scenario) == (True, False)


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_http_check_speaks_ipv6() -> None:
    async def scenario() -> bool:
        async with http_server("::1") as port, aiohttp.ClientSession() as session:
            return await http_check(session, "::1", port, "/healthz", "HTTP", LIMIT_S)

    assert run(scenario) is True


# --- failing_checks ---


def check(name: str, port: int, path: str | None = None) -> AutoStartCheck:
    kind: dict[str, Any] = (
        {"httpGet": {"port": port, "path": path}} if path is not None else {"tcpSocket": {"port": port}}
    )
    return AutoStartCheck.model_validate({"name": name, **kind})


def test_failing_checks_names_only_the_failing_ones() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        with refused_port() as closed:
            async with http_server() as port, aiohttp.ClientSession() as session:
                checks = [
                    check("tcp-open", port),
                    check("tcp-closed", closed),
                    check("ok", port, "/status/200"),
                    check("missing", port, "/status/404"),
                    check("moved", port, "/status/302"),
                    check("broken", port, "/status/500"),
                    check("http-closed", closed, "/healthz"),
                ]
                return (
                    await failing_checks(session, LOOPBACK, checks),
                    await failing_checks(session, LOOPBACK, checks[::2]),
                )

    all_checks, some = run(scenario)
    assert all_checks == ["tcp-closed", "missing", "broken", "http-closed"]
    assert some == ["http-closed"]  # tcp-open, ok, moved pass


def test_failing_checks_of_no_checks_is_empty() -> None:
    async def scenario() -> list[str]:
        async with aiohttp.ClientSession() as session:
            return await failing_checks(session, LOOPBACK, [])

    assert run(scenario) == []


# --- AutoStartGate, end to end in-process ---

Write = tuple[str, str, bool, str, str]


def _ts(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def instance_pod(
    *,
    started: datetime.datetime,
    gate: tuple[bool, datetime.datetime] | None = None,
    restarted: datetime.datetime | None = None,
) -> dict[str, Any]:
    """An instance pod as the API returns it: setup exited 0, main container running since `started`.

    `gate` is the auto-start condition (status, lastTransitionTime), absent when None; with
    `restarted`, the main container exited and runs again since that moment (restartCount 1).
    """
    created = started - datetime.timedelta(seconds=6)
    running_since = restarted or started
    main: dict[str, Any] = {
        "name": c.MAIN_CONTAINER,
        "image": "localhost/vmrole-test/web@sha256:" + "fd" * 32,
        "imageID": "localhost/vmrole-test/web@sha256:" + "fd" * 32,
        "containerID": "containerd://" + "cd" * 32,
        "ready": False,
        "started": True,
        "restartCount": 0,
        "state": {"running": {"startedAt": _ts(running_since)}},
        "lastState": {},
    }
    if restarted is not None:
        main["restartCount"] = 1
        main["lastState"] = {
            "terminated": {
                "exitCode": 137,
                "reason": "Error",
                "startedAt": _ts(started),
                "finishedAt": _ts(restarted - datetime.timedelta(seconds=1)),
                "containerID": "containerd://" + "ab" * 32,
            }
        }
    conditions: list[dict[str, Any]] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": _ts(created)},
        {"type": "Initialized", "status": "True", "lastTransitionTime": _ts(started)},
        {
            "type": "Ready",
            "status": "False",
            "reason": "ReadinessGatesNotReady",
            "message": (
                f'corresponding condition of pod readiness gate "{c.AUTO_START_CONDITION}" does not exist.'
            ),
            "lastTransitionTime": _ts(created),
        },
    ]
    if gate is not None:
        conditions.append(
            {
                "type": c.AUTO_START_CONDITION,
                "status": "True" if gate[0] else "False",
                "reason": "AutoStartComplete" if gate[0] else "ContainerRestarted",
                "message": "all 2 auto-start checks passed" if gate[0] else "auto-start checks run again",
                "lastTransitionTime": _ts(gate[1]),
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": POD,
            "generateName": "web-7d9c5b6f4-",
            "namespace": NAMESPACE,
            "uid": "0c7d2a4e-5b1f-4f55-9a8e-1f2a3b4c5d6e",
            "creationTimestamp": _ts(created),
            "labels": {c.ROLE_LABEL: "web", "pod-template-hash": "7d9c5b6f4"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9c5b6f4", "controller": True}
            ],
        },
        "spec": {
            "nodeName": "vmrole-node",
            "readinessGates": [{"conditionType": c.AUTO_START_CONDITION}],
            "initContainers": [
                {"name": c.SETUP_CONTAINER, "image": main["image"], "command": ["/bin/setup"]}
            ],
            "containers": [{"name": c.MAIN_CONTAINER, "image": main["image"]}],
        },
        "status": {
            "phase": "Running",
            "podIP": LOOPBACK,
            "podIPs": [{"ip": LOOPBACK}],
            "hostIP": "192.0.2.2",
            "startTime": _ts(created),
            "conditions": conditions,
            "initContainerStatuses": [
                {
                    "name": c.SETUP_CONTAINER,
                    "image": main["image"],
                    "imageID": main["imageID"],
                    "ready": True,
                    "started": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": _ts(created + datetime.timedelta(seconds=2)),
                            "finishedAt": _ts(started - datetime.timedelta(seconds=1)),
                        }
                    },
                    "lastState": {},
                }
            ],
            "containerStatuses": [main],
        },
    }


class Recorder:
    """The API calls AutoStartGate makes, recorded with the moment they were made."""

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self.write_times: list[float] = []
        self.deadlines: list[tuple[str, str]] = []

    async def write_gate(
        self, namespace: str, name: str, is_open: bool, reason: str, message: str, as_of: datetime.datetime
    ) -> None:
        assert as_of.tzinfo is not None
        assert as_of <= datetime.datetime.now(datetime.UTC)
        self.write_times.append(time.monotonic())
        await asyncio.sleep(0.05)  # an API round trip: events may arrive meanwhile
        self.writes.append((namespace, name, is_open, reason, message))

    async def on_deadline(self, namespace: str, name: str) -> None:
        self.deadlines.append((namespace, name))


async def until(condition: Callable[[], object], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit_s}s waiting for {what}")
        await asyncio.sleep(0.02)


def test_gate_opens_once_when_the_checks_start_passing_and_closes_when_stale() -> None:
    async def scenario() -> None:
        calls = Recorder()
        gate = AutoStartGate(calls.write_gate, calls.on_deadline)
        sock = _refusing_socket()
        port = sock.getsockname()[1]
        checks = [check("http", port), check("health", port, "/healthz")]
        # The instance's history, as the later pod snapshots tell it: the main container started
        # 60 s ago, the gate opened 50 s ago, the container crashed and runs again since 5 s ago.
        now = datetime.datetime.now(datetime.UTC)
        started, opened, restarted = (now - datetime.timedelta(seconds=s) for s in (60, 50, 5))
        pod = instance_pod(started=started)
        listening_since: list[float] = []

        async def serve_later() -> None:
            await asyncio.sleep(0.5)
            listening_since.append(time.monotonic())
            async with http_server(sock=sock):
                await asyncio.Event().wait()

        server = asyncio.create_task(serve_later())
        try:
            gate.observe(pod, checks, 300)
            gate.observe(pod, checks, 300)  # the same pod again (another event): still one probing task
            await until(lambda: calls.write_times, 10, "the gate to be written open")
            assert listening_since
            assert calls.write_times[0] >= listening_since[0]  # not before both checks could pass
            gate.observe(pod, checks, 300)  # an event from before the write, while it is under way
            await asyncio.sleep(4 * PROBE_INTERVAL_S)
            assert calls.writes == [
                (NAMESPACE, POD, True, "AutoStartComplete", "all 2 auto-start checks passed")
            ]
            assert calls.deadlines == []

            # The API shows the gate open, earned by the current run: nothing to do.
            gate.observe(instance_pod(started=started, gate=(True, opened)), checks, 300)
            await asyncio.sleep(2 * PROBE_INTERVAL_S)
            assert len(calls.writes) == 1

            # The main container restarted after the gate opened: the gate is stale and must close.
            stale = instance_pod(started=started, gate=(True, opened), restarted=restarted)
            gate.observe(stale, checks, 300)
            gate.observe(stale, checks, 300)  # a second event while the close is under way
            await until(lambda: len(calls.writes) >= 2, 5, "the stale gate to be closed")
            await asyncio.sleep(2 * PROBE_INTERVAL_S)
            assert calls.writes[1:] == [
                (
                    NAMESPACE,
                    POD,
                    False,
                    "ContainerRestarted",
                    "the main container restarted; auto-start checks run again",
                )
            ]

            # Closed, and the checks (still) pass: the gate reopens, once.
            closed = instance_pod(started=started, gate=(False, now), restarted=restarted)
            gate.observe(closed, checks, 300)
            await until(lambda: len(calls.writes) >= 3, 5, "the gate to reopen")
            await asyncio.sleep(2 * PROBE_INTERVAL_S)
            assert [write[2] for write in calls.writes] == [True, False, True]
        finally:
            server.cancel()
            await gate.close()
            sock.close()

    run(scenario)


def test_gate_reports_the_deadline_once_and_forget_stops_probing() -> None:
    async def scenario() -> None:
        calls = Recorder()
        gate = AutoStartGate(calls.write_gate, calls.on_deadline)
        sock = _refusing_socket()
        port = sock.getsockname()[1]
        started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
        try:
            gate.observe(instance_pod(started=started), [check("http", port)], 2)
            await until(lambda: calls.deadlines, 5, "the auto-start deadline to be reported")
            await asyncio.sleep(3 * PROBE_INTERVAL_S)
            assert calls.deadlines == [(NAMESPACE, POD)]

            gate.forget(NAMESPACE, POD)
            async with http_server(sock=sock):  # the checks would pass now, but nobody probes
                await asyncio.sleep(3 * PROBE_INTERVAL_S)
            assert calls.writes == []
        finally:
            await gate.close()
            sock.close()

    run(scenario)


def test_gate_does_not_probe_a_pod_without_an_ip_or_with_setup_still_running() -> None:
    async def scenario() -> None:
        calls = Recorder()
        gate = AutoStartGate(calls.write_gate, calls.on_deadline)
        try:
            async with http_server() as port:
                started = datetime.datetime.now(datetime.UTC)
                no_ip = instance_pod(started=started)
                del no_ip["status"]["podIP"], no_ip["status"]["podIPs"]
                in_setup = instance_pod(started=started)
                in_setup["status"]["initContainerStatuses"][0]["state"] = {
                    "running": {"startedAt": _ts(started)}
                }
                for pod in (no_ip, in_setup):
                    gate.observe(pod, [check("http", port)], 300)
                await asyncio.sleep(3 * PROBE_INTERVAL_S)
            assert calls.writes == []
        finally:
            await gate.close()

    run(scenario)
