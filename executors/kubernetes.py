"""KubernetesExecutor: one batch/v1 Job per attempt, through the official `kubernetes` client.

No akoflow worker runs in the pod (the image is the user's, and need not contain Python), so
this executor writes the attempt's files itself when it sees a Job end: the pod's log as
`stdout` (Kubernetes merges the two streams: `stderr` stays empty) and `result.json` from the
container's terminated state. result.json is written before the Job is deleted, and the
dispatcher reads it for any non-active status, so a dispatcher that dies anywhere in between
loses nothing: the next poll finds the Job again (collect again) or finds it gone (GONE →
result.json). Job bodies and the status mapping are pure: executors/kubernetes_manifests.py.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

try:
    import pydantic
    import urllib3
    from kubernetes import client as k8s
    from kubernetes import config as kconfig
    from kubernetes.client.exceptions import ApiException
    from kubernetes.utils import parse_quantity
except ImportError as _exc:  # the optional extra is missing: say what to install
    raise ImportError(f"it needs the Python package {_exc.name!r}: "
                      "pip install 'akoflow[kubernetes]'") from None

from akoflow.port import (
    Executor,
    ExecutorError,
    JobRef,
    JobState,
    JobStatus,
    Node,
    SpecError,
    SubmitError,
    TaskLaunch,
    protocol,
)
from akoflow.port.units import parse_memory

from . import kubernetes_manifests as km

log = logging.getLogger(__name__)
API_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)
ENDED = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.TIMEOUT, JobState.OOM})
Obj = dict[str, Any]


def _qty(value: Any) -> float:
    """A Kubernetes quantity (`500m`, `4Gi`) as a number."""
    return float(parse_quantity(value))  # type: ignore[no-untyped-call]


def _settings(config: Mapping[str, Any]) -> km.Settings:
    mem = config.get("default_memory")
    return km.Settings(
        image=config.get("image"),
        default_memory=None if mem is None else parse_memory(mem),
        node_selector={str(k): str(v) for k, v in (config.get("node_selector") or {}).items()},
        env={str(k): str(v) for k, v in (config.get("env") or {}).items()},
        storage_class=config.get("storage_class"),
        storage_size=str(config.get("storage_size") or "1Gi"),
        access_modes=tuple(config.get("access_modes") or ("ReadWriteMany",)),
        image_pull_policy=config.get("image_pull_policy"),
        service_account=config.get("service_account"),
        gpu_resource=str(config.get("gpu_resource") or "nvidia.com/gpu"),
        allow_host_path=bool(config.get("allow_host_path")),
    )


def api_client(site: str, config: Mapping[str, Any]) -> Any:
    """An ApiClient from the profile: `in_cluster`, or `kubeconfig` (+ `context`), with an
    optional `host` override (tests point it at a fake server)."""
    cfg = k8s.Configuration()
    try:
        if config.get("in_cluster"):
            kconfig.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=cfg)
        elif config.get("kubeconfig") or not config.get("host"):
            path = config.get("kubeconfig")
            kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(Path(path).expanduser()) if path else None,
                context=config.get("context"), client_configuration=cfg)
    except (kconfig.ConfigException, OSError, ValueError, TypeError) as exc:
        raise ExecutorError(f"site {site}: cannot load Kubernetes credentials: {exc}") from None
    if config.get("host"):
        cfg.host = str(config["host"])
    if "verify_ssl" in config:
        cfg.verify_ssl = bool(config["verify_ssl"])
    cfg.retries = int(config.get("api_retries", 0))  # every poll is a retry already
    return k8s.ApiClient(cfg)


def _why(exc: BaseException) -> str:
    """One short line: the HTTP status, or the socket error under urllib3's wrapping."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    text = str(getattr(exc, "reason", None) or exc)
    return text.splitlines()[0].rsplit(": ", 1)[-1] if text else type(exc).__name__


