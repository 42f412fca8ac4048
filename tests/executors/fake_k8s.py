"""A small fake Kubernetes API server for contract tests (no real cluster runs here).

stdlib `http.server` in a thread, JSON in and out, implementing exactly the endpoints the
Kubernetes executor uses. Jobs move through canned states, one step per Job *list* call
(the executor's poll), as a `Plan` says; every request is recorded for assertions. It is a
contract fake: it checks what we send and replays what a real API server answers, it does
not run containers.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

Obj = dict[str, Any]


@dataclass
class Plan:
    """What happens to a Job: `pending` list calls waiting, then running until list call
    number `after`, then it ends `complete` or `failed`."""

    outcome: str = "complete"  # complete | failed
    after: int = 2
    pending: int = 0
    exit_code: int = 0
    container_reason: str = "Completed"  # Completed | Error | OOMKilled
    job_reason: str = "BackoffLimitExceeded"  # or DeadlineExceeded
    log: str | None = None  # default: "ran <job name>"
    pod_gone: bool = False  # the pod is deleted when the Job ends (deadline kills)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class FakeK8s:
    """State of the fake cluster; drive it from tests, read `requests` afterwards."""

    namespaces: set[str] = field(default_factory=lambda: {"default"})
    nodes: list[Obj] = field(default_factory=list)
    plans: dict[str, Plan] = field(default_factory=dict)  # by akoflow.activity label
    default_plan: Plan = field(default_factory=Plan)
    fail_with: int | None = None  # answer every request with this HTTP status
    forbid_cluster_scope: bool = False  # 403 on all-namespace lists
    requests: list[Request] = field(default_factory=list)
    jobs: dict[tuple[str, str], Obj] = field(default_factory=dict)
    pods: dict[tuple[str, str], Obj] = field(default_factory=dict)
    pvcs: dict[tuple[str, str], Obj] = field(default_factory=dict)
    ticks: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeK8s:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = json.loads(raw) if raw else None
                code, payload = fake.handle(self.command, url.path, query, body)
                data = payload.encode() if isinstance(payload, str) else \
                    json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if isinstance(payload, str)
                                 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_node(self, name: str, cpu: str = "4", memory: str = "8Gi", *, ready: bool = True,
                 unschedulable: bool = False, labels: dict[str, str] | None = None) -> None:
        self.nodes.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "spec": {"unschedulable": unschedulable},
            "status": {"allocatable": {"cpu": cpu, "memory": memory},
                       "conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]},
        })

    def calls(self, method: str, pattern: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # -- dispatch -------------------------------------------------------------------------
    def handle(self, method: str, path: str, q: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(Request(method, path, q, body))
            if self.fail_with is not None:
                return _status(self.fail_with, "injected failure")
            for (verb, pattern), fn in ROUTES.items():
                m = re.fullmatch(pattern, path)
                if m and verb == method:
                    result: tuple[int, Any] = fn(self, q, body, *m.groups())
                    return result
            return _status(404, f"no route {method} {path}")

    def read_namespace(self, q: dict[str, str], body: Any, ns: str) -> tuple[int, Any]:
        if ns not in self.namespaces:
            return _status(404, f'namespaces "{ns}" not found')
        return 200, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}

    def create_namespace(self, q: dict[str, str], body: Obj) -> tuple[int, Any]:
        name = body["metadata"]["name"]
        if name in self.namespaces:
            return _status(409, "already exists")
        self.namespaces.add(name)
        return 201, body

    def create_pvc(self, q: dict[str, str], body: Obj, ns: str) -> tuple[int, Any]:
        key = (ns, body["metadata"]["name"])
        if ns not in self.namespaces:
            return _status(404, f'namespaces "{ns}" not found')
        if key in self.pvcs:
            return _status(409, "already exists")
        self.pvcs[key] = _created(body, ns)
        return 201, self.pvcs[key]

    def create_job(self, q: dict[str, str], body: Obj, ns: str) -> tuple[int, Any]:
        key = (ns, body["metadata"]["name"])
        if ns not in self.namespaces:
            return _status(404, f'namespaces "{ns}" not found')
        if key in self.jobs:
            return _status(409, "already exists")
        job = _created(body, ns)
        job["status"] = {}
        self.jobs[key] = job
        self.ticks[key] = 0
        tmpl = body["spec"]["template"]
        pod: Obj = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"{key[1]}-x7k2p", "namespace": ns,
                            "labels": dict(tmpl["metadata"]["labels"]),
                            "creationTimestamp": _now()},
               "spec": {**tmpl["spec"], "nodeName": tmpl["spec"].get("nodeName", "node-1")},
               "status": {"phase": "Pending"}}
        self.pods[(ns, pod["metadata"]["name"])] = pod
        return 201, job

    def list_jobs(self, q: dict[str, str], body: Any, ns: str | None = None) -> tuple[int, Any]:
        if ns is None and self.forbid_cluster_scope:
            return _status(403, "jobs.batch is forbidden at the cluster scope")
        items = []
        for key, job in self.jobs.items():
            if (ns is None or key[0] == ns) and _selected(job, q.get("labelSelector", "")):
                self._tick(key)
                items.append(job)
        return 200, {"apiVersion": "batch/v1", "kind": "JobList", "metadata": {},
                     "items": items}

    def list_all_jobs(self, q: dict[str, str], body: Any) -> tuple[int, Any]:
        return self.list_jobs(q, body, None)

    def delete_job(self, q: dict[str, str], body: Any, ns: str, name: str) -> tuple[int, Any]:
        if self.jobs.pop((ns, name), None) is None:
            return _status(404, f'jobs.batch "{name}" not found')
        if (q.get("propagationPolicy") or (body or {}).get("propagationPolicy")) in (
                "Background", "Foreground"):
            for key in [k for k, p in self.pods.items()
                        if k[0] == ns and p["metadata"]["labels"].get("akoflow.job") == name]:
                del self.pods[key]
        return 200, {"apiVersion": "v1", "kind": "Status", "status": "Success"}

    def list_pods(self, q: dict[str, str], body: Any, ns: str | None = None) -> tuple[int, Any]:
        if ns is None and self.forbid_cluster_scope:
            return _status(403, "pods is forbidden at the cluster scope")
        items = [p for k, p in self.pods.items()
                 if (ns is None or k[0] == ns) and _selected(p, q.get("labelSelector", ""))
                 and _phase_ok(p, q.get("fieldSelector", ""))]
        return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}

    def list_all_pods(self, q: dict[str, str], body: Any) -> tuple[int, Any]:
        return self.list_pods(q, body, None)

    def pod_log(self, q: dict[str, str], body: Any, ns: str, name: str) -> tuple[int, Any]:
        pod = self.pods.get((ns, name))
        if pod is None:
            return _status(404, f'pods "{name}" not found')
        if q.get("container") not in (None, pod["spec"]["containers"][0]["name"]):
            return _status(400, "container not valid for pod")
        job = pod["metadata"]["labels"].get("akoflow.job", "")
        text = self._plan(pod).log
        return 200, f"ran {job}\n" if text is None else text

    def list_nodes(self, q: dict[str, str], body: Any) -> tuple[int, Any]:
        return 200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {},
                     "items": self.nodes}

    # -- canned transitions ---------------------------------------------------------------
    def _plan(self, obj: Obj) -> Plan:
        act = obj["metadata"].get("labels", {}).get("akoflow.activity", "")
        return self.plans.get(act, self.default_plan)

    def _tick(self, key: tuple[str, str]) -> None:
        job = self.jobs[key]
        if (job["status"].get("conditions") or []):
            return
        self.ticks[key] += 1
        n, plan = self.ticks[key], self._plan(job)
        pod_key = next((k for k, p in self.pods.items() if k[0] == key[0]
                        and p["metadata"]["labels"].get("akoflow.job") == key[1]), None)
        pod = self.pods.get(pod_key) if pod_key else None
        if n <= plan.pending:
            job["status"] = {"active": 1, "ready": 0}
            return
        if n < plan.after:
            job["status"] = {"active": 1, "ready": 1, "startTime": _now()}
            if pod is not None:
                pod["status"] = {"phase": "Running", "containerStatuses": [_cs(
                    pod, {"running": {"startedAt": _now()}})]}
            return
        ok = plan.outcome == "complete"
        start = job["status"].get("startTime") or _now()
        cond = {"type": "Complete", "status": "True"} if ok else {
            "type": "Failed", "status": "True", "reason": plan.job_reason,
            "message": "Job has reached the specified backoff limit"
            if plan.job_reason == "BackoffLimitExceeded" else "Job was active longer than "
            "specified deadline"}
        job["status"] = {"startTime": start, "conditions": [cond],
                         "succeeded" if ok else "failed": 1}
        if ok:
            job["status"]["completionTime"] = _now()
        if pod is not None and pod_key is not None:
            if plan.pod_gone:
                del self.pods[pod_key]
                return
            pod["status"] = {"phase": "Succeeded" if ok else "Failed", "containerStatuses": [
                _cs(pod, {"terminated": {"exitCode": plan.exit_code,
                                         "reason": plan.container_reason,
                                         "startedAt": start, "finishedAt": _now()}})]}


ROUTES: dict[tuple[str, str], Any] = {
    ("GET", r"/api/v1/namespaces/([^/]+)"): FakeK8s.read_namespace,
    ("POST", r"/api/v1/namespaces"): FakeK8s.create_namespace,
    ("POST", r"/api/v1/namespaces/([^/]+)/persistentvolumeclaims"): FakeK8s.create_pvc,
    ("POST", r"/apis/batch/v1/namespaces/([^/]+)/jobs"): FakeK8s.create_job,
    ("GET", r"/apis/batch/v1/namespaces/([^/]+)/jobs"): FakeK8s.list_jobs,
    ("GET", r"/apis/batch/v1/jobs"): FakeK8s.list_all_jobs,
    ("DELETE", r"/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)"): FakeK8s.delete_job,
    ("GET", r"/api/v1/namespaces/([^/]+)/pods"): FakeK8s.list_pods,
    ("GET", r"/api/v1/pods"): FakeK8s.list_all_pods,
    ("GET", r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log"): FakeK8s.pod_log,
    ("GET", r"/api/v1/nodes"): FakeK8s.list_nodes,
}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _created(body: Obj, ns: str) -> Obj:
    obj: Obj = json.loads(json.dumps(body))
    obj["metadata"].update(namespace=ns, uid=f"uid-{ns}-{obj['metadata']['name']}",
                           creationTimestamp=_now())
    return obj


def _cs(pod: Obj, state: Obj) -> Obj:
    c = pod["spec"]["containers"][0]
    return {"name": c["name"], "image": c["image"], "imageID": f"docker.io/{c['image']}@sha256:"
            + "ab" * 32, "ready": "running" in state, "restartCount": 0, "state": state}


def _status(code: int, message: str) -> tuple[int, Obj]:
    reasons = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists"}
    return code, {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
                  "message": message, "reason": reasons.get(code, "InternalError")}


_IN = re.compile(r"^\s*([^\s!=]+)\s+in\s+\(([^)]*)\)\s*$")


def _selected(obj: Obj, selector: str) -> bool:
    """Equality (`k=v`, `k==v`, `k!=v`) and set (`k in (a,b)`) label selectors."""
    labels = obj["metadata"].get("labels") or {}
    for term in re.split(r",(?![^()]*\))", selector) if selector else []:
        m = _IN.match(term)
        if m:
            if labels.get(m.group(1)) not in {v.strip() for v in m.group(2).split(",")}:
                return False
        elif "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        else:
            k, v = re.split(r"==?", term, maxsplit=1)
            if labels.get(k.strip()) != v.strip():
                return False
    return True


def _phase_ok(pod: Obj, selector: str) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    for term in selector.split(",") if selector else []:
        if term.startswith("status.phase!=") and phase == term.split("!=", 1)[1]:
            return False
    return True
