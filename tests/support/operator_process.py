"""The operator under test, run as a real local process (`python -m vmrole_operator`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorLog:
    """Reading an operator's log file from an offset (local process or deployed pod)."""

    log_path: Path

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def tracebacks_since(self, offset: int) -> list[str]:
        """Log lines after `offset` that carry a traceback: an error the operator did not expect."""
        return [line[:2000] for line in self.log_since(offset).splitlines() if "Traceback" in line]

    def handled(self, offset: int, namespace: str, name: str) -> bool:
        """The operator logged, after `offset`, that it reconciled the role: proof that it has seen
        the role as it was then, when nothing else it does is visible (its JSON log)."""
        return f"{namespace}/{name}" in self.reconciled(offset)

    def reconciled(self, offset: int) -> list[str]:
        """`namespace/name` of every role reconciled after `offset`, in order."""
        found = []
        for line in self.log_since(offset).splitlines():
            try:
                message = str(json.loads(line).get("message", ""))
            except (ValueError, AttributeError):
                continue
            if message.startswith("reconciled "):
                found.append(message.removeprefix("reconciled "))
        return found


class OperatorProcess(OperatorLog):
    def __init__(
        self,
        log_path: Path,
        namespaces: str = "",
        webhook: tuple[str, str] | None = None,
        kubeconfig: Path | None = None,
    ) -> None:
        """`webhook`: the MutatingWebhookConfiguration it keeps, and the namespace label it serves;
        `kubeconfig`: how it reaches the API server, if not as the tests do ($KUBECONFIG)."""
        self.log_path = log_path
        self.namespaces = namespaces
        self.webhook = webhook
        self.kubeconfig = kubeconfig
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "VMROLE_LIVENESS": self.liveness_url,
            "PYTHONPATH": str(REPO / "operator"),
            "VMROLE_LOG_FORMAT": "json",
            "VMROLE_NAMESPACES": self.namespaces,
        }
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        if self.webhook is not None:
            config, selector = self.webhook
            # The API server reaches this process on the host: through loopback on the local
            # cluster, through the address the cluster's env file names elsewhere (kind).
            host = os.environ.get("VMROLE_E2E_WEBHOOK_HOST", "127.0.0.1")
            env |= {
                "VMROLE_WEBHOOK_CONFIG": config,
                "VMROLE_WEBHOOK_NAMESPACE_SELECTOR": selector,
                "VMROLE_WEBHOOK_LISTEN": f"{'127.0.0.1' if host == '127.0.0.1' else '0.0.0.0'}:0",
                "VMROLE_WEBHOOK_HOST": host,
            }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vmrole_operator"], stdout=log, stderr=log, env=env, cwd=REPO
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.liveness_url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the operator's liveness endpoint never answered; see {self.log_path}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
