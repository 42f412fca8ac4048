"""Pegasus WMS 5 workflows (YAML) → `WorkflowSpec`, so `akoflow run` takes a Pegasus file as is.

A job becomes an activity running its transformation's executable with its arguments (LFNs are
file names in the shared work directory, as in a Pegasus job's scratch directory), its stdin /
stdout / stderr redirected, its env profiles, and resources from its pegasus/condor/globus
profiles. Edges are `jobDependencies` plus producer → consumer on shared files. Inputs no job
makes come from the replica catalog: one `stage_in` activity copies their `file://` replicas
into the work directory first (Pegasus plans stage-in jobs the same way), so a missing replica
fails there, naming the file, and provenance records where each input came from.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from yaml.nodes import MappingNode, Node

from akoflow.spec import pegasus_catalogs as C
from akoflow.spec.checked import ValidationError
from akoflow.spec.dag import graph_problems
from akoflow.spec.errors import SpecError, SpecIssue
from akoflow.spec.loader import compose_text, is_pegasus, read_text
from akoflow.spec.models import ActivitySpec, Resources, WorkflowSpec
from akoflow.spec.pegasus_check import construct, line_at, path_of, validate
from akoflow.spec.wfformat import sanitize_name

log = logging.getLogger(__name__)

STAGE_IN = "stage_in"
SUB_WORKFLOWS = {"pegasusWorkflow": "a Pegasus sub-workflow", "condorWorkflow": "a DAGMan "
                 "sub-workflow"}
# Catalog files Pegasus 5 reads from the planning directory when the workflow has none inline.
SIBLING_CATALOGS = {"transformationCatalog": ("transformations.yml", "tc-5.0.yml"),
                    "replicaCatalog": ("replicas.yml", "rc-5.0.yml")}
MAX_LISTED = 5


def import_pegasus(path: str | Path, *, strict: bool = False,
                   warnings: list[SpecIssue] | None = None) -> WorkflowSpec:
    """Read a Pegasus 5 YAML workflow file (what `akoflow import pegasus` does)."""
    src = str(path)
    text = read_text(Path(path))
    root = compose_text(text, src)
    if not is_pegasus(root):
        raise SpecError([SpecIssue(src, None, "", "not a Pegasus 5 workflow (no top-level "
                                   "pegasus, jobs or catalog keys)")])
    return from_document(root, text, source=src, strict=strict, warnings=warnings)


def from_document(root: MappingNode, text: str, *, source: str | None, strict: bool = False,
                  warnings: list[SpecIssue] | None = None) -> WorkflowSpec:
    """A composed Pegasus document → spec; schema problems and unusable jobs raise SpecError."""
    doc = construct(root, source)
    validate(doc, root, source)
    imp = _Importer(doc, root, source)
    imp.siblings()
    spec = imp.build(text)
    for w in imp.warnings:
        log.warning("%s", w)
    if strict and imp.warnings:
        raise SpecError(imp.warnings)
    if warnings is not None:
        warnings.extend(imp.warnings)
    return spec


def _words(arguments: Sequence[Any]) -> list[str]:
    """Pegasus joins a job's arguments with spaces and the job's launcher splits them again,
    honouring quotes; no shell ever expands them, so neither does akoflow (each word quoted)."""
    text = " ".join(str(a) for a in arguments)
    try:
        return shlex.split(text)
    except ValueError:  # an unbalanced quote: keep the arguments as they were given
        return [str(a) for a in arguments]


def _io(job: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(files the job reads, files it writes), stdin/stdout/stderr included."""
    ins = [u["lfn"] for u in job.get("uses", []) if u["type"] in ("input", "inout")]
    outs = [u["lfn"] for u in job.get("uses", []) if u["type"] in ("output", "checkpoint")]
    ins += [job["stdin"]] if job.get("stdin") else []
    outs += [job[s] for s in ("stdout", "stderr") if job.get(s)]
    return list(dict.fromkeys(ins)), list(dict.fromkeys(outs))


def _safe_lfn(lfn: str) -> bool:
    p = PurePosixPath(lfn)
    return bool(lfn) and not p.is_absolute() and ".." not in p.parts and "\x00" not in lfn