class KubernetesExecutor(Executor):
    kind = "kubernetes"
    shares_work_dir = False
    site_keys = frozenset({
        "access_modes", "allow_host_path", "api_retries", "context", "create_namespace",
        "default_memory", "env", "gpu_resource", "host", "image", "image_pull_policy",
        "in_cluster", "keep_jobs", "kubeconfig", "log_limit_bytes", "namespaces",
        "node_selector", "node_usage", "request_timeout", "service_account", "storage_class",
        "storage_size", "verify_ssl",
    })

    def __init__(self, site: str, config: Mapping[str, Any], api: Any = None) -> None:
        super().__init__(site, config)
        try:
            self.settings = _settings(config)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ExecutorError(f"site {site}: bad kubernetes profile: {exc}") from None
        self.api = api if api is not None else api_client(site, config)
        self.core = k8s.CoreV1Api(self.api)
        self.batch = k8s.BatchV1Api(self.api)
        self.timeout = float(config.get("request_timeout", 30))
        self.create_namespace = bool(config.get("create_namespace", False))
        self.keep_jobs = bool(config.get("keep_jobs", False))
        self.log_limit = int(config.get("log_limit_bytes", 64 << 20))
        self.namespaces: set[str] = {str(n) for n in config.get("namespaces") or []}
        self._ready_ns: set[str] = set()
        self._made_pvcs: set[tuple[str, str]] = set()

    @property
    def _host(self) -> str:
        return str(getattr(self.api.configuration, "host", "?"))

    @property
    def min_poll_interval(self) -> float:
        return float(self.config.get("poll_interval", 2.0))

    def _dict(self, obj: Any) -> Obj:
        out: Obj = self.api.sanitize_for_serialization(obj)
        return out

    # -- submit ---------------------------------------------------------------------------
    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        bodies = [self._bodies(ln) for ln in launches]  # every SpecError before any call
        ids: list[str] = []
        try:
            for ns, pvcs, job in bodies:
                self._ensure_namespace(ns)
                for pvc in pvcs:
                    self._ensure_pvc(ns, pvc)
                name = str(job.metadata.name)
                self._create(partial(self.batch.create_namespaced_job, ns, job,
                                     _request_timeout=self.timeout), "job", name)
                ids.append(f"{ns}/{name}")
        except SubmitError:
            if ids:  # all or nothing: the dispatcher resubmits the whole batch
                self.cancel([JobRef(j, "", "", 0.0) for j in ids])
            raise
        return ids

    def _bodies(self, ln: TaskLaunch) -> tuple[str, list[Any], Any]:
        """The launch's PVCs and Job as client models (validated by the client itself)."""
        try:
            pvcs = [k8s.V1PersistentVolumeClaim.model_validate(b)
                    for b in km.pvc_bodies(ln, self.settings)]
            return ln.namespace, pvcs, k8s.V1Job.model_validate(km.job_body(ln, self.settings))
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ()))
            raise SpecError(f"{ln.activity}: invalid Kubernetes object ({where}: "
                            f"{first.get('msg')})") from None

    def _create(self, call: Callable[[], object], what: str, name: str) -> None:
        """Create an object; 409 Conflict means it is there already, which is what we want."""
        try:
            call()
        except ApiException as exc:
            if exc.status == 409:
                return
            transient = exc.status in (429, 500, 502, 503, 504)
            raise SubmitError(f"kubernetes refused {what} {name}: {_why(exc)}: "
                              f"{(exc.body or '')[:300]}", transient=transient,
                              exit_code=exc.status) from None
        except API_ERRORS as exc:
            raise SubmitError(f"kubernetes API {self._host} unreachable ({what} {name}): "
                              f"{_why(exc)}",
                              transient=True) from None

    def _ensure_namespace(self, ns: str) -> None:
        if ns in self._ready_ns:
            return
        try:
            self.core.read_namespace(ns, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                if not self.create_namespace:
                    raise SubmitError(
                        f"namespace {ns!r} does not exist on site {self.site} (create it, or "
                        "set `create_namespace: true` in the site profile)",
                        transient=False) from None
                body = k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns))
                self._create(partial(self.core.create_namespace, body,
                                     _request_timeout=self.timeout), "namespace", ns)
            elif exc.status != 403:  # 403: no cluster-scope rights; the Job create will tell
                raise SubmitError(f"kubernetes: cannot read namespace {ns}: {_why(exc)}",
                                  transient=exc.status >= 500) from None
        except API_ERRORS as exc:
            raise SubmitError(f"kubernetes API {self._host} unreachable: {_why(exc)}",
                              transient=True) from None
        self._ready_ns.add(ns)
        self.namespaces.add(ns)

    def _ensure_pvc(self, ns: str, body: Any) -> None:
        key = (ns, str(body.metadata.name))
        if key not in self._made_pvcs:
            self._create(partial(self.core.create_namespaced_persistent_volume_claim, ns, body,
                                 _request_timeout=self.timeout), "volume claim", key[1])
            self._made_pvcs.add(key)

    # -- status ---------------------------------------------------------------------------
    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        """One Job list per (namespace, workflow) — in practice one call per poll."""
        out: dict[str, JobStatus] = {}
        groups: dict[tuple[str, str], list[JobRef]] = defaultdict(list)
        for ref in jobs:
            if not ref.job_id or "/" not in ref.job_id:
                out[ref.job_name] = JobStatus(JobState.MISSING, message="no job id recorded")
                continue
            try:
                wf = km.split_job_name(ref.job_name)[0]
            except ValueError:
                out[ref.job_name] = JobStatus(JobState.UNKNOWN, message="foreign job name")
                continue
            groups[(ref.job_id.split("/", 1)[0], wf)].append(ref)
        for (ns, wf), refs in groups.items():
            out.update(self._poll_group(ns, wf, refs))
        return out

    def _poll_group(self, ns: str, wf: str, refs: list[JobRef]) -> dict[str, JobStatus]:
        try:
            found = self.batch.list_namespaced_job(
                ns, label_selector=f"{km.LABEL_WORKFLOW}={wf}", _request_timeout=self.timeout)
        except API_ERRORS as exc:
            log.warning("kubernetes job list failed (status unknown): %s", _why(exc))
            return {r.job_name: JobStatus(JobState.UNKNOWN, message=_why(exc)) for r in refs}
        by_name = {j["metadata"]["name"]: j for j in map(self._dict, found.items or [])}
        pods: list[Obj] | None = None
        out: dict[str, JobStatus] = {}
        for ref in refs:
            job = by_name.get(ref.job_id.split("/", 1)[1] if ref.job_id else "")
            if job is None:
                out[ref.job_name] = JobStatus(JobState.GONE, message="job not found")
                continue
            state, why = km.job_state(job, None)
            started = km.timestamp((job.get("status") or {}).get("startTime"))
            if state not in ENDED:
                out[ref.job_name] = JobStatus(state, started_at=started, message=why)
                continue
            try:
                if pods is None:  # one pod list, only in polls that see a Job end
                    pods = self._pods(ns, wf)
                out[ref.job_name] = self._collect(ns, job, pods, Path(ref.attempt_dir))
            except API_ERRORS as exc:
                log.warning("kubernetes: collecting %s failed: %s", ref.job_name, _why(exc))
                out[ref.job_name] = JobStatus(JobState.UNKNOWN, message=_why(exc))
        return out

    def _pods(self, ns: str, wf: str) -> list[Obj]:
        found = self.core.list_namespaced_pod(
            ns, label_selector=f"{km.LABEL_WORKFLOW}={wf}", _request_timeout=self.timeout)
        return [self._dict(p) for p in found.items or []]

    def _collect(self, ns: str, job: Obj, pods: list[Obj], adir: Path) -> JobStatus:
        """Write stdout and result.json for an ended Job, then delete it (and its pods)."""
        name = job["metadata"]["name"]
        mine = [p for p in pods
                if (p["metadata"].get("labels") or {}).get(km.LABEL_JOB) == name]
        pod = max(mine, key=lambda p: str(p["metadata"].get("creationTimestamp") or ""),
                  default=None)
        state, why = km.job_state(job, pod)
        result = protocol.read_result(adir)
        if result is None:
            result = km.outcome(job, pod, state, why, time.time())
            text = self._log(ns, pod) if pod is not None else None
            if text is None:
                result.message = "; ".join(x for x in (result.message, "pod log unavailable")
                                           if x)
            adir.mkdir(parents=True, exist_ok=True)
            protocol.write_atomic(adir / protocol.STDOUT, text or "")
            protocol.write_atomic(adir / protocol.STDERR, "")  # merged into stdout by k8s
            protocol.write_result(adir, result)
        keep = (job["metadata"].get("annotations") or {}).get(km.ANN_KEEP) == "true"
        if not (self.keep_jobs or keep):
            self._delete(ns, name)
        return JobStatus(state, exit_code=result.exit_code, node=result.node,
                         started_at=result.started_at, message=why)

    def _log(self, ns: str, pod: Obj) -> str | None:
        try:
            text = self.core.read_namespaced_pod_log(
                pod["metadata"]["name"], ns, container=km.CONTAINER,
                limit_bytes=self.log_limit, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status in (400, 404):  # pod gone, or never started a container
                return None
            raise
        return str(text)

    # -- cancel, cleanup, lookup ----------------------------------------------------------
    def _delete(self, ns: str, name: str) -> None:
        try:
            self.batch.delete_namespaced_job(
                name, ns, propagation_policy="Background", _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("kubernetes: cannot delete job %s/%s: %s", ns, name, _why(exc))
        except API_ERRORS as exc:
            log.warning("kubernetes: cannot delete job %s/%s: %s", ns, name, _why(exc))

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        """Delete the Jobs; Background propagation removes their pods too."""
        for ref in jobs:
            if ref.job_id and "/" in ref.job_id:
                ns, name = ref.job_id.split("/", 1)
                self._delete(ns, name)

    def lookup(self, job_names: Sequence[str]) -> dict[str, str]:
        """Jobs by their akoflow name (annotation), for crash repair: all namespaces if
        allowed, else the namespaces this site knows (`namespaces:` and those used)."""
        wanted = set(job_names)
        wfs = sorted({km.split_job_name(n)[0] for n in wanted if n.startswith("akoflow.")})
        if not wfs:
            return {}
        selector = f"{km.LABEL_WORKFLOW} in ({','.join(wfs)})"
        try:
            items = self.batch.list_job_for_all_namespaces(
                label_selector=selector, _request_timeout=self.timeout).items or []
        except ApiException as exc:
            if exc.status != 403:
                raise ExecutorError(f"kubernetes lookup failed: {_why(exc)}") from None
            items = self._lookup_namespaced(selector)
        except API_ERRORS as exc:
            raise ExecutorError(f"kubernetes lookup failed: {_why(exc)}") from None
        out: dict[str, str] = {}
        for job in map(self._dict, items):
            meta = job["metadata"]
            full = (meta.get("annotations") or {}).get(km.ANN_JOB_NAME)
            if full in wanted:
                out[full] = f"{meta.get('namespace')}/{meta['name']}"
        return out

    def _lookup_namespaced(self, selector: str) -> list[Any]:
        items: list[Any] = []
        for ns in sorted(self.namespaces | {"akoflow"}):
            try:
                items += self.batch.list_namespaced_job(
                    ns, label_selector=selector, _request_timeout=self.timeout).items or []
            except API_ERRORS as exc:
                raise ExecutorError(f"kubernetes lookup in {ns} failed: {_why(exc)}") from None
        return items

    # -- inventory ------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        """Nodes with allocatable cpu/memory; free = allocatable - requests of the pods
        placed there. Cordoned or NotReady nodes are kept but marked, with nothing free."""
        try:
            items = [self._dict(n) for n in self.core.list_node(
                _request_timeout=self.timeout).items or []]
        except API_ERRORS as exc:
            raise ExecutorError(f"kubernetes node list failed: {_why(exc)}") from None
        used = self._requests_by_node() if self.config.get("node_usage", True) else {}
        out = []
        for n in items:
            name = n["metadata"]["name"]
            alloc = (n.get("status") or {}).get("allocatable") or {}
            cpus = _qty(alloc.get("cpu", "0"))
            mem = int(_qty(alloc.get("memory", "0")))
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (n.get("status") or {}).get("conditions") or [])
            cordoned = bool((n.get("spec") or {}).get("unschedulable"))
            state = "down" if not ready else "drain" if cordoned else "idle"
            ucpu, umem = used.get(name, (0.0, 0))
            usable = state == "idle"
            if usable and (ucpu or umem):
                state = "mixed"
            out.append(Node(
                name=name, cpus=cpus, memory=mem, state=state,
                cpus_free=max(0.0, cpus - ucpu) if usable else 0.0,
                memory_free=max(0, mem - umem) if usable else 0,
                labels=dict(n["metadata"].get("labels") or {})))
        return out

    def _requests_by_node(self) -> dict[str, tuple[float, int]]:
        """Summed container requests of unfinished pods per node ({} if not allowed)."""
        try:
            pods = self.core.list_pod_for_all_namespaces(
                field_selector="status.phase!=Succeeded,status.phase!=Failed",
                _request_timeout=self.timeout).items or []
        except API_ERRORS as exc:
            log.info("kubernetes: pod usage unavailable (%s); free = allocatable", _why(exc))
            return {}
        used: dict[str, tuple[float, int]] = {}
        for p in map(self._dict, pods):
            node = (p.get("spec") or {}).get("nodeName")
            if not node:
                continue
            cpu, mem = used.get(node, (0.0, 0))
            for c in (p.get("spec") or {}).get("containers") or []:
                req = (c.get("resources") or {}).get("requests") or {}
                cpu += _qty(req.get("cpu", "0"))
                mem += int(_qty(req.get("memory", "0")))
            used[node] = (cpu, mem)
        return used

    def close(self) -> None:
        self.api.close()
