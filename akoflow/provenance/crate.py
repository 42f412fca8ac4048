"""Workflow Run RO-Crate of one run: a zip a person can archive, publish or hand to a reviewer.

Payload (copied into the zip):

    workflow/<name>.yaml              the spec as the user wrote it (the crate's mainEntity)
    provenance/prov.json              the PROV-JSON export
    provenance/run-log.json           the run log: every event, as JSON
    logs/<activity>/<attempt>/stdout  stdout and stderr of every attempt
    logs/<activity>/<attempt>/stderr

The data files themselves are *referenced* (file:// URIs with size, hash and time) but not
copied: on HPC they can be terabytes, and the crate must stay something one can mail.
Profiles: Process Run Crate, Workflow Run Crate (0.5) and Workflow RO-Crate (1.0), on
RO-Crate 1.1; one CreateAction for the run, one per attempt.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from rocrate.model.computerlanguage import (  # type: ignore[import-untyped]
    ComputerLanguage,
)
from rocrate.model.contextentity import ContextEntity  # type: ignore[import-untyped]
from rocrate.model.person import Person  # type: ignore[import-untyped]
from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]

import akoflow
from akoflow.manifest import Manifest
from akoflow.provenance.prov import document_of, serialize
from akoflow.provenance.run import RunData, load_run

log = logging.getLogger(__name__)

PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": "Process Run Crate",
    "https://w3id.org/ro/wfrun/workflow/0.5": "Workflow Run Crate",
}
WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
MAX_LOG_BYTES = 50 * 1024 * 1024  # bigger logs are cut to their end (and say so)
_SCHEMA = "http://schema.org/"


def write_crate(m: Manifest, wf_id: int, out_path: str | Path) -> Path:
    """Write the run's RO-Crate zip to `out_path`; returns the path."""
    run = load_run(m, wf_id)
    crate = ROCrate(version="1.1")
    _Crate(crate, m, run).fill()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    crate.write_zip(out)
    log.info("RO-Crate of workflow %d written to %s", wf_id, out)
    return out


def _status(status: str) -> dict[str, str]:
    """schema.org action status; a crate of a run still going says so rather than guess."""
    if status == "FINISHED":
        return {"@id": _SCHEMA + "CompletedActionStatus"}
    if status in ("FAILED", "CANCELLED", "SKIPPED"):
        return {"@id": _SCHEMA + "FailedActionStatus"}
    if status in ("PENDING", "READY"):
        return {"@id": _SCHEMA + "PotentialActionStatus"}
    return {"@id": _SCHEMA + "ActiveActionStatus"}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


def _describe(namespace: str, runtime: str, source: str | None) -> str:
    text = f"namespace {namespace}, runtime {runtime}"
    return f"{text}, loaded from {source}" if source else text