class _Importer:
    """One pass over the jobs, collecting every problem (with its line) before giving up."""

    def __init__(self, doc: dict[str, Any], root: Node, source: str | None) -> None:
        self.doc, self.root, self.source = doc, root, source
        self.errors: list[SpecIssue] = []
        self.warnings: list[SpecIssue] = []
        self.ignored: set[str] = set()  # profile keys akoflow has no use for

    def issue(self, parts: Sequence[Any], msg: str, *, warn: bool = False) -> None:
        found = SpecIssue(self.source, line_at(self.root, parts), path_of(parts), msg)
        (self.warnings if warn else self.errors).append(found)

    def siblings(self) -> None:
        """Catalogs the workflow does not inline, from Pegasus's default files beside it."""
        if self.source is None:
            return
        for key, (name, schema) in SIBLING_CATALOGS.items():
            path = Path(self.source).parent / name
            if key not in self.doc and path.is_file():
                text = read_text(path)
                root = compose_text(text, str(path))
                catalog = construct(root, str(path))
                validate(catalog, root, str(path), schema)
                self.doc[key] = catalog

    def build(self, text: str) -> WorkflowSpec:
        jobs: list[dict[str, Any]] = self.doc["jobs"]
        names = self._names(jobs)
        parents = self._dependencies(names)
        made: dict[str, list[str]] = {}
        for job in jobs:
            for lfn in _io(job)[1]:
                made.setdefault(lfn, []).append(job["id"])
        acts: dict[str, ActivitySpec] = {}  # job id → its activity
        raw: dict[str, list[str]] = {}  # input nobody makes → the jobs that read it
        for i, job in enumerate(jobs):
            ins, outs = _io(job)
            for lfn in (f for f in ins + outs if not _safe_lfn(f)):
                self.issue(("jobs", i), f"file {lfn!r} must be a relative path inside the "
                           "work directory")
            for lfn in ins:
                producers = [p for p in made.get(lfn, []) if p != job["id"]]
                parents[job["id"]].update(dict.fromkeys(producers))
                if lfn not in made:
                    raw.setdefault(lfn, []).append(job["id"])
            if job["id"] in names and (act := self._activity(i, job, names[job["id"]], outs)):
                acts[job["id"]] = act
        if self.ignored:
            listed = ", ".join(sorted(self.ignored))
            self.issue((), f"profiles akoflow does not use were ignored: {listed}", warn=True)
        stage, readers = self._stage_in(raw, set(names.values()))
        for job_id, act in acts.items():
            act.depends_on = ([stage.name] if stage and job_id in readers else []) + [
                names[p] for p in parents[job_id]]
        return self._spec(([stage] if stage else []) + list(acts.values()), text)

    def _names(self, jobs: list[dict[str, Any]]) -> dict[str, str]:
        """Job id → activity name `<transformation>_<id>`, as Pegasus names its jobs."""
        names: dict[str, str] = {}
        for i, job in enumerate(jobs):
            if job["id"] in names:
                self.issue(("jobs", i, "id"), f"duplicate job id {job['id']!r}")
                continue
            base = sanitize_name(f"{job.get('name') or job['type']}_{job['id']}")
            name, n = base, 1
            while name in names.values():
                n += 1
                name = sanitize_name(f"{base}_{n}")
            names[job["id"]] = name
        return names

    def _dependencies(self, names: dict[str, str]) -> dict[str, dict[str, None]]:
        parents: dict[str, dict[str, None]] = {job_id: {} for job_id in names}
        for i, dep in enumerate(self.doc.get("jobDependencies") or []):
            if dep.get("id") not in names:
                self.issue(("jobDependencies", i, "id"), f"unknown job id {dep.get('id')!r}")
                continue
            for j, child in enumerate(dep.get("children") or []):
                if child not in names:
                    self.issue(("jobDependencies", i, "children", j),
                               f"unknown job id {child!r}")
                elif child != dep["id"]:
                    parents[child][dep["id"]] = None
        return parents

    def _activity(self, i: int, job: dict[str, Any], name: str, outs: list[str]
                  ) -> ActivitySpec | None:
        if job["type"] in SUB_WORKFLOWS:
            self.issue(("jobs", i), f"job {job['id']!r} is {SUB_WORKFLOWS[job['type']]} "
                       f"({job['type']}, file {job.get('file')!r}): sub-workflows are not "
                       "supported; import that workflow on its own")
            return None
        tc = self.doc.get("transformationCatalog") or {}
        containers = {c["name"]: c for c in tc.get("containers") or []}
        try:
            tx = C.find_transformation(tc.get("transformations") or [], job)
            site = C.pick_site(tx)
            exe = C.executable(tx, site)
            image = C.container_image(containers, site["container"]) if site.get(
                "container") else None
            profiles = C.Profiles()
            for source in (self.doc, tx, site, job):
                profiles.add(source.get("profiles"))
            res, runtime, notes = C.resources(profiles)
        except C.CatalogError as e:
            self.issue(("jobs", i), f"job {job['id']!r}: {e}")
            return None
        for note in notes:
            self.issue(("jobs", i), f"job {job['id']!r}: {note}", warn=True)
        self.ignored |= profiles.ignored
        env = {k: v for k, v in profiles.env.items() if C.ENV_NAME.match(k)}
        for key in sorted(set(profiles.env) - set(env)):
            self.issue(("jobs", i), f"job {job['id']!r}: env profile {key!r} is not a valid "
                       "variable name: ignored", warn=True)
        command = shlex.join([exe, *_words(job.get("arguments") or [])])
        for stream, op in (("stdin", "<"), ("stdout", ">"), ("stderr", "2>")):
            if job.get(stream):
                command += f" {op} {shlex.quote(job[stream])}"
        folders = sorted({str(PurePosixPath(f).parent) for f in outs} - {"."})
        script = (f"mkdir -p -- {shlex.join(folders)}\n" if folders else "") + command + "\n"
        try:
            return ActivitySpec(name=name, run=script, image=image, env=env,
                                resources=Resources(**res), estimate=runtime,
                                line=line_at(self.root, ("jobs", i)))
        except ValidationError as e:
            for err in e.errors():
                self.issue(("jobs", i), f"job {job['id']!r}: {err['msg']}")
            return None

    def _stage_in(self, raw: dict[str, list[str]], taken: set[str]
                  ) -> tuple[ActivitySpec | None, set[str]]:
        """The activity copying replica-catalog inputs in, and the ids of the jobs reading
        them (its children)."""
        replicas = {r["lfn"]: r for r in (self.doc.get("replicaCatalog") or {}).get(
            "replicas") or [] if not r.get("regex")}
        staged = [(lfn, C.replica_pfn(replicas[lfn])) for lfn in raw if lfn in replicas]
        unknown = [lfn for lfn in raw if lfn not in replicas]
        if unknown:
            self._note_inputs(unknown, "input files with no replica that no job makes (they "
                              "must be in the work directory already)")
        absent = [f"{lfn} ({pfn})" for lfn, pfn in staged
                  if pfn and (path := C.local_path(pfn)) and not Path(path).exists()]
        if absent:
            self._note_inputs(absent, "input files whose replicas do not exist on this machine "
                              f"(the {STAGE_IN} activity fails unless they exist where it runs)")
        remote = [f"{lfn} ({pfn})" for lfn, pfn in staged if pfn and not C.local_path(pfn)]
        if remote:
            self._note_inputs(remote, "input files with no file:// replica (only local files are "
                              "staged)")
        if not staged:
            return None, set()
        name = STAGE_IN
        while name in taken:
            name += "_"
        readers = {job for lfn, _ in staged for job in raw[lfn]}
        # On the submit host, as Pegasus's stage-in jobs: where the replicas' paths are, and
        # outside any container (a job's image sees only the work directory).
        return ActivitySpec(name=name, run=_stage_script(staged), runtime="local"), readers

    def _note_inputs(self, files: list[str], what: str) -> None:
        shown = ", ".join(files[:MAX_LISTED]) + (", ..." if len(files) > MAX_LISTED else "")
        self.issue(("replicaCatalog",), f"{what}, {len(files)}: {shown}", warn=True)

    def _spec(self, acts: list[ActivitySpec], text: str) -> WorkflowSpec:
        if not self.errors:
            for p in graph_problems([a.name for a in acts], [a.depends_on for a in acts]):
                self.issue(("jobs",), f"activity {acts[p.index].name!r}: {p.message}")
        if self.errors:
            raise SpecError(sorted(self.errors, key=lambda e: e.line or 0))
        try:
            return WorkflowSpec(name=sanitize_name(str(self.doc["name"]), "workflow"),
                                activities=acts, raw=text, source=self.source)
        except ValidationError as e:
            raise SpecError(SpecIssue(self.source, None, ".".join(map(str, err["loc"])),
                                      err["msg"]) for err in e.errors()) from None


def _stage_script(staged: list[tuple[str, str | None]]) -> str:
    """Copy each input in (a copy, not a link: containers see only the work directory, and a
    job writing in place must not change the replica); report every missing one, then fail."""
    lines = [
        "# Inputs from the Pegasus replica catalog, copied into the work directory.",
        "_missing=0",
        "_stage() {",
        '  if [ ! -e "$2" ]; then',
        '    echo "akoflow: input $1: replica $2 does not exist" >&2; _missing=1; return 0',
        "  fi",
        '  mkdir -p -- "$(dirname -- "$1")" && cp -pR -- "$2" "$1"',
        "}",
    ]
    for lfn, pfn in staged:
        path = C.local_path(pfn) if pfn else None
        if path is not None:
            lines.append(f"_stage {shlex.quote(lfn)} {shlex.quote(path)}")
        else:
            msg = f"akoflow: input {lfn}: cannot stage {pfn} (only file:// replicas are staged)"
            lines.append(f"[ -e {shlex.quote(lfn)} ] || {{ echo {shlex.quote(msg)} >&2; "
                         "_missing=1; }")
    lines.append("exit $_missing")
    return "\n".join(lines) + "\n"
