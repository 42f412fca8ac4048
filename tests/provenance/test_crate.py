"""Workflow Run RO-Crate of real runs: what is in the zip and what the metadata says."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from provruns import DIAMOND_YAML, Run
from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]

from akoflow.provenance import prov as P
from akoflow.provenance.crate import write_crate

COMPLETED = "http://schema.org/CompletedActionStatus"
FAILED = "http://schema.org/FailedActionStatus"


def graph(z: zipfile.ZipFile) -> dict[str, dict[str, Any]]:
    return {e["@id"]: e for e in json.loads(z.read("ro-crate-metadata.json"))["@graph"]}


def ids(value: Any) -> set[str]:
    items = value if isinstance(value, list) else [value]
    return {i["@id"] for i in items}


@pytest.fixture(scope="module")
def crate(runs: dict[str, Run], tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    r = runs["diamond"]
    out = write_crate(r.manifest, r.wf.id, tmp_path_factory.mktemp("crate") / "run.zip")
    return zipfile.ZipFile(out)


def test_zip_holds_spec_prov_log_and_streams(crate: zipfile.ZipFile) -> None:
    names = set(crate.namelist())
    assert {"ro-crate-metadata.json", "workflow/diamond.yaml", "provenance/prov.json",
            "provenance/run-log.json"} <= names
    attempts = {("split", 1), ("left", 1), ("left", 2), ("right", 1), ("join", 1),
                ("join", 2)}
    for act, n in attempts:
        assert {f"logs/{act}/{n}/stdout", f"logs/{act}/{n}/stderr"} <= names
    assert crate.read("workflow/diamond.yaml").decode() == DIAMOND_YAML
    assert crate.read("logs/join/2/stdout") == b"joined\n"
    assert crate.read("logs/join/2/stderr") == b"warn\n"
    assert crate.read("logs/join/1/stderr") == b"first\n"
    assert crate.read("logs/split/1/stdout") == b"split-out\n"


def test_prov_json_and_run_log_inside(crate: zipfile.ZipFile, diamond: Run) -> None:
    doc = P.parse(crate.read("provenance/prov.json").decode(), "prov-json")
    assert P.relation_counts(doc) == P.relation_counts(
        P.build_document(diamond.manifest, diamond.wf.id))
    events = json.loads(crate.read("provenance/run-log.json"))
    join = [(e["attempt"], e["to_status"]) for e in events
            if e["activity"] == "join" and e["kind"] == "STATE"]
    assert (1, "FAILED") in join and join[-1] == (2, "FINISHED")
    assert len(events) == len(diamond.manifest.events(diamond.wf.id))


def test_metadata_describes_the_run(crate: zipfile.ZipFile, diamond: Run) -> None:
    g = graph(crate)
    root = g["./"]
    assert root["mainEntity"] == {"@id": "workflow/diamond.yaml"}
    assert "https://w3id.org/ro/wfrun/workflow/0.5" in ids(root["conformsTo"])
    assert "ComputationalWorkflow" in g["workflow/diamond.yaml"]["@type"]
    run = g[f"#run-{diamond.wf.id}"]
    assert run["@type"] == "CreateAction"
    assert run["instrument"] == {"@id": "workflow/diamond.yaml"}
    assert run["actionStatus"] == {"@id": COMPLETED}
    work = Path(diamond.wf.work_dir)
    assert ids(run["object"]) == {(work / "input.csv").as_uri()}
    assert ids(run["result"]) == {(work / "out.txt").as_uri(), (work / ".join_tried").as_uri()}
    assert g[(work / "out.txt").as_uri()]["contentSize"] == str(len("X,1\nY,2\n"))
    first, second = g["#attempt-join-1"], g["#attempt-join-2"]
    assert (first["actionStatus"], first["exitCode"]) == ({"@id": FAILED}, 3)
    assert (second["actionStatus"], second["exitCode"]) == ({"@id": COMPLETED}, 0)
    assert ids(second["result"]) == {(work / "out.txt").as_uri()}
    assert ids(second["object"]) == {(work / p).as_uri()
                                     for p in ("a.txt", "l.txt", "r.txt", ".left_tried")}
    assert "logs/join/2/stdout" in ids(second["subjectOf"])


def test_crate_loads_back_with_rocrate(crate: zipfile.ZipFile, tmp_path: Path) -> None:
    crate.extractall(tmp_path)
    back = ROCrate(tmp_path)
    assert back.mainEntity.id == "workflow/diamond.yaml"
    assert back.dereference("provenance/prov.json") is not None


def test_failed_run_crate(broken: Run, tmp_path: Path) -> None:
    z = zipfile.ZipFile(write_crate(broken.manifest, broken.wf.id, tmp_path / "b.zip"))
    g = graph(z)
    assert g[f"#run-{broken.wf.id}"]["actionStatus"] == {"@id": FAILED}
    assert g["#attempt-make-1"]["exitCode"] == 2
    assert "#attempt-after-1" not in g  # skipped: never ran
    assert z.read("logs/make/1/stderr") == b"boom\n"
