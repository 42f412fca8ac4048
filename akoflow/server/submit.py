"""Turning what a client sent into a registered, started workflow.

AkôFlow's clients send `{"workflow": base64(YAML)}`; WES clients send a multipart form with
the workflow among its attachments. Either way the text is validated completely before
anything is registered (a bad request registers nothing), then `service.submit` registers it
and starts its dispatcher exactly as `akoflow submit` does.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from akoflow import service
from akoflow.manifest import Manifest, WorkflowRecord
from akoflow.port import ExecutorError
from akoflow.server.errors import ApiError
from akoflow.server.pycompile import compile_python
from akoflow.spec import WorkflowSpec, parse_workflow_text

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
WES_REQUEST = "wes-request.json"  # kept in the run directory: WES echoes the request back


def decode_workflow(b64: str) -> str:
    """The YAML text inside AkôFlow's base64 field; 400 when it is not base64 of UTF-8."""
    try:
        raw = base64.b64decode("".join(b64.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "`workflow` is not valid base64 (standard alphabet)") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"`workflow` decodes to bytes that are not UTF-8 text "
                       f"(byte {exc.start})") from None


def parse_yaml(text: str, source: str = "workflow") -> WorkflowSpec:
    """A fully validated spec; SpecError (422, with lines and paths) otherwise."""
    return parse_workflow_text(text, source=source)


def start(m: Manifest, spec: WorkflowSpec, attachments: dict[str, bytes] | None = None,
          request: dict[str, Any] | None = None) -> tuple[WorkflowRecord, str]:
    """Register and start; uploaded files land in the work directory first. A site that
    cannot start a dispatcher here is a 503 naming the reason (the run is cancelled)."""

    registered: list[WorkflowRecord] = []

    def prepare(wf: WorkflowRecord) -> None:
        registered.append(wf)
        if request is not None:
            run_dir = Path(wf.run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / WES_REQUEST).write_text(json.dumps(request))
        if attachments:
            write_attachments(Path(wf.work_dir), attachments)

    try:
        return service.submit(m, spec, prepare)
    except (ExecutorError, OSError) as exc:
        raise ApiError(503, f"workflow {spec.name!r} was not started: its site "
                       f"{spec.runtime!r} cannot start here: {exc}",
                       workflow_id=registered[0].id if registered else None) from None


def safe_name(name: str) -> PurePosixPath:
    """An attachment's relative path; 400 for anything that would leave the directory."""
    p = PurePosixPath(name.replace("\\", "/"))
    if not name or p.is_absolute() or any(part in ("", "..") for part in p.parts) \
            or len(name) > 512:
        raise ApiError(400, f"attachment name {name!r} is not a plain relative path")
    return p


def write_attachments(into: Path, files: dict[str, bytes]) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = into / safe_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@dataclass
class WesForm:
    """A WES `RunRequest` as it came in the multipart form."""

    workflow_type: str
    workflow_type_version: str
    workflow_url: str
    workflow_params: dict[str, Any] = field(default_factory=dict)
    engine_params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    attachments: dict[str, bytes] = field(default_factory=dict)

    def request(self) -> dict[str, Any]:
        return {"workflow_type": self.workflow_type,
                "workflow_type_version": self.workflow_type_version,
                "workflow_url": self.workflow_url, "workflow_params": self.workflow_params,
                "workflow_engine_parameters": self.engine_params, "tags": self.tags}


def json_object(text: str | None, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise ApiError(400, f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"{what} must be a JSON object")
    return value


def wes_spec(form: WesForm) -> WorkflowSpec:
    """The spec a WES run request names: YAML (`AKOFLOW`) or a Python-API file (`PY`),
    which must be one of the attachments (the service fetches nothing)."""
    kind = form.workflow_type.upper()
    if kind not in ("AKOFLOW", "PY"):
        raise ApiError(400, f"workflow_type {form.workflow_type!r} is not supported: use "
                       "AKOFLOW (AkôFlow YAML) or PY (akoflow's Python API)")
    name = str(safe_name(form.workflow_url.removeprefix("file://")))
    data = form.attachments.get(name)
    if data is None:
        raise ApiError(400, f"workflow_url {form.workflow_url!r} must name one of the "
                       f"attachments ({', '.join(sorted(form.attachments)) or 'none sent'}); "
                       "this service fetches nothing")
    if kind == "PY":
        spec = parse_yaml(_compile(name, data, form.attachments, form.workflow_params), name)
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, f"{name} is not UTF-8 text") from None
        spec = parse_yaml(text, name)
        _params_as_env(spec, form.workflow_params)
    site = form.engine_params.get("site")
    if site:
        spec.runtime = str(site)
    return spec


def _compile(name: str, data: bytes, files: dict[str, bytes], params: dict[str, Any]) -> str:
    with tempfile.TemporaryDirectory(prefix="akoflow-wes-") as tmp:
        write_attachments(Path(tmp), {**files, name: data})
        text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        return compile_python(Path(tmp) / safe_name(name), text)


def _params_as_env(spec: WorkflowSpec, params: dict[str, Any]) -> None:
    """YAML has no parameters: WES params become environment variables of every activity."""
    for key in params:
        if not ENV_NAME.fullmatch(key):
            raise ApiError(422, f"workflow_params key {key!r} is not an environment variable "
                           "name ([A-Za-z_][A-Za-z0-9_]*)")
    env = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    for act in spec.activities:
        act.env = {**env, **act.env}

