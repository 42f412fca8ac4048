"""Workflow Run RO-Crate of one run: a zip a person can archive, publish or hand to a reviewer.

Payload (inside the zip; `crate_payload` has the caps):

    workflow/<name>.yaml              the spec as the user wrote it, secrets redacted
    data/<path>                       the run's files, by their path in the work directory
    provenance/prov.json              the PROV-JSON export
    provenance/run-log.json           the run log: every event, as JSON
    logs/<activity>/<attempt>/stdout  stdout and stderr of every attempt
    logs/<activity>/<attempt>/stderr

Profiles claimed on RO-Crate 1.1 (each checked by `roc-validator` in the tests, REQUIRED
level): Process Run Crate 0.5, Workflow Run Crate 0.5, Provenance Run Crate 0.5 and
Workflow RO-Crate 1.0. As Provenance Run Crate models a run: the workflow (a
ComputationalWorkflow and HowTo) has one HowToStep per activity, whose `workExample` is
that activity's tool (a SoftwareApplication, `hasPart` of the workflow); every attempt is a
CreateAction whose `instrument` is the tool it executed, wrapped by a ControlAction whose
`instrument` is the step; akoflow's OrganizeAction holds the ControlActions and has the
run's CreateAction as its `result`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rocrate.model.computerlanguage import ComputerLanguage  # type: ignore[import-untyped]
from rocrate.model.contextentity import ContextEntity  # type: ignore[import-untyped]
from rocrate.model.person import Person  # type: ignore[import-untyped]
from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]

import akoflow
from akoflow.manifest import Manifest
from akoflow.provenance.crate_payload import Limits, Payload, write_zip
from akoflow.provenance.crate_terms import (
    CONTEXT_TERMS,
    PROFILES,
    WFRUN_CONTEXT,
    action_status,
    iso,
    license_entity,
    media_type,
    one_or_many,
    spec_text,
)
from akoflow.provenance.prov import document_of, serialize
from akoflow.provenance.run import RunData, load_run
from akoflow.spec.secrets import scrub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrateResult:
    path: Path
    files: int  # data files inside
    left_out: int  # data files described but not inside (too big, gone)
    left_out_bytes: int
    logs_cut: int  # stdout/stderr files cut to their head and end


def write_crate(m: Manifest, wf_id: int, out_path: str | Path, *, license: str | None = None,
                limits: Limits | None = None) -> CrateResult:
    """Write the run's RO-Crate zip to `out_path`."""
    run = load_run(m, wf_id)
    crate = ROCrate(version="1.1")
    builder = _Crate(crate, m, run, Payload(limits or Limits()), license)
    builder.fill()
    metadata = json.dumps(crate.metadata.generate(), indent=1, ensure_ascii=False)
    out = write_zip(Path(out_path), scrub(metadata, builder.secrets).encode(),
                    builder.payload.members)
    p = builder.payload
    log.info("RO-Crate of workflow %d written to %s", wf_id, out)
    return CrateResult(out, len(p.members) - builder.non_data, len(p.left_out),
                       sum(g.size or 0 for g in p.left_out), builder.logs_cut)


