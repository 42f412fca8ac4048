"""AkôFlow's own routes, with AkôFlow's request and response shapes.

`POST /akoflow-api/workflows/`, `POST /akoflow-server/workflow/` and `POST /workflows` (the
URL in AkôFlow's integration document) take `{"workflow": base64 YAML}` and answer with
`workflow_id`; the listings are AkôFlow's `ApiWorkflowType`, `ApiRuntimeType` and
`ApiScheduleType` (see `models`). Site profiles stand in for AkôFlow's runtimes, placement
policies for its schedules.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import PlainTextResponse, Response

from akoflow.manifest import Manifest, WorkflowRecord
from akoflow.server import deps
from akoflow.server.errors import RESPONSES
from akoflow.server.models import (
    AkoActivity,
    AkoRuntime,
    AkoSchedule,
    AkoWorkflow,
    SubmitAnswer,
    SubmitBody,
    ako_activity,
    ako_workflow,
)
from akoflow.server.submit import decode_workflow, parse_yaml, start

router = APIRouter(responses=RESPONSES, tags=["AkôFlow API"])
DEPLOYED = "Workflow has been deployed successfully."


def _submit(body: SubmitBody) -> SubmitAnswer:
    spec = parse_yaml(decode_workflow(body.workflow))
    wf, dispatcher = start(deps.manifest(), spec)
    return SubmitAnswer(workflow_entity=wf.name, workflow_id=wf.id, message=DEPLOYED,
                        dispatcher=dispatcher)


SubmitIn = Annotated[SubmitBody, Body()]


@router.post("/akoflow-api/workflows/", response_model=SubmitAnswer,
             summary="Submit a workflow (AkôFlow API)")
def create_api(body: SubmitIn) -> SubmitAnswer:
    """Register the base64-encoded AkôFlow YAML and start its dispatcher, as `akoflow
    submit` does. A spec error is a 422 naming line and field path; nothing is registered."""
    return _submit(body)


@router.post("/akoflow-server/workflow/", response_model=SubmitAnswer,
             summary="Submit a workflow (AkôFlow server route)")
def create_server(body: SubmitIn) -> SubmitAnswer:
    return _submit(body)


@router.post("/workflows", response_model=SubmitAnswer,
             summary="Submit a workflow (the URL of AkôFlow's integration document)")
def create_doc(body: SubmitIn) -> SubmitAnswer:
    return _submit(body)


def _activities(m: Manifest, wf_id: int) -> list[AkoActivity]:
    acts = m.activities(wf_id)
    names = {a.id: a.name for a in acts}
    parents: dict[int, list[str]] = defaultdict(list)
    for child, parent in m.edges(wf_id):
        parents[child].append(names[parent])
    return [ako_activity(a, sorted(parents.get(a.id, []))) for a in acts]


def _workflow(m: Manifest, wf: WorkflowRecord, with_activities: bool) -> AkoWorkflow:
    spec = json.loads(m.get_workflow(wf.id).spec_json) if with_activities else {}
    acts = _activities(m, wf.id) if with_activities else None
    return ako_workflow(wf, spec, acts, m.status_counts(wf.id), m.last_event_id(wf.id))


def _json(models: list[AkoWorkflow] | AkoWorkflow) -> Response:
    """Serialise once (a 1,000-activity workflow is validated when built, not again)."""
    if isinstance(models, list):
        body = b"[" + b",".join(m.model_dump_json().encode() for m in models) + b"]"
    else:
        body = models.model_dump_json().encode()
    return Response(body, media_type="application/json")


@router.get("/akoflow-api/workflows/", response_class=Response,
            responses={200: {"model": list[AkoWorkflow]}},
            summary="List workflows, newest first")
def list_workflows(
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    activities: Annotated[bool, Query(description="include each workflow's activities and "
                                                  "spec fields, as AkôFlow does")] = True,
) -> Response:
    m = deps.manifest()
    return _json([_workflow(m, wf, activities) for wf in m.list_workflows(limit)])


@router.get("/akoflow-api/workflows/{workflow_id}/", response_class=Response,
            responses={200: {"model": AkoWorkflow}},
            summary="One workflow with its activities and their states")
def get_workflow(workflow_id: int) -> Response:
    m = deps.manifest()
    return _json(_workflow(m, deps.workflow(m, workflow_id), True))


@router.get("/akoflow-api/runtimes/", response_model=list[AkoRuntime],
            summary="Site profiles (AkôFlow's runtimes)")
def runtimes() -> list[AkoRuntime]:
    from akoflow.port import available_executors
    from akoflow.sites import list_sites

    installed = set(available_executors())
    return [AkoRuntime(
        name=str(p["name"]), status=1 if str(p.get("executor")) in installed else 0,
        metadata={k: str(p[k]) for k in ("executor", "container", "description", "_source")
                  if p.get(k) is not None}) for p in list_sites()]


@router.get("/akoflow-api/schedules/", response_model=list[AkoSchedule],
            summary="Placement policies (AkôFlow's schedules)")
def schedules() -> list[AkoSchedule]:
    from akoflow.port import plugins
    from akoflow.scheduling.policies import GROUP, available_policies

    out = []
    for i, name in enumerate(available_policies(), start=1):
        ep = plugins.find(GROUP, name)
        dist = getattr(getattr(ep, "dist", None), "name", "") if ep else ""
        out.append(AkoSchedule(id=i, type="builtin" if dist == "akoflow" else "plugin",
                               code=ep.value if ep else "", name=name))
    return out


@router.get("/akoflow-server/check-service/", response_class=Response,
            summary="Health check (answers `ok`)",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
def check_service() -> Response:
    return PlainTextResponse("ok")
