"""A real `akoflow serve` process on loopback, for tests and the benchmark.

Its environment routes https/http webhooks through a closed loopback port (`https_proxy`),
so a workflow whose spec names an outside webhook (seed 001's does) never sends a packet
off this machine; loopback addresses stay direct (`no_proxy`).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # discard port: nothing listens, so nothing leaves


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path) -> dict[str, str]:
    return {**os.environ, "AKOFLOW_HOME": str(home), "AKOFLOW_SAMPLE_INTERVAL": "0.2",
            "https_proxy": CLOSED_PORT_PROXY, "http_proxy": CLOSED_PORT_PROXY,
            "HTTPS_PROXY": CLOSED_PORT_PROXY, "HTTP_PROXY": CLOSED_PORT_PROXY,
            "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}


@dataclass
class Served:
    home: Path
    port: int
    proc: subprocess.Popen[bytes]
    token: str
    log: Path
    scheme: str = "http"
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def client(self, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        c = httpx.Client(base_url=self.url, headers=headers, timeout=60, trust_env=False,
                         **kw)
        self.clients.append(c)
        return c

    def submit_yaml(self, text: str) -> int:
        b64 = base64.b64encode(text.encode()).decode()
        r = self.client().post("/akoflow-api/workflows/", json={"workflow": b64})
        assert r.status_code == 200, r.text
        return int(r.json()["workflow_id"])

    def wait_status(self, wf_id: int, timeout: float = 120) -> dict[str, Any]:
        """Poll GET /akoflow-api/workflows/{id}/ until the workflow ended."""
        c = self.client()
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = c.get(f"/akoflow-api/workflows/{wf_id}/").json()
            if body["state"] in ("FINISHED", "FAILED", "CANCELLED"):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"workflow {wf_id} still {body['state']}")
            time.sleep(0.2)

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_server(home: Path, *args: str, scheme: str = "http",
                 env: dict[str, str] | None = None) -> Served:
    """Start `akoflow serve` and wait until it answers."""
    port = free_port()
    log = home.parent / f"serve-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "akoflow", "serve", "--port", str(port), *args],
            stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
            env=env or server_env(home))
    token = (home / "server" / "token")
    srv = Served(home, port, proc, "", log, scheme)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"akoflow serve exited {proc.returncode}:\n{log.read_text()}")
        if token.exists() and token.read_text().strip():
            srv.token = token.read_text().strip()
            try:
                with httpx.Client(verify=False, trust_env=False) as c:
                    r = c.get(f"{srv.url}/akoflow-server/check-service/",
                              headers={"Authorization": f"Bearer {srv.token}"}, timeout=2)
                if r.status_code == 200:
                    return srv
            except httpx.HTTPError:
                pass
        if time.monotonic() > deadline:
            srv.stop()
            raise AssertionError(f"akoflow serve did not answer:\n{log.read_text()}")
        time.sleep(0.1)
