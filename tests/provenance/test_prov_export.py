"""PROV export of a real diamond run: the relations a reader relies on, and round trips."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import rdflib
from prov.constants import (
    PROV_ATTR_ACTIVITY,
    PROV_ATTR_AGENT,
    PROV_ATTR_DELEGATE,
    PROV_ATTR_ENTITY,
    PROV_ATTR_GENERATED_ENTITY,
    PROV_ATTR_INFORMANT,
    PROV_ATTR_INFORMED,
    PROV_ATTR_PLAN,
    PROV_ATTR_RESPONSIBLE,
    PROV_ATTR_USED_ENTITY,
)
from prov.model import (
    ProvActivity,
    ProvAgent,
    ProvAssociation,
    ProvCommunication,
    ProvDelegation,
    ProvDerivation,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvUsage,
)
from provruns import Run, synthetic_run

import akoflow
from akoflow.port import FileEntry
from akoflow.provenance import prov as P

NS = P.NS_URI


def attr(record: object, name: str) -> object:
    values = record.get_attribute(f"akoflow:{name}")  # type: ignore[attr-defined]
    return next(iter(values)) if values else None


def names(doc: ProvDocument) -> dict[object, str]:
    """Record id -> readable name: a file's path, `activity#attempt`, an agent's name."""
    out: dict[object, str] = {}
    for rec in doc.get_records(ProvEntity):
        path = attr(rec, "path")
        out[rec.identifier] = str(path) if path is not None else f"plan:{attr(rec, 'name')}"
    for rec in doc.get_records(ProvActivity):
        name = attr(rec, "activity")
        out[rec.identifier] = (f"{name}#{attr(rec, 'attempt')}" if name is not None
                               else "workflow-run")
    for rec in doc.get_records(ProvAgent):
        out[rec.identifier] = f"agent:{attr(rec, 'name')}"
    return out


def pairs(doc: ProvDocument, cls: type, first: object, second: object) -> set[tuple[str, str]]:
    n = names(doc)
    out = set()
    for rec in doc.get_records(cls):
        a = dict(rec.formal_attributes)
        out.add((n[a[first]], n[a[second]]))
    return out


@pytest.fixture(scope="module")
def doc(runs: dict[str, Run]) -> ProvDocument:
    r = runs["diamond"]
    return P.build_document(r.manifest, r.wf.id)


def test_generation_of_each_file_by_the_attempt_that_wrote_it(doc: ProvDocument) -> None:
    assert pairs(doc, ProvGeneration, PROV_ATTR_ENTITY, PROV_ATTR_ACTIVITY) == {
        ("a.txt", "split#1"), (".left_tried", "left#1"), ("l.txt", "left#2"),
        ("r.txt", "right#1"), (".join_tried", "join#1"), ("out.txt", "join#2"),
    }


def test_usage_including_the_pre_existing_input(doc: ProvDocument) -> None:
    used = pairs(doc, ProvUsage, PROV_ATTR_ACTIVITY, PROV_ATTR_ENTITY)
    # exactly what each attempt read (first attempts only left a marker and failed)
    assert used == {("split#1", "input.csv"), ("left#2", "a.txt"), ("right#1", "a.txt"),
                    ("join#2", "l.txt"), ("join#2", "r.txt")}
    files = {attr(e, "path"): e for e in doc.get_records(ProvEntity) if attr(e, "path")}
    assert attr(files["input.csv"], "preExisting") is True
    assert attr(files["input.csv"], "role") == "pre-existing"
    assert attr(files["out.txt"], "preExisting") is False
    assert attr(files["out.txt"], "role") == "generated"
    assert attr(files["out.txt"], "size") == len("X,1\nY,2\n")


def test_derivation_of_outputs_from_inputs_of_the_same_attempt(doc: ProvDocument) -> None:
    derived = pairs(doc, ProvDerivation, PROV_ATTR_GENERATED_ENTITY, PROV_ATTR_USED_ENTITY)
    assert derived == {("a.txt", "input.csv"), ("l.txt", "a.txt"), ("r.txt", "a.txt"),
                       ("out.txt", "l.txt"), ("out.txt", "r.txt")}


def test_every_attempt_informed_by_final_attempt_of_each_parent(doc: ProvDocument) -> None:
    assert pairs(doc, ProvCommunication, PROV_ATTR_INFORMED, PROV_ATTR_INFORMANT) == {
        ("left#1", "split#1"), ("left#2", "split#1"), ("right#1", "split#1"),
        ("join#1", "left#2"), ("join#1", "right#1"),
        ("join#2", "left#2"), ("join#2", "right#1"),
    }


def test_attempts_carry_what_happened(doc: ProvDocument, diamond: Run) -> None:
    acts = {f"{attr(a, 'activity')}#{attr(a, 'attempt')}": a
            for a in doc.get_records(ProvActivity) if attr(a, "activity")}
    assert set(acts) == {"split#1", "left#1", "left#2", "right#1", "join#1",
                         "join#2"}
    first, second = acts["join#1"], acts["join#2"]
    assert (attr(first, "exitCode"), attr(first, "reason"), attr(first, "status"),
            attr(first, "final")) == (3, "EXIT", "FAILED", False)
    assert (attr(second, "exitCode"), attr(second, "reason"), attr(second, "status"),
            attr(second, "final")) == (0, None, "FINISHED", True)
    assert attr(second, "node") == socket.gethostname()
    assert json.loads(str(attr(second, "resources")))["cpu"] >= 1
    recorded = {t.number: t for t in diamond.manifest.attempts(diamond.wf.id)
                if t.activity_id == diamond.manifest.activity_named(diamond.wf.id, "join").id}
    assert attr(second, "cpuTime") == pytest.approx(recorded[2].cpu_time)
    assert attr(second, "peakRss") == recorded[2].peak_rss
    assert second.get_startTime().timestamp() == pytest.approx(recorded[2].started_at)
    assert second.get_endTime().timestamp() == pytest.approx(recorded[2].finished_at)


def test_agents_plan_and_associations(doc: ProvDocument, diamond: Run) -> None:
    agents = {attr(a, "name"): a for a in doc.get_records(ProvAgent)}
    assert set(agents) == {diamond.wf.owner, "akoflow", "local"}
    assert attr(agents["akoflow"], "version") == akoflow.__version__
    assoc: dict[str, set[tuple[str, str | None]]] = {}
    n = names(doc)
    for rec in doc.get_records(ProvAssociation):
        a = dict(rec.formal_attributes)
        plan = a.get(PROV_ATTR_PLAN)
        assoc.setdefault(n[a[PROV_ATTR_ACTIVITY]], set()).add(
            (n[a[PROV_ATTR_AGENT]], None if plan is None else n[plan]))
    for attempt in ("split#1", "join#1", "join#2"):
        assert assoc[attempt] == {("agent:akoflow", "plan:diamond"), ("agent:local", None)}
    assert ("agent:" + str(diamond.wf.owner), "plan:diamond") in assoc["workflow-run"]
    assert pairs(doc, ProvDelegation, PROV_ATTR_DELEGATE, PROV_ATTR_RESPONSIBLE) == {
        ("agent:akoflow", f"agent:{diamond.wf.owner}")}


@pytest.mark.parametrize("fmt", sorted(P.FORMATS))
def test_round_trip_keeps_every_relation(doc: ProvDocument, diamond: Run, fmt: str) -> None:
    text = P.export(diamond.manifest, diamond.wf.id, fmt)
    back = P.parse(text, fmt)
    before = P.relation_counts(doc)
    assert P.relation_counts(back) == before
    assert len(back.records) == len(doc.records)
    for rel in ("used", "wasGeneratedBy", "wasInformedBy", "wasAssociatedWith",
                "wasDerivedFrom"):
        assert before[rel] > 0, rel


def test_rdf_is_turtle_and_json_is_prov_json(diamond: Run) -> None:
    ttl = P.export(diamond.manifest, diamond.wf.id, "rdf")
    g = rdflib.Graph().parse(data=ttl, format="turtle")
    prov, ak = rdflib.Namespace("http://www.w3.org/ns/prov#"), rdflib.Namespace(NS)
    (out,) = g.subjects(ak.path, rdflib.Literal("out.txt"))
    (gen,) = g.objects(out, prov.qualifiedGeneration)
    join2 = ak[f"attempt.wf{diamond.wf.id}.join.2"]
    assert set(g.objects(gen, prov.activity)) == {join2}
    assert (join2, prov.used, None) in g
    data = json.loads(P.export(diamond.manifest, diamond.wf.id, "json"))
    assert data["prefix"]["akoflow"] == NS
    assert len(data["wasGeneratedBy"]) == 6


def test_failed_run_records_the_failure(broken: Run) -> None:
    doc = P.build_document(broken.manifest, broken.wf.id)
    acts = {attr(a, "activity"): a for a in doc.get_records(ProvActivity)
            if attr(a, "activity")}
    assert set(acts) == {"make"}  # `after` was skipped: it never ran, so it is no activity
    assert (attr(acts["make"], "exitCode"), attr(acts["make"], "reason")) == (2, "EXIT")
    assert pairs(doc, ProvGeneration, PROV_ATTR_ENTITY, PROV_ATTR_ACTIVITY) == {
        ("partial.txt", "make#1")}


def test_unknown_format_is_refused(diamond: Run) -> None:
    with pytest.raises(ValueError, match="prov-json"):
        P.export(diamond.manifest, diamond.wf.id, "yaml")


AWKWARD = ['sp ace/ü "q" \\ b.txt', "new\nline.txt", "<x>&y.dat", "tab\t.txt", "çà/😀.csv",
           "%41.txt", "a" * 300]


@pytest.mark.parametrize("fmt", sorted(P.FORMATS))
def test_awkward_paths_survive_every_format(tmp_path: Path, fmt: str) -> None:
    t = time.time()
    files = [FileEntry(p, 1, t, "generated", "sha256:ab") for p in AWKWARD]
    m, wf_id = synthetic_run(tmp_path / "m.db", {"a": files})
    doc = P.build_document(m, wf_id)
    back = P.parse(P.export(m, wf_id, fmt), fmt)
    paths = {attr(e, "path") for e in back.get_records(ProvEntity) if attr(e, "path")}
    assert paths == set(AWKWARD)
    assert P.relation_counts(back) == P.relation_counts(doc)
    assert P.relation_counts(doc)["wasGeneratedBy"] == len(AWKWARD)
    m.close()
