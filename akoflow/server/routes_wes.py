"""GA4GH Workflow Execution Service 1.1 under `/ga4gh/wes/v1`.

A run is an akoflow workflow (`run_id` is its id as a string), a task is an activity.
`workflow_type` is `AKOFLOW` (AkôFlow YAML) or `PY` (akoflow's Python API); the workflow
file must be one of the `workflow_attachment` parts (the service fetches nothing), and every
attachment is copied into the run's work directory before it starts. `workflow_params` are
a Python workflow's parameters, or environment variables of every activity of a YAML one;
`workflow_engine_parameters` may name a `site`. States map through `WES_STATES`.
Beyond WES, `runs/{id}/stdout|stderr` and `runs/{id}/tasks/{task}/stdout|stderr` are the
plain-text logs the `Log` objects point to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response

from akoflow import __version__, query, service
from akoflow.manifest import ActivityRecord, Manifest, WorkflowRecord
from akoflow.server import deps
from akoflow.server.errors import RESPONSES, ApiError
from akoflow.server.submit import WES_REQUEST, WesForm, json_object, start, wes_spec
from akoflow.server.wes_models import (
    EngineParameter,
    EngineVersions,
    Log,
    Organization,
    RunId,
    RunListResponse,
    RunLog,
    RunRequest,
    RunStatus,
    RunSummary,
    ServiceInfo,
    ServiceType,
    TaskListResponse,
    TaskLog,
    TypeVersions,
    wes_state,
)

PREFIX = "/ga4gh/wes/v1"
router = APIRouter(prefix=PREFIX, responses=RESPONSES, tags=["GA4GH WES 1.1"])
TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}}}
MAX_OUTPUTS = 1000
Stream = Literal["stdout", "stderr"]


def _utc(ts: float | None) -> str | None:
    from akoflow.events.payloads import rfc3339

    return rfc3339(ts)


def _run(m: Manifest, run_id: str) -> WorkflowRecord:
    if not run_id.isdigit() or len(run_id) > 18:
        raise ApiError(404, f"no run {run_id!r}")
    return deps.workflow(m, int(run_id))


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/service-info", response_model=ServiceInfo, summary="GetServiceInfo")
def service_info(request: Request) -> ServiceInfo:
    counts: dict[str, int] = {}
    for state, n in deps.manifest().workflow_state_counts().items():
        key = wes_state(state)
        counts[key] = counts.get(key, 0) + n
    return ServiceInfo(
        id="org.akoflow.wes", name="akoflow",
        type=ServiceType(group="org.ga4gh", artifact="wes", version="1.1.0"),
        description="akoflow: AkôFlow YAML and Python-API workflows on local machines, "
                    "batch schedulers and containers, with provenance for every task",
        organization=Organization(name="akoflow", url=_base(request)), version=__version__,
        workflow_type_versions={"AKOFLOW": TypeVersions(workflow_type_version=["1"]),
                                "PY": TypeVersions(workflow_type_version=["3"])},
        supported_wes_versions=["1.1.0", "1.0.0"], supported_filesystem_protocols=["file"],
        workflow_engine_versions={"akoflow": EngineVersions(
            workflow_engine_version=[__version__])},
        default_workflow_engine_parameters=[EngineParameter(
            name="site", type="string", default_value="the workflow's spec.runtime")],
        system_state_counts=counts, auth_instructions_url=f"{_base(request)}/ui/auth.html",
        tags={})


@router.get("/runs", response_model=RunListResponse, summary="ListRuns (newest first)")
def list_runs(page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
              page_token: Annotated[str | None, Query(pattern=r"^\d{0,18}$")] = None
              ) -> RunListResponse:
    m = deps.manifest()
    before = int(page_token) if page_token else None
    page = m.workflows_page(page_size + 1, before)
    more = len(page) > page_size
    page = page[:page_size]
    runs = [RunSummary(run_id=str(w.id), state=wes_state(w.status),
                       start_time=_utc(w.started_at), end_time=_utc(w.finished_at),
                       tags=_request(w).tags) for w in page]
    return RunListResponse(runs=runs, next_page_token=str(page[-1].id) if more else "",
                           total_runs=m.count_workflows())


@router.post("/runs", response_model=RunId, summary="RunWorkflow (multipart form)")
def run_workflow(
    workflow_type: Annotated[str, Form(description="AKOFLOW or PY")],
    workflow_type_version: Annotated[str, Form()],
    workflow_url: Annotated[str, Form(description="the name of one of the attachments")],
    workflow_params: Annotated[str | None, Form(description="a JSON object")] = None,
    tags: Annotated[str | None, Form(description="a JSON object")] = None,
    workflow_engine_parameters: Annotated[str | None, Form()] = None,
    workflow_engine: Annotated[str | None, Form()] = None,
    workflow_engine_version: Annotated[str | None, Form()] = None,
    workflow_attachment: Annotated[list[UploadFile] | None, File()] = None,
) -> RunId:
    if workflow_engine not in (None, "", "akoflow"):
        raise ApiError(400, f"workflow_engine {workflow_engine!r}: this service runs akoflow")
    form = WesForm(
        workflow_type, workflow_type_version, workflow_url,
        json_object(workflow_params, "workflow_params"),
        json_object(workflow_engine_parameters, "workflow_engine_parameters"),
        {str(k): str(v) for k, v in json_object(tags, "tags").items()},
        {(f.filename or "attachment"): f.file.read() for f in workflow_attachment or []})
    wf, _ = start(deps.manifest(), wes_spec(form), form.attachments, form.request())
    return RunId(run_id=str(wf.id))


def _request(wf: WorkflowRecord) -> RunRequest:
    """The request a run came with (kept in its run directory), or one describing it."""
    try:
        return RunRequest(**json.loads((Path(wf.run_dir) / WES_REQUEST).read_text()))
    except (OSError, ValueError, TypeError):
        return RunRequest(workflow_type="AKOFLOW", workflow_type_version="1",
                          workflow_url=wf.spec_path or wf.name)


def _task(base: str, wf: WorkflowRecord, a: ActivityRecord, exit_code: int | None) -> TaskLog:
    url = f"{base}{PREFIX}/runs/{wf.id}/tasks/{a.name}"
    return TaskLog(
        id=a.name, name=a.name, cmd=["bash", "-eo", "pipefail", "-c", a.run],
        start_time=_utc(a.started_at), end_time=_utc(a.finished_at), stdout=f"{url}/stdout",
        stderr=f"{url}/stderr", exit_code=exit_code,
        system_logs=[f"state: {a.status}", f"wes_state: {wes_state(a.status, a.reason)}",
                     *([f"reason: {a.reason}"] if a.reason else []),
                     *([f"node: {a.node}"] if a.node else []), f"attempts: {a.attempts}"])


def _exit_codes(m: Manifest, wf_id: int) -> dict[int, int | None]:
    return {t.activity_id: t.exit_code for t in m.attempts(wf_id)}  # the last attempt wins


@router.get("/runs/{run_id}", response_model=RunLog, summary="GetRunLog")
def get_run_log(run_id: str, request: Request) -> RunLog:
    m = deps.manifest()
    wf = _run(m, run_id)
    base = _base(request)
    failed = [f"{e.activity} attempt {e.attempt}: {e.reason}" for e in m.error_tails(wf.id)]
    outputs = {f.path: f"{base}/akoflow-api/workflows/{wf.id}/files/content/?path={f.path}"
               for f in query.files(wf.id, "generated", manifest=m)[:MAX_OUTPUTS]}
    return RunLog(
        run_id=str(wf.id), request=_request(wf), state=wes_state(wf.status),
        run_log=Log(name=wf.name, cmd=["akoflow", "submit", wf.spec_path or wf.name],
                    start_time=_utc(wf.started_at), end_time=_utc(wf.finished_at),
                    stdout=f"{base}{PREFIX}/runs/{wf.id}/stdout",
                    stderr=f"{base}{PREFIX}/runs/{wf.id}/stderr",
                    exit_code=_run_exit(wf.status), system_logs=failed),
        task_logs_url=f"{base}{PREFIX}/runs/{wf.id}/tasks",
        task_logs=None, outputs=outputs)


def _run_exit(status: str) -> int | None:
    return {"FINISHED": 0, "FAILED": 1, "CANCELLED": 130}.get(status)


@router.get("/runs/{run_id}/status", response_model=RunStatus, summary="GetRunStatus")
def get_run_status(run_id: str) -> RunStatus:
    m = deps.manifest()
    if not run_id.isdigit() or len(run_id) > 18:
        raise ApiError(404, f"no run {run_id!r}")
    return RunStatus(run_id=run_id, state=wes_state(m.workflow_status(int(run_id))))


@router.post("/runs/{run_id}/cancel", response_model=RunId, summary="CancelRun")
def cancel_run(run_id: str) -> RunId:
    m = deps.manifest()
    wf = _run(m, run_id)
    service.cancel(m, wf.id)
    return RunId(run_id=str(wf.id))


@router.get("/runs/{run_id}/tasks", response_model=TaskListResponse, summary="ListTasks")
def list_tasks(run_id: str, request: Request,
               page_size: Annotated[int, Query(ge=1, le=10_000)] = 500,
               page_token: Annotated[str | None, Query(pattern=r"^\d{0,9}$")] = None
               ) -> TaskListResponse:
    m = deps.manifest()
    wf = _run(m, run_id)
    start_at = int(page_token) if page_token else 0
    acts = m.activities(wf.id)
    page = acts[start_at:start_at + page_size]
    codes = _exit_codes(m, wf.id)
    more = start_at + page_size < len(acts)
    return TaskListResponse(
        task_logs=[_task(_base(request), wf, a, codes.get(a.id)) for a in page],
        next_page_token=str(start_at + page_size) if more else "")


@router.get("/runs/{run_id}/tasks/{task_id}", response_model=TaskLog, summary="GetTask")
def get_task(run_id: str, task_id: str, request: Request) -> TaskLog:
    m = deps.manifest()
    wf = _run(m, run_id)
    act = m.activity_named(wf.id, task_id)
    if act is None:
        raise ApiError(404, f"run {wf.id} has no task {task_id!r}")
    return _task(_base(request), wf, act, _exit_codes(m, wf.id).get(act.id))


@router.get("/runs/{run_id}/tasks/{task_id}/{stream}", response_class=Response,
            responses=TEXT, summary="A task's stdout or stderr (plain text; akoflow)")
def task_output(run_id: str, task_id: str, stream: Stream) -> Response:
    m = deps.manifest()
    text = query.output_tail(_run(m, run_id).id, task_id, stream, manifest=m)[1]
    return PlainTextResponse(text)


@router.get("/runs/{run_id}/{stream}", response_class=Response, responses=TEXT,
            summary="The run's log (stdout) or its failures' stderr (stderr; akoflow)")
def run_output(run_id: str, stream: Stream) -> Response:
    m = deps.manifest()
    wf = _run(m, run_id)
    if stream == "stdout":
        return PlainTextResponse("".join(f"{query.iso(r.ts)} {r.activity or '(workflow)'} {r.kind} "
                       f"{r.from_status or ''}->{r.to_status or ''} {r.message or ''}\n"
                       for r in query.logs(wf.id, manifest=m)))
    return PlainTextResponse("".join(
        f"== {e.activity} attempt {e.attempt}: {e.reason}\n{e.stderr_tail}\n"
        for e in m.error_tails(wf.id)))
