"""The e2e tests' cuttable proxy: it forwards, a cut resets open connections and refuses new ones,
and a restore serves again on the same port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import CuttableProxy


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(
                target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(1024), b"")]
            ).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()
    server.close()


def _roundtrip(port: int, data: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(data)
        return s.recv(1024)


def test_forwards_then_cut_refuses_and_resets_then_restore_serves_again(echo: tuple[str, int]) -> None:
    with CuttableProxy(echo) as proxy:
        assert _roundtrip(proxy.port) == b"ping"
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        held.sendall(b"a")
        assert held.recv(16) == b"a"

        proxy.cut()
        assert held.recv(16) == b""  # the open connection was closed under the client
        held.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2)

        port = proxy.port
        proxy.restore()
        assert proxy.port == port
        assert _roundtrip(proxy.port, b"back") == b"back"
        assert proxy.connections == 3
