"""W3C PROV export of one workflow run, built from the manifest with the `prov` library.

The model, in the `akoflow:` namespace:

- every attempt is a `prov:Activity` (an activity retried twice is three PROV activities:
  each attempt really ran and may have read or written files);
- every file *version* (path, size, mtime) is a `prov:Entity`, so a file overwritten by a
  later task is a new entity rather than a contradiction; pre-existing inputs are marked;
- agents: the user who registered the workflow, the `akoflow` software agent (with its
  version) acting on the user's behalf, and the site the attempts ran on;
- the workflow definition is a `prov:Plan`; the whole run is one more activity that started
  every attempt (`wasStartedBy`), so a reader can go from any attempt to its workflow;
- relations: `used`, `wasGeneratedBy`, `wasInvalidatedBy` (a file removed: deleted, or
  renamed away), `wasInformedBy` (an attempt by its DAG parents'
  final attempts), `wasAssociatedWith` (with the plan), `wasDerivedFrom` (each generated
  file from the files the same attempt used), `actedOnBehalfOf`, `wasAttributedTo`.

A plan rather than a bundle: bundles do not survive Turtle, and the export must round-trip
through every supported format with every relation intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import warnings
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from prov.constants import PROV_N_MAP
from prov.identifier import Namespace, QualifiedName
from prov.model import (
    PROV,
    PROV_LABEL,
    PROV_TYPE,
    ProvActivity,
    ProvAgent,
    ProvDocument,
    ProvRelation,
)
from prov.serializers.provjson import ProvJSONEncoder

import akoflow
from akoflow.manifest import AttemptRecord, Manifest
from akoflow.provenance.run import AttemptKey, FileVersion, RunData, load_run, version
from akoflow.spec.secrets import redact_text

log = logging.getLogger(__name__)

NS_PREFIX = "akoflow"
NS_URI = "https://w3id.org/akoflow/prov#"
# Cap on wasDerivedFrom per attempt: a task that reads 10,000 files and writes 10,000 would
# otherwise add 10^8 relations. When it is hit, the attempt says so (derivationsTruncated).
MAX_DERIVATIONS_PER_ATTEMPT = 10_000
# Public format name -> (prov serializer, extra arguments).
FORMATS: dict[str, tuple[str, dict[str, str]]] = {
    "prov-json": ("json", {}),
    "prov-n": ("provn", {}),
    "prov-xml": ("xml", {}),
    "rdf": ("rdf", {"rdf_format": "turtle"}),
}
_ALIASES = {"json": "prov-json", "provn": "prov-n", "xml": "prov-xml", "turtle": "rdf",
            "ttl": "rdf"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def build_document(m: Manifest, wf_id: int) -> ProvDocument:
    """The PROV document of workflow `wf_id` as the manifest holds it now."""
    return document_of(load_run(m, wf_id))


def document_of(run: RunData) -> ProvDocument:
    """The PROV document of an already loaded run (callers that need the run data too)."""
    return _Builder(run).build()


def export(m: Manifest, wf_id: int, fmt: str = "prov-json") -> str:
    """Serialize the workflow's provenance: prov-json, prov-n, prov-xml or rdf (Turtle)."""
    return serialize(build_document(m, wf_id), fmt)


def serialize(doc: ProvDocument, fmt: str) -> str:
    name, kwargs = FORMATS[_format(fmt)]
    if name == "json":
        # prov's own encoder through json.dumps: same text as doc.serialize(), but one-shot
        # dumps takes the C encoder where json.dump streams through the Python one.
        return json.dumps(doc, cls=ProvJSONEncoder)
    with warnings.catch_warnings():
        _quiet_rdflib()
        text = doc.serialize(format=name, **kwargs)
    return text.decode() if isinstance(text, bytes) else str(text)


def parse(text: str, fmt: str) -> ProvDocument:
    """Read an export back (what a consumer of the file would do); used to check round trips."""
    name, kwargs = FORMATS[_format(fmt)]
    source: io.IOBase = io.BytesIO(text.encode()) if name == "xml" else io.StringIO(text)
    with warnings.catch_warnings():
        _quiet_rdflib()
        doc: ProvDocument = ProvDocument.deserialize(source, format=name, **kwargs)
    return doc


def _quiet_rdflib() -> None:
    # prov's RDF code calls rdflib APIs that rdflib 7 deprecates: one warning per record,
    # about code neither we nor the user can change.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"rdflib\.")


def relation_counts(doc: ProvDocument) -> dict[str, int]:
    """Number of relations of each PROV type (`used`, `wasGeneratedBy`, ...)."""
    counts: dict[str, int] = defaultdict(int)
    for rec in doc.get_records(ProvRelation):
        counts[PROV_N_MAP[rec.get_type()]] += 1
    return dict(counts)