def _props(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _ref(entity: Any) -> dict[str, str]:
    return {"@id": entity if isinstance(entity, str) else entity.id}


class _Crate:
    def __init__(self, crate: Any, m: Manifest, run: RunData, payload: Payload,
                 license: str | None) -> None:
        self.c, self.m, self.run, self.wf = crate, m, run, run.workflow
        self.payload = payload
        self.license = license
        self.data: dict[str, str] = {}  # work-directory path -> entity id
        self.last = {r.entry.path: r.entry for r in run.files}  # newest observation
        self.non_data = 0  # members that are not data files (spec, PROV, logs)
        self.logs_cut = 0
        text, self.secrets = spec_text(self.wf)
        self.spec = text

    def fill(self) -> None:
        wf = self.wf
        self._root()
        workflow, steps = self._workflow()
        agent = self.c.add(Person(self.c, f"#user-{wf.owner or 'unknown'}",
                                  properties={"name": wf.owner or "unknown"}))
        engine = self.c.add(ContextEntity(self.c, f"#akoflow-{akoflow.__version__}", properties={
            "@type": "SoftwareApplication", "name": "akoflow",
            "version": akoflow.__version__}))
        action = self.c.add(ContextEntity(self.c, f"#run-{wf.id}", properties=_props(**{
            "@type": "CreateAction", "name": f"Run {wf.id} of {wf.name}",
            "instrument": _ref(workflow), "startTime": iso(wf.started_at),
            "endTime": iso(wf.finished_at), "actionStatus": action_status(wf.status),
            "agent": _ref(agent), "error": wf.message,
            "description": f"akoflow run of workflow {wf.name} on site {wf.site or wf.runtime}"
                           f": {wf.status}"})))
        self.c.root_dataset["author"] = _ref(agent)
        self._run_files(action)
        controls, attempts = self._attempts(agent, steps)
        self.c.root_dataset["mentions"] = one_or_many([_ref(action), *map(_ref, attempts)])
        self._provenance(action)
        self.c.add(ContextEntity(self.c, f"#organize-{wf.id}", properties=_props(**{
            "@type": "OrganizeAction", "name": f"akoflow orchestration of run {wf.id}",
            "instrument": _ref(engine), "result": _ref(action),
            "object": [_ref(c) for c in controls] or None,
            "startTime": iso(wf.started_at), "endTime": iso(wf.finished_at),
            "actionStatus": action_status(wf.status), "agent": _ref(agent)})))
        self._describe_root()
        self._readme()

    def _root(self) -> None:
        root = self.c.root_dataset
        root["name"] = f"{self.wf.name} run {self.wf.id}"
        for uri, name in PROFILES.items():
            root.append_to("conformsTo", self.c.add(ContextEntity(
                self.c, uri, properties={"@type": "CreativeWork", "name": name,
                                         "version": uri.rsplit("/", 1)[-1]})))
        lic_id, lic_props = license_entity(self.license)
        root["license"] = self.c.add(ContextEntity(self.c, lic_id, properties=lic_props))
        if WFRUN_CONTEXT not in self.c.metadata.extra_contexts:
            self.c.metadata.extra_contexts.append(WFRUN_CONTEXT)
        self.c.metadata.extra_terms.update(CONTEXT_TERMS)

    def _describe_root(self) -> None:
        p, wf = self.payload, self.wf
        text = f"akoflow workflow run {wf.id} of {wf.name!r}: {wf.status}."
        if p.left_out:
            size = sum(g.size or 0 for g in p.left_out)
            text += (f" {len(p.left_out)} data files ({size:,} bytes) are described but not "
                     "inside the crate (too large for its caps, or gone); each says why.")
        if self.logs_cut:
            text += f" {self.logs_cut} logs were cut to their first and last bytes."
        self.c.root_dataset["description"] = text

    def _readme(self) -> None:
        """README.md: what the crate is, and every file it describes but does not hold."""
        wf, p = self.wf, self.payload
        lines = [f"# {wf.name}, run {wf.id}", "", f"An akoflow run ({wf.status}) packed as a "
                 "Workflow Run RO-Crate: `ro-crate-metadata.json` describes it; the spec is in "
                 "`workflow/`, the files the run used and made in `data/`, stdout and stderr "
                 "of every attempt in `logs/`, W3C PROV and the run log in `provenance/`.", ""]
        if p.left_out:
            lines += ["## Files not in this crate", "",
                      f"Caps: {p.limits.max_file_bytes:,} bytes per data file, "
                      f"{p.limits.max_data_bytes:,} bytes of data in all "
                      "(`akoflow crate --max-file-bytes/--max-data-bytes`).", ""]
            lines += [f"- `{g.path}` ({'?' if g.size is None else f'{g.size:,}'} bytes): "
                      f"{g.why}" for g in p.left_out]
            lines.append("")
        if self.logs_cut:
            lines += [f"{self.logs_cut} logs were longer than {p.limits.max_log_bytes:,} bytes"
                      " and keep their beginning and end around a line that says so.", ""]
        member = p.add_bytes("README.md", scrub("\n".join(lines), self.secrets).encode())
        self.non_data += 1
        self.c.add_file(dest_path=member.arcname, properties={
            "name": "README", "about": {"@id": "./"}, "encodingFormat": "text/markdown",
            "contentSize": str(member.size())})

    def _workflow(self) -> tuple[Any, dict[str, Any]]:
        wf = self.wf
        lang = self.c.add(ComputerLanguage(self.c, "#akoflow-yaml", properties={
            "name": "AkôFlow workflow YAML", "alternateName": "akoflow"}))
        tools, steps = [], {}
        ran = {name for name, _ in self.run.attempt_of}
        # A tool must be the instrument of some action: activities that never ran (skipped,
        # cancelled or still pending) have no step here; the spec file lists them all.
        for a in (a for a in self.run.activities if a.name in ran):
            tool = self.c.add(ContextEntity(self.c, f"#tool-{a.name}", properties=_props(**{
                "@type": "SoftwareApplication", "name": a.name,
                "description": f"the `run` command of activity {a.name} (bash)",
                "softwareRequirements": a.image})))
            tools.append(tool)
            steps[a.name] = self.c.add(ContextEntity(self.c, f"#step-{a.name}", properties={
                "@type": "HowToStep", "name": a.name, "position": str(a.seq),
                "workExample": _ref(tool)}))
        self.non_data += 1
        member = self.payload.add_bytes(f"workflow/{wf.name}.yaml", self.spec.encode())
        workflow = self.c.add_workflow(dest_path=member.arcname, main=True, lang=lang,
                                       properties=_props(
            **{"@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"]},
            name=wf.name, description=f"namespace {wf.namespace}, runtime {wf.runtime}; "
                                      f"{len(steps)} of {len(self.run.activities)} "
                                      "activities ran and are steps here",
            step=[_ref(s) for s in steps.values()] or None,
            hasPart=[_ref(t) for t in tools] or None, encodingFormat="application/yaml",
            contentSize=str(member.size())))
        return workflow, steps

    def _file(self, path: str) -> str:
        """The entity of a work-directory file: inside the crate when it fits, else a
        contextual entity that says why it is not (and where it was)."""
        ident = self.data.get(path)
        if ident is not None:
            return ident
        last = self.last[path]
        full = Path(path) if Path(path).is_absolute() else Path(self.wf.work_dir) / path
        member, gone = self.payload.add_data_file(path, full)
        props = _props(name=path, dateModified=iso(last.mtime),
                       sha256=(last.hash or "").removeprefix("sha256:") or None)
        if member is not None:
            size = member.size()
            if size != last.size:
                props["description"] = (f"changed on disk after the run: the run left "
                                        f"{last.size} bytes")
            entity = self.c.add_file(dest_path=member.arcname, properties={
                **props, "contentSize": str(size), "encodingFormat": media_type(path)})
        else:
            assert gone is not None
            entity = self.c.add(ContextEntity(self.c, f"#left-out/{len(self.data)}", properties={
                **props, "@type": "CreativeWork", "contentSize": str(last.size),
                "url": full.as_uri(),
                "description": f"not in this crate: {gone.why}; it was {full}"}))
        self.data[path] = entity.id
        return str(entity.id)

    def _run_files(self, action: Any) -> None:
        """Inputs: files there before the run; results: generated files nobody read."""
        read = {r.entry.path for r in self.run.files
                if r.entry.role in ("used", "pre-existing", "invalidated")}
        inputs = sorted({r.entry.path for r in self.run.files
                         if r.entry.role == "pre-existing"})
        outputs = sorted({r.entry.path for r in self.run.files
                          if r.entry.role == "generated"} - read)
        if inputs:
            action["object"] = one_or_many([_ref(self._file(p)) for p in inputs])
        if outputs:
            action["result"] = one_or_many([_ref(self._file(p)) for p in outputs])

    def _attempts(self, agent: Any, steps: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        """One CreateAction per attempt (the tool run) inside a ControlAction (the step)."""
        by_key: dict[tuple[str, int], dict[str, set[str]]] = {}
        for r in self.run.files:
            slot = by_key.setdefault((r.activity, r.attempt), {"in": set(), "out": set()})
            if r.entry.role != "invalidated":  # a removal is neither input nor result
                slot["out" if r.entry.role == "generated" else "in"].add(r.entry.path)
        tails = {(t.activity, t.attempt): t for t in self.m.error_tails(self.wf.id, False)}
        controls, actions = [], []
        for (name, number), t in sorted(self.run.attempt_of.items()):
            files = by_key.get((name, number), {"in": set(), "out": set()})
            why = t.reason and f"{t.reason}: {t.message or ''}".rstrip(": ")
            action = self.c.add(ContextEntity(self.c, f"#attempt-{name}-{number}",
                                              properties=_props(**{
                "@type": "CreateAction", "name": f"{name} attempt {number}",
                "instrument": {"@id": f"#tool-{name}"},
                "startTime": iso(t.started_at), "endTime": iso(t.finished_at),
                "actionStatus": action_status(t.status), "agent": _ref(agent),
                "exitCode": t.exit_code, "error": why,
                "description": f"attempt {number} of activity {name}: {t.status}"
                               f"{' (' + why + ')' if why else ''}, {t.executor} job "
                               f"{t.job_id or '-'} on {t.node or 'an unknown node'}"})))
            actions.append(action)
            if files["in"]:
                action["object"] = one_or_many([_ref(self._file(p))
                                                for p in sorted(files["in"])])
            if files["out"]:
                action["result"] = one_or_many([_ref(self._file(p))
                                                for p in sorted(files["out"])])
            tail = tails.get((name, number))
            for stream in ("stdout", "stderr"):
                path = getattr(tail, f"{stream}_path", None) if tail else None
                text = getattr(tail, f"{stream}_tail", "") if tail else ""
                entity = self._log(name, number, stream, path, text, action.id)
                if entity is not None:
                    action.append_to("subjectOf", entity)
            controls.append(self.c.add(ContextEntity(
                self.c, f"#control-{name}-{number}", properties=_props(**{
                    "@type": "ControlAction", "name": f"orchestrate {name} attempt {number}",
                    "instrument": _ref(steps[name]), "object": _ref(action),
                    "actionStatus": action_status(t.status)}))))
        return controls, actions

    def _log(self, name: str, number: int, stream: str, path: str | None, tail: str,
             about: str) -> Any:
        dest = f"logs/{name}/{number}/{stream}"
        props: dict[str, Any] = {"name": f"{stream} of {name} attempt {number}",
                                 "encodingFormat": "text/plain", "about": {"@id": about}}
        src = Path(path) if path else None
        if src is not None and src.is_file():
            member, size = self.payload.add_log(dest, src)
            if member.head >= 0:
                self.logs_cut += 1
                props["description"] = (f"cut: the first {member.head:,} and last "
                                        f"{member.tail:,} of {size:,} bytes, with a marker "
                                        "line between them")
        elif tail:
            member = self.payload.add_bytes(dest, tail.encode())
            props["description"] = "tail kept by the manifest (the log file is gone)"
        else:
            return None
        self.non_data += 1
        return self.c.add_file(dest_path=member.arcname, properties={
            **props, "contentSize": str(member.size())})

    def _provenance(self, action: Any) -> None:
        """PROV-JSON and the run log, both about the run's CreateAction."""
        prov_json = scrub(serialize(document_of(self.run), "prov-json"), self.secrets)
        # A JSON array with one event per line: greppable, and the C encoder stays in use.
        events = ",\n".join(json.dumps(asdict(e)) for e in self.m.events(self.wf.id))
        runlog = scrub(f"[\n{events}\n]\n", self.secrets)
        made = []
        for dest, text, props in (
            ("provenance/prov.json", prov_json, {
                "name": "W3C PROV-JSON of the run",
                "conformsTo": {"@id": "https://www.w3.org/Submission/prov-json/"}}),
            ("provenance/run-log.json", runlog, {
                "name": "Run log (state transitions and events)"}),
        ):
            data = text.encode()
            member = self.payload.add_bytes(dest, data)
            self.non_data += 1
            made.append(self.c.add_file(dest_path=member.arcname, properties={
                **props, "encodingFormat": "application/json", "about": _ref(action),
                "contentSize": str(len(data))}))
        action.append_to("subjectOf", made)
