"""Test helpers: a real HTTP receiver on 127.0.0.1, a manifest driven through its API.

A uniquely named module (not `conftest`) so `import` cannot pick up another directory's
conftest."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from akoflow.manifest import Intent, Manifest
from akoflow.port import AttemptOutcome, Resources
from akoflow.spec.models import ActivitySpec, WorkflowSpec


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST; `codes` is consumed one per request (then 200)."""

    port: int
    hits: list[Hit] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    delay: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.delay:
                    receiver.release.wait(receiver.delay)
                with receiver.lock:
                    receiver.hits.append(Hit(self.path, dict(self.headers.items()), body))
                    code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/moved")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self) -> list[Hit]:
        """Hits with duplicates (same Idempotency-Key) dropped, first arrival kept."""
        seen: set[str] = set()
        out = []
        for h in self.hits:
            key = h.headers["Idempotency-Key"]
            if key not in seen:
                seen.add(key)
                out.append(h)
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RAW_YAML = """name: wf
spec:
  runtime: local
  namespace: science
  webhooks:
    - name: h
      url: http://127.0.0.1/hook
  activities:
    - name: a
      run: echo a
"""


def make_spec(hooks: list[dict[str, Any]], *, retries: int = 0) -> WorkflowSpec:
    """a -> b, a -> c, (b, c) -> d: every event kind with several parents."""
    return WorkflowSpec(
        name="wf", namespace="science", runtime="local", image="img.sif",
        webhooks=hooks, raw=RAW_YAML,
        activities=[
            ActivitySpec(name="a", run="echo a", resources={"cpu": 0.5, "memory": 4 << 30}),
            ActivitySpec(name="b", run="echo b", depends_on=["a"]),
            ActivitySpec(name="c", run="echo c", depends_on=["a"], retries=retries),
            ActivitySpec(name="d", run="echo d", depends_on=["b", "c"]),
        ],
    )


def run_activity(m: Manifest, wf_id: int, name: str, *, exit_code: int = 0) -> None:
    """One attempt of `name`, from READY to a reported outcome."""
    act = m.activity_named(wf_id, name)
    assert act is not None and act.status == "READY", act
    number = act.attempts + 1
    (attempt_id,) = m.begin_attempts(wf_id, [Intent(
        activity_id=act.id, number=number, site="local",
        job_name=f"akoflow.{wf_id}.{name}.{number}", attempt_dir="/tmp/x",
        resources=Resources.from_json(act.resources), node="n1", job_id=f"job-{name}-{number}",
    )])
    assert attempt_id is not None
    now = time.time()
    m.complete_attempt(wf_id, attempt_id, AttemptOutcome(
        exit_code=exit_code, reason=None if exit_code == 0 else "EXIT",
        started_at=now - 2, finished_at=now, node="n1",
    ))


def make_due(m: Manifest) -> None:
    """Let time pass for the backoff (tests do not sleep through it)."""
    with m.transaction() as c:
        c.execute("UPDATE outbox SET next_try_at=0 WHERE delivered_at IS NULL")