def _format(fmt: str) -> str:
    key = _ALIASES.get(fmt.lower(), fmt.lower())
    if key not in FORMATS:
        raise ValueError(f"unknown PROV format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return key


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


def _attrs(pairs: dict[Any, Any]) -> dict[Any, Any]:
    """Drop unknown (None) values: PROV has no null, and an absent attribute says so."""
    return {k: v for k, v in pairs.items() if v is not None}


def _safe(text: str, limit: int = 60) -> str:
    return _UNSAFE.sub("_", text)[:limit] or "_"


class _Builder:
    def __init__(self, run: RunData) -> None:
        self.run = run
        self.doc = ProvDocument()
        self.ns: Namespace = self.doc.add_namespace(NS_PREFIX, NS_URI)
        self.wf = run.workflow
        self.tag = f"wf{self.wf.id}"
        self.acts: dict[AttemptKey, ProvActivity] = {}
        self.n_assoc = 0
        self._names: dict[str, QualifiedName] = {}

    def q(self, local: str) -> QualifiedName:
        name = self._names.get(local)
        if name is None:  # attribute names repeat on every record: make each QName once
            name = self._names[local] = self.ns[local]
        return name

    def build(self) -> ProvDocument:
        self._agents_and_plan()
        self._attempts()
        self._files()
        self._informed()
        log.debug("PROV document of workflow %d: %d records", self.wf.id,
                  len(self.doc.records))
        return self.doc

    def _agents_and_plan(self) -> None:
        wf, q = self.wf, self.q
        self.user: ProvAgent = self.doc.agent(q(f"user.{_safe(wf.owner or 'unknown')}"), {
            PROV_TYPE: PROV["Person"], q("name"): wf.owner or "unknown"})
        self.software: ProvAgent = self.doc.agent(
            q(f"software.akoflow-{_safe(akoflow.__version__)}"),
            {PROV_TYPE: PROV["SoftwareAgent"], q("name"): "akoflow",
             q("version"): akoflow.__version__})
        site = wf.site or wf.runtime
        self.site: ProvAgent = self.doc.agent(q(f"site.{_safe(site)}"), {
            PROV_TYPE: q("Site"), q("name"): site})
        # Of the spec text with its secret fields redacted: a hash of a short secret could
        # be searched for. (A YAML spec: the same bytes as the crate's workflow file.)
        text = redact_text(wf.raw_spec or wf.spec_json)
        spec_hash = hashlib.sha256(text.encode()).hexdigest()
        self.plan = self.doc.entity(q(f"workflow.{self.tag}"), _attrs({
            PROV_TYPE: PROV["Plan"], PROV_LABEL: wf.name, q("name"): wf.name,
            q("workflowId"): wf.id, q("namespace"): wf.namespace, q("runtime"): wf.runtime,
            q("specPath"): wf.spec_path, q("specSha256"): "sha256:" + spec_hash,
            q("created"): _dt(wf.created_at),
            q("activities"): len(self.run.activities)}))
        self.wf_run: ProvActivity = self.doc.activity(
            q(f"run.{self.tag}"), _dt(wf.started_at), _dt(wf.finished_at), _attrs({
                PROV_TYPE: q("WorkflowRun"), PROV_LABEL: f"{wf.name} run {wf.id}",
                q("status"): wf.status, q("runDir"): wf.run_dir, q("workDir"): wf.work_dir,
                q("message"): wf.message}))
        self.doc.wasAttributedTo(self.plan, self.user)
        self.doc.actedOnBehalfOf(self.software, self.user, self.wf_run)
        self._associate(self.wf_run, self.user, self.plan)
        self._associate(self.wf_run, self.software, self.plan)

    def _attempts(self) -> None:
        final_ids = {t.id for t in self.run.final.values()}
        for t in self.run.attempts:
            act = self.run.by_id[t.activity_id]
            pa = self.doc.activity(
                self.q(f"attempt.{self.tag}.{act.name}.{t.number}"), _dt(t.started_at),
                _dt(t.finished_at), self._attempt_attrs(t, act.name, act.image,
                                                        t.id in final_ids))
            self.acts[(act.name, t.number)] = pa
            self._associate(pa, self.software, self.plan)
            self._associate(pa, self.site)
            self.doc.wasStartedBy(pa, starter=self.wf_run)

    def _associate(self, act: ProvActivity, agent: ProvAgent, plan: Any = None) -> None:
        """Associations get their own identifier: without one, an activity with two agents
        comes back from RDF as a single blank-node association (prov's RDF reader merges
        them), and the round trip would lose a relation."""
        self.n_assoc += 1
        self.doc.wasAssociatedWith(act, agent, plan,
                                   identifier=self.q(f"association.{self.tag}.{self.n_assoc}"))

    def _attempt_attrs(self, t: AttemptRecord, name: str, image: str | None,
                       final: bool) -> dict[Any, Any]:
        q = self.q
        return _attrs({
            PROV_TYPE: q("Attempt"), PROV_LABEL: f"{name} #{t.number}",
            q("activity"): name, q("attempt"): t.number, q("status"): t.status,
            q("final"): final, q("node"): t.node, q("exitCode"): t.exit_code,
            q("reason"): t.reason, q("cpuTime"): t.cpu_time, q("peakRss"): t.peak_rss,
            q("resources"): json.dumps(json.loads(t.resources), sort_keys=True),
            q("executor"): t.executor, q("jobId"): t.job_id,
            q("image"): image, q("imageId"): t.image_id, q("submitted"): _dt(t.submitted_at),
            q("message"): t.message})

    def _files(self) -> None:
        run = self.run
        entities: dict[FileVersion, Any] = {}
        seen_pre: set[FileVersion] = {version(r) for r in run.files
                                      if r.entry.role == "pre-existing"}
        observed = {version(r): r.entry.observed for r in run.files}
        # version -> None: ordered sets (a list's `in` made 100,000 files of one task
        # quadratic)
        used: dict[AttemptKey, dict[FileVersion, None]] = defaultdict(dict)
        made: dict[AttemptKey, dict[FileVersion, None]] = defaultdict(dict)
        removed: list[tuple[AttemptKey, FileVersion]] = []
        latest: dict[str, FileVersion] = {}  # the version of each path seen last (row order)
        for row in run.files:
            key = (row.activity, row.attempt)
            if row.entry.role == "invalidated":  # the version it removed: the last one seen
                v = latest.get(row.entry.path, version(row))
                removed.append((key, v))
            else:
                v = version(row)
                latest[row.entry.path] = v
                bucket = made if row.entry.role == "generated" else used
                bucket[key][v] = None
            if v not in entities:
                entities[v] = self._file_entity(v, v in seen_pre, observed.get(v))
        for key, versions in made.items():
            for v in versions:
                self.doc.wasGeneratedBy(entities[v], self.acts[key], _dt(v.mtime))
        # No usage time: a task's trace says what it read, not when.
        for key, versions in used.items():
            for v in versions:
                self.doc.used(self.acts[key], entities[v])
        for key, v in removed:
            t = self.run.attempt_of.get(key)
            self.doc.wasInvalidatedBy(entities[v], self.acts[key],
                                      _dt(t.finished_at) if t is not None else None)
        for key, outs in made.items():
            self._derivations(key, list(outs), list(used.get(key, {})), entities)

    def _file_entity(self, v: FileVersion, pre_existing: bool,
                     observed: str | None = None) -> Any:
        q, run = self.q, self.run
        digest = hashlib.sha1(f"{v.path}\0{v.size}\0{v.mtime!r}".encode()).hexdigest()[:12]
        generated = v in run.generators
        role = "generated" if generated else "pre-existing" if pre_existing else "used"
        return self.doc.entity(q(f"file.{self.tag}.{_safe(v.path)}.{digest}"), _attrs({
            PROV_TYPE: q("File"), PROV_LABEL: v.path, q("path"): v.path, q("size"): v.size,
            q("mtime"): _dt(v.mtime), q("hash"): run.hashes.get(v), q("role"): role,
            q("preExisting"): pre_existing, q("observed"): observed,
            q("ambiguousGeneration"): True if run.ambiguous(v) else None}))

    def _derivations(self, key: AttemptKey, outs: list[FileVersion], ins: list[FileVersion],
                     entities: dict[FileVersion, Any]) -> None:
        count = 0
        for out in outs:
            for src in ins:
                if src == out:
                    continue
                if count >= MAX_DERIVATIONS_PER_ATTEMPT:
                    log.warning("attempt %s #%d: wasDerivedFrom capped at %d", key[0], key[1],
                                MAX_DERIVATIONS_PER_ATTEMPT)
                    self.acts[key].add_attributes({self.q("derivationsTruncated"): True})
                    return
                self.doc.wasDerivedFrom(entities[out], entities[src], self.acts[key])
                count += 1

    def _informed(self) -> None:
        """Every attempt of a child was informed by the final attempt of each DAG parent."""
        parents = self.run.parents()
        for t in self.run.attempts:
            child = self.acts[(self.run.by_id[t.activity_id].name, t.number)]
            for pid in parents.get(t.activity_id, ()):
                last = self.run.final.get(pid)
                if last is not None:
                    informant = self.acts[(self.run.by_id[pid].name, last.number)]
                    self.doc.wasInformedBy(child, informant)
