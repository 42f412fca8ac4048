"""akoflow's own routes beside AkôFlow's: what the CLI does, one route per command.

Each calls the function the CLI command calls (`service`, `query`, `provenance`), so the
two never disagree: cancel, retry, status, activities (describe), logs with the CLI's
filters, metrics, files, PROV in each format, lineage, the HTML report, the RO-Crate, and
an activity's stdout/stderr tail.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import Response
from pydantic import BaseModel

from akoflow import query, service
from akoflow.manifest.states import LOG_FILTERS
from akoflow.server import deps
from akoflow.server.errors import RESPONSES, ApiError

router = APIRouter(prefix="/akoflow-api/workflows/{workflow_id}", responses=RESPONSES,
                   tags=["akoflow"])
Json = dict[str, Any]
PROV_TYPES = {"prov-json": "application/json", "prov-n": "text/provenance-notation",
              "prov-xml": "application/xml", "rdf": "text/turtle"}
LINEAGE_TYPES = {"json": "application/json", "dot": "text/vnd.graphviz",
                 "mermaid": "text/plain"}


class ActivitiesBody(BaseModel):
    activities: list[str] = []


class RetryBody(ActivitiesBody):
    start: bool = True


class CancelAnswer(BaseModel):
    id: int
    status: str
    stopped_jobs: int
    already_over: bool


class RetryAnswer(BaseModel):
    id: int
    reset: int
    dispatcher: str | None


def _text(body: str, media: str) -> Response:
    return Response(body, media_type=media)


def _contents(types: Any) -> dict[str, Any]:
    """Response content per media type: JSON documents are objects, the rest text."""
    return {t: {"schema": {"type": "object"} if t == "application/json" else {"type": "string"}}
            for t in sorted(set(types))}


def _doc(media: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {media: {"schema": {"type": "string"}}}}}


@router.post("/cancel/", response_model=CancelAnswer, summary="Cancel (`akoflow cancel`)")
def cancel(workflow_id: int, body: Annotated[ActivitiesBody | None, Body()] = None
           ) -> CancelAnswer:
    m = deps.manifest()
    wf = deps.workflow(m, workflow_id)
    stopped = service.cancel(m, wf.id, (body.activities if body else None) or None)
    return CancelAnswer(id=wf.id, status=m.workflow_status(wf.id), stopped_jobs=stopped or 0,
                        already_over=stopped is None)


@router.post("/retry/", response_model=RetryAnswer, summary="Retry (`akoflow retry`)")
def retry(workflow_id: int, body: Annotated[RetryBody | None, Body()] = None) -> RetryAnswer:
    m = deps.manifest()
    wf = deps.workflow(m, workflow_id)
    b = body or RetryBody()
    count, dispatcher = service.retry_and_start(m, wf, b.activities or None,
                                                start_dispatcher=b.start)
    return RetryAnswer(id=wf.id, reset=count, dispatcher=dispatcher)


@router.get("/status/", summary="State, counts, failures (`akoflow status --json`)")
def status(workflow_id: int) -> Json:
    m = deps.manifest()
    data = service.status_report(m, deps.workflow(m, workflow_id).id)
    data["last_event_id"] = m.last_event_id(workflow_id)
    return data


@router.get("/activities/", summary="The DAG with states (`akoflow describe --json`)")
def activities(workflow_id: int) -> list[Json]:
    m = deps.manifest()
    return deps.records(query.activities(deps.workflow(m, workflow_id).id, manifest=m))


@router.get("/logs/", summary="The run log, filtered as `akoflow logs` filters it")
def logs(
    workflow_id: int, activity: str | None = None,
    status: Annotated[str | None, Query(description="a state or an event kind")] = None,
    node: str | None = None, attempt: int | None = None,
    since: Annotated[str | None, Query(description="ISO time, HH:MM or an age (10m)")] = None,
    until: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> list[Json]:
    m = deps.manifest()
    if status is not None:
        deps.one_of(status.upper(), LOG_FILTERS, "status")
    try:
        start, end = query.parse_when(since), query.parse_when(until)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    records = query.logs(deps.workflow(m, workflow_id).id, activity, status, node, attempt,
                         start, end, limit, manifest=m)
    return [deps.jsonable(r) | {"time": query.iso(r.ts)} for r in records]


@router.get("/metrics/", summary="Resource use per activity, or every sample")
def metrics(workflow_id: int, activity: str | None = None, samples: bool = False
            ) -> list[Json]:
    m = deps.manifest()
    wf = deps.workflow(m, workflow_id)
    if samples:
        return deps.records(query.metrics(wf.id, activity, manifest=m))
    return deps.records([s for s in query.metric_summary(wf.id, manifest=m)
                          if activity is None or s.activity == activity])


@router.get("/files/", summary="Files each attempt used and generated")
def files(workflow_id: int,
          role: Annotated[str | None, Query(description="generated, used or pre-existing")]
          = None, activity: str | None = None) -> list[Json]:
    m = deps.manifest()
    if role is not None:
        deps.one_of(role, ("generated", "used", "pre-existing"), "role")
    return deps.records(query.files(deps.workflow(m, workflow_id).id, role, activity,
                                     manifest=m))


@router.get("/prov/", summary="W3C PROV of the run", response_class=Response,
            responses={200: {"content": _contents(PROV_TYPES.values())}})
def prov(workflow_id: int, format: str = "prov-json") -> Response:
    from akoflow.provenance.prov import export

    m = deps.manifest()
    fmt = deps.one_of(format, list(PROV_TYPES), "format")
    return _text(export(m, deps.workflow(m, workflow_id).id, fmt), PROV_TYPES[fmt])


@router.get("/lineage/", summary="Data lineage: tasks and files", response_class=Response,
            responses={200: {"content": _contents(LINEAGE_TYPES.values())}})
def lineage(workflow_id: int, file: str | None = None, activity: str | None = None,
            direction: str = "both", format: str = "json") -> Response:
    from akoflow.provenance import lineage as lin

    m = deps.manifest()
    fmt = deps.one_of(format, list(LINEAGE_TYPES), "format")
    deps.one_of(direction, ("up", "down", "both"), "direction")
    graph = lin.lineage(m, deps.workflow(m, workflow_id).id, file=file, activity=activity,
                        direction=direction)
    render = {"dot": lin.to_dot, "mermaid": lin.to_mermaid, "json": lin.to_json}[fmt]
    return _text(render(graph), LINEAGE_TYPES[fmt])


@router.get("/report/", summary="The self-contained HTML report", response_class=Response,
            responses=_doc("text/html"))
def report(workflow_id: int) -> Response:
    from akoflow.provenance.report import render_report

    m = deps.manifest()
    return _text(render_report(m, deps.workflow(m, workflow_id).id), "text/html")


@router.get("/crate/", summary="Workflow Run RO-Crate (zip)", response_class=Response,
            responses={200: {"content": {"application/zip": {
                "schema": {"type": "string", "format": "binary"}}}}})
def crate(workflow_id: int) -> Response:
    import tempfile
    from pathlib import Path

    from akoflow.provenance.crate import write_crate

    m = deps.manifest()
    wf = deps.workflow(m, workflow_id)
    with tempfile.TemporaryDirectory(prefix="akoflow-crate-") as tmp:
        data = write_crate(m, wf.id, Path(tmp) / "run.crate.zip").path.read_bytes()
    return Response(data, media_type="application/zip", headers={
        "content-disposition": f'attachment; filename="{wf.name}-{wf.id}.crate.zip"'})


class OutputTail(BaseModel):
    activity: str
    attempt: int
    stream: str
    text: str


@router.get("/activities/{activity}/log/", response_model=OutputTail,
            summary="The tail of an activity's stdout or stderr, also while it runs")
def output(workflow_id: int, activity: str, stream: str = "stdout",
           attempt: Annotated[int | None, Query(ge=1)] = None,
           max_bytes: Annotated[int, Query(ge=1, le=1 << 20)] = 64 * 1024) -> OutputTail:
    m = deps.manifest()
    deps.one_of(stream, ("stdout", "stderr"), "stream")
    number, text = query.output_tail(deps.workflow(m, workflow_id).id, activity, stream,
                                     attempt, max_bytes, manifest=m)
    return OutputTail(activity=activity, attempt=number, stream=stream, text=text)


@router.get("/files/content/", summary="Download a file the provenance records",
            response_class=Response, responses={200: {"content": {
                "application/octet-stream": {"schema": {"type": "string",
                                                        "format": "binary"}}}}})
def file_content(workflow_id: int, path: str) -> Response:
    from fastapi.responses import FileResponse

    m = deps.manifest()
    try:
        full = query.work_file(deps.workflow(m, workflow_id).id, path, manifest=m)
    except ValueError as exc:
        raise ApiError(404, str(exc)) from None
    return FileResponse(full, media_type="application/octet-stream", filename=full.name)
