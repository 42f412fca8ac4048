"""One JSON error shape for every failure, with the status code that fits it.

The body is WES's `ErrorResponse` (`msg`, `status_code`) so WES clients read it too, plus
`issues` (file, line, field path, message) for a workflow that does not validate, and
`workflow_id` when a run was registered but could not be started.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from akoflow.manifest import ManifestError
from akoflow.port import ExecutorError
from akoflow.scheduling.policies import PolicyError
from akoflow.sites import SiteError
from akoflow.spec.errors import SpecError

log = logging.getLogger(__name__)


class Issue(BaseModel):
    file: str | None = None
    line: int | None = None
    path: str = ""
    message: str


class ErrorBody(BaseModel):
    msg: str
    status_code: int
    issues: list[Issue] | None = None
    workflow_id: int | None = None


class ApiError(Exception):
    def __init__(self, status: int, msg: str, issues: list[Issue] | None = None,
                 workflow_id: int | None = None) -> None:
        super().__init__(msg)
        self.status, self.msg, self.issues, self.workflow_id = status, msg, issues, workflow_id


_DESCRIPTIONS = {
    400: "Malformed request (bad JSON, base64, encoding or form)",
    401: "Missing or wrong token",
    403: "The token may only read",
    404: "No such workflow, activity, run or file",
    409: "The request conflicts with the workflow's state",
    413: "Request body over the service's cap",
    422: "The workflow (or a parameter) does not validate",
    503: "The workflow's site cannot start a dispatcher here",
}
# Every route may answer these; documented once, applied to every router.
RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in _DESCRIPTIONS.items()
}


def respond(status: int, msg: str, issues: list[Issue] | None = None,
            workflow_id: int | None = None) -> JSONResponse:
    body = ErrorBody(msg=msg, status_code=status, issues=issues, workflow_id=workflow_id)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def spec_issues(exc: SpecError) -> list[Issue]:
    return [Issue(file=i.file, line=i.line, path=i.path, message=i.message)
            for i in exc.issues]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the one error shape."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return respond(exc.status, exc.msg, exc.issues, exc.workflow_id)

    async def spec_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SpecError)
        return respond(422, "the workflow is not valid: " + "; ".join(
            str(i) for i in exc.issues[:5]), spec_issues(exc))

    async def manifest_error(_: Request, exc: Exception) -> JSONResponse:
        text = str(exc)
        unknown = text.startswith("no workflow") or " has no activity " in text
        return respond(404 if unknown else 409, text)

    async def site_error(_: Request, exc: Exception) -> JSONResponse:
        return respond(422, str(exc))

    async def executor_error(_: Request, exc: Exception) -> JSONResponse:
        return respond(503, f"the site cannot start the workflow here: {exc}")

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return respond(400, "the request body is not valid JSON")
        issues = [Issue(path=".".join(str(p) for p in e.get("loc", ())),
                        message=str(e.get("msg", "invalid"))) for e in errors]
        return respond(422, "; ".join(f"{i.path}: {i.message}" for i in issues[:5]), issues)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return respond(exc.status_code, str(exc.detail))

    async def crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return respond(500, f"internal error: {type(exc).__name__}")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(SpecError, spec_error)
    app.add_exception_handler(ManifestError, manifest_error)
    app.add_exception_handler(SiteError, site_error)
    app.add_exception_handler(PolicyError, site_error)
    app.add_exception_handler(ExecutorError, executor_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, crash)
