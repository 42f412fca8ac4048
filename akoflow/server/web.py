"""The live web view: a static shell, the browser's session, and the report's sections live.

The shell (`/`, `/ui/app.js`, `/ui/app.css`, `/ui/report.css`) is package data with no data
in it and nothing from a CDN: it works on an air-gapped login node through an SSH tunnel.
Everything it shows comes from the authenticated API: the workflow list, a workflow's
sections as HTML fragments rendered by the report's own code (`akoflow.provenance.report*`,
so the page and `akoflow report` never drift apart), activity logs, and the event stream,
which changes the DAG's states in place as they are committed.

Signing in: `akoflow serve` prints `http://HOST:PORT/#token=TOKEN`. The fragment never leaves
the browser; the page posts the token once in an `Authorization` header to
`POST /auth/session`, which sets the session cookie (see `auth`), then drops the fragment
from the address bar and history.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from fastapi.params import Path

from akoflow.server import deps
from akoflow.server.auth import COOKIE, SESSION_SECONDS
from akoflow.server.errors import RESPONSES

STATIC = {"app.js": "text/javascript", "app.css": "text/css", "auth.html": "text/html"}
Section = Literal["summary", "dag", "timeline", "resources", "slowest", "memory", "failures",
                  "files"]
router = APIRouter(responses=RESPONSES, tags=["web view"])
shell = APIRouter(include_in_schema=False)


def _asset(name: str) -> bytes:
    return (resources.files("akoflow.server") / "static" / name).read_bytes()


@shell.get("/")
def index() -> Response:
    return Response(_asset("index.html"), media_type="text/html; charset=utf-8")


@shell.get("/ui/report.css")
def report_css() -> Response:
    from akoflow.provenance.report import CSS
    from akoflow.provenance.report_base import state_css

    return Response(CSS + state_css(), media_type="text/css")


@shell.get("/ui/{name}")
def asset(name: str) -> Response:
    if name not in STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(_asset(name), media_type=STATIC[name])


@router.post("/auth/session", status_code=204, response_class=Response,
             summary="Trade the token (Authorization header) for the browser's session cookie")
def login(request: Request) -> Response:
    """HttpOnly, SameSite=Strict, GET/HEAD only, 12 hours; Secure over TLS."""
    guard = request.app.state.guard
    role = request.scope.get("state", {}).get("role", "read")
    resp = Response(status_code=204)
    resp.set_cookie(COOKIE, guard.sessions.issue(role), max_age=SESSION_SECONDS,
                    httponly=True, samesite="strict", path="/",
                    secure=request.url.scheme == "https")
    return resp


@router.delete("/auth/session", status_code=204, response_class=Response,
               summary="Sign the browser out (drops the cookie)")
def logout() -> Response:
    resp = Response(status_code=204)
    resp.delete_cookie(COOKIE, path="/")
    return resp


@router.get("/akoflow-api/workflows/{workflow_id}/view/{section}", response_class=Response,
            summary="One section of the HTML report, live (an HTML fragment)",
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}})
def view(workflow_id: int, section: Annotated[Section, Path()]) -> Response:
    from akoflow.provenance.report import SECTIONS
    from akoflow.provenance.report_data import load_report_data

    m = deps.manifest()
    data = load_report_data(m, deps.workflow(m, workflow_id).id)
    render = {sid: fn for sid, _, fn in SECTIONS}[section]
    return Response(render(data), media_type="text/html; charset=utf-8")