def _yaml(data: Any) -> str:
    """YAML of a spec built in Python (no original text); libyaml when present, since the
    pure-Python emitter takes seconds on a 10,000-activity spec."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return str(yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True))


def _props(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


class _Crate:
    def __init__(self, crate: Any, m: Manifest, run: RunData) -> None:
        self.c, self.m, self.run, self.wf = crate, m, run, run.workflow
        self.data: dict[str, Any] = {}  # relative path -> data entity
        self.last = {r.entry.path: r.entry for r in run.files}  # newest observation

    def fill(self) -> None:
        wf = self.wf
        self._root()
        workflow = self._workflow()
        agent = self.c.add(Person(self.c, f"#user-{wf.owner or 'unknown'}",
                                  properties={"name": wf.owner or "unknown"}))
        engine = self.c.add(ContextEntity(self.c, f"#akoflow-{akoflow.__version__}", properties={
            "@type": "SoftwareApplication", "name": "akoflow",
            "version": akoflow.__version__}))
        action = self.c.add_action(workflow, f"#run-{wf.id}", properties=_props(**{
            "@type": "CreateAction", "name": f"Run {wf.id} of {wf.name}",
            "startTime": _iso(wf.started_at), "endTime": _iso(wf.finished_at),
            "actionStatus": _status(wf.status), "agent": {"@id": agent.id},
            "error": wf.message}))
        self._run_files(action)
        self._attempts(agent)
        self._provenance(action)
        # The engine's part, as Provenance Run Crate models it: it organised the run.
        self.c.add_action(engine, f"#organize-{wf.id}", result=action, properties=_props(**{
            "@type": "OrganizeAction", "name": f"akoflow orchestration of run {wf.id}",
            "startTime": _iso(wf.started_at), "endTime": _iso(wf.finished_at),
            "agent": {"@id": agent.id}}))

    def _root(self) -> None:
        wf = self.wf
        root = self.c.root_dataset
        root["name"] = f"{wf.name} run {wf.id}"
        root["description"] = f"akoflow workflow run {wf.id} of {wf.name!r}: {wf.status}"
        # Workflow Run Crate asks for Workflow RO-Crate on the root too (rocrate puts it on
        # the metadata descriptor only).
        profiles = {**PROFILES, "https://w3id.org/workflowhub/workflow-ro-crate/1.0":
                    "Workflow RO-Crate"}
        for uri, name in profiles.items():
            root.append_to("conformsTo", self.c.add(ContextEntity(
                self.c, uri, properties={"@type": ["CreativeWork", "Profile"], "name": name,
                                         "version": uri.rsplit("/", 1)[-1]})))
        if WFRUN_CONTEXT not in self.c.metadata.extra_contexts:
            self.c.metadata.extra_contexts.append(WFRUN_CONTEXT)

    def _provenance(self, action: Any) -> None:
        """PROV-JSON and the run log, both about the run's CreateAction."""
        prov_json = serialize(document_of(self.run), "prov-json")
        prov = self.c.add_file(io.BytesIO(prov_json.encode()),
                               "provenance/prov.json", properties={
            "name": "W3C PROV-JSON of the run", "encodingFormat": "application/json",
            "conformsTo": {"@id": "https://www.w3.org/Submission/prov-json/"},
            "about": {"@id": action.id}})
        # A JSON array with one event per line: greppable, and the C encoder stays in use.
        events = ",\n".join(json.dumps(asdict(e)) for e in self.m.events(self.wf.id))
        runlog = self.c.add_file(io.BytesIO(f"[\n{events}\n]\n".encode()),
                                 "provenance/run-log.json", properties={
            "name": "Run log (state transitions and events)",
            "encodingFormat": "application/json", "about": {"@id": action.id}})
        action.append_to("subjectOf", [prov, runlog])

    def _workflow(self) -> Any:
        wf = self.wf
        text = wf.raw_spec or _yaml(json.loads(wf.spec_json))
        lang = self.c.add(ComputerLanguage(self.c, "#akoflow-yaml", properties={
            "name": "AkôFlow workflow YAML", "alternateName": "akoflow"}))
        steps = [self.c.add(ContextEntity(self.c, f"#step-{a.name}", properties={
            "@type": "HowToStep", "name": a.name, "position": str(a.seq)}))
            for a in self.run.activities]
        return self.c.add_workflow(io.BytesIO(text.encode()), f"workflow/{wf.name}.yaml",
                                   main=True, lang=lang, properties=_props(
            name=wf.name, description=_describe(wf.namespace, wf.runtime, wf.spec_path),
            step=[{"@id": s.id} for s in steps] or None,
            encodingFormat="application/yaml",
            url=Path(wf.spec_path).as_uri() if wf.spec_path and Path(wf.spec_path).is_absolute()
            else None))

    def _file(self, path: str) -> Any:
        """A data file, by reference: absolute file:// URI under the work directory."""
        entity = self.data.get(path)
        if entity is not None:
            return entity
        last = self.last[path]
        full = Path(path) if Path(path).is_absolute() else Path(self.wf.work_dir) / path
        entity = self.c.add_file(full.as_uri(), fetch_remote=False, validate_url=False,
                                 properties=_props(
            name=path, contentSize=str(last.size), dateModified=_iso(last.mtime),
            sha256=(last.hash or "").removeprefix("sha256:") or None))
        self.data[path] = entity
        return entity

    def _run_files(self, action: Any) -> None:
        """Inputs: files there before the run; results: generated files nobody read."""
        read = {r.entry.path for r in self.run.files if r.entry.role != "generated"}
        inputs = sorted({r.entry.path for r in self.run.files
                         if r.entry.role == "pre-existing"})
        outputs = sorted({r.entry.path for r in self.run.files
                          if r.entry.role == "generated"} - read)
        if inputs:
            action["object"] = [{"@id": self._file(p).id} for p in inputs]
        if outputs:
            action["result"] = [{"@id": self._file(p).id} for p in outputs]

    def _attempts(self, agent: Any) -> None:
        by_key: dict[tuple[str, int], dict[str, list[str]]] = {}
        for r in self.run.files:
            slot = by_key.setdefault((r.activity, r.attempt), {"in": [], "out": []})
            slot["out" if r.entry.role == "generated" else "in"].append(r.entry.path)
        tails = {(t.activity, t.attempt): t for t in self.m.error_tails(self.wf.id, False)}
        for (name, number), t in sorted(self.run.attempt_of.items()):
            files = by_key.get((name, number), {"in": [], "out": []})
            action = self.c.add_action({"@id": f"#step-{name}"}, f"#attempt-{name}-{number}",
                                       properties=_props(**{
                "@type": "CreateAction", "name": f"{name} attempt {number}",
                "startTime": _iso(t.started_at), "endTime": _iso(t.finished_at),
                "actionStatus": _status(t.status),
                "agent": {"@id": agent.id}, "exitCode": t.exit_code,
                "error": t.reason and f"{t.reason}: {t.message or ''}".rstrip(": ")}))
            if files["in"]:
                action["object"] = [{"@id": self._file(p).id} for p in sorted(set(files["in"]))]
            if files["out"]:
                action["result"] = [{"@id": self._file(p).id}
                                    for p in sorted(set(files["out"]))]
            tail = tails.get((name, number))
            for stream in ("stdout", "stderr"):
                path = getattr(tail, f"{stream}_path", None) if tail else None
                text = getattr(tail, f"{stream}_tail", "") if tail else ""
                entity = self._log(name, number, stream, path, text, action.id)
                if entity is not None:
                    action.append_to("subjectOf", entity)

    def _log(self, name: str, number: int, stream: str, path: str | None, tail: str,
             about: str) -> Any:
        dest = f"logs/{name}/{number}/{stream}"
        props: dict[str, Any] = {"name": f"{stream} of {name} attempt {number}",
                                 "encodingFormat": "text/plain", "about": {"@id": about}}
        src = Path(path) if path else None
        if src is not None and src.is_file():
            size = src.stat().st_size
            if size <= MAX_LOG_BYTES:
                return self.c.add_file(str(src), dest, properties=props)
            with open(src, "rb") as fh:
                fh.seek(size - MAX_LOG_BYTES)
                data = fh.read()
            props["description"] = f"last {MAX_LOG_BYTES} of {size} bytes"
            return self.c.add_file(io.BytesIO(data), dest, properties=props)
        if not tail:
            return None
        props["description"] = "tail kept by the manifest (the log file is gone)"
        return self.c.add_file(io.BytesIO(tail.encode()), dest, properties=props)
