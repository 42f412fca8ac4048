"""Workflow Run RO-Crate of real runs: what is in the zip and what the metadata says."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from provruns import DIAMOND_YAML, Run, run_workflow
from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]

from akoflow.provenance import prov as P
from akoflow.provenance.crate import write_crate
from akoflow.provenance.crate_payload import Limits

COMPLETED = "http://schema.org/CompletedActionStatus"  # plain IRIs, as the profiles compare
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
    return zipfile.ZipFile(out.path)


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
    assert "https://w3id.org/ro/wfrun/provenance/0.5" in ids(root["conformsTo"])
    assert "ComputationalWorkflow" in g["workflow/diamond.yaml"]["@type"]
    run = g[f"#run-{diamond.wf.id}"]
    assert run["@type"] == "CreateAction"
    assert run["instrument"] == {"@id": "workflow/diamond.yaml"}
    assert run["actionStatus"] == COMPLETED
    assert ids(run["object"]) == {"data/input.csv"}
    # exact lineage: the retry markers are only tested for (`[ -f ]` is no use), so they
    # are outputs of the run like out.txt
    assert ids(run["result"]) == {"data/out.txt", "data/.join_tried", "data/.left_tried"}
    assert g["data/out.txt"]["contentSize"] == str(len("X,1\nY,2\n"))
    assert crate.read("data/out.txt") == b"X,1\nY,2\n"
    assert crate.read("data/input.csv") == b"x,1\ny,2\n"
    first, second = g["#attempt-join-1"], g["#attempt-join-2"]
    assert (first["actionStatus"], first["exitCode"]) == (FAILED, 3)
    assert (second["actionStatus"], second["exitCode"]) == (COMPLETED, 0)
    assert second["instrument"] == {"@id": "#tool-join"}
    assert g["#tool-join"]["@type"] == "SoftwareApplication"
    assert g["#step-join"]["workExample"] == {"@id": "#tool-join"}
    assert g["#control-join-2"]["object"] == {"@id": "#attempt-join-2"}
    assert g["#control-join-2"]["instrument"] == {"@id": "#step-join"}
    assert ids(second["result"]) == {"data/out.txt"}
    assert ids(second["object"]) == {"data/l.txt", "data/r.txt"}  # what `cat` read
    assert "logs/join/2/stdout" in ids(second["subjectOf"])
    assert first["startTime"].endswith("+00:00") and "T" in first["startTime"]
    organize = g[f"#organize-{diamond.wf.id}"]
    assert "#control-join-1" in ids(organize["object"])
    assert organize["result"] == {"@id": f"#run-{diamond.wf.id}"}
    assert "exitCode" in json.loads(crate.read("ro-crate-metadata.json"))["@context"][-1]


def test_crate_loads_back_with_rocrate(crate: zipfile.ZipFile, tmp_path: Path) -> None:
    crate.extractall(tmp_path)
    back = ROCrate(tmp_path)
    assert back.mainEntity.id == "workflow/diamond.yaml"
    assert back.dereference("provenance/prov.json") is not None


def test_failed_run_crate(broken: Run, tmp_path: Path) -> None:
    z = zipfile.ZipFile(write_crate(broken.manifest, broken.wf.id, tmp_path / "b.zip").path)
    g = graph(z)
    assert g[f"#run-{broken.wf.id}"]["actionStatus"] == FAILED
    assert g["#attempt-make-1"]["exitCode"] == 2
    assert "#attempt-after-1" not in g  # skipped: never ran
    assert "#tool-after" not in g and "#step-after" not in g
    assert z.read("logs/make/1/stderr") == b"boom\n"


def test_long_logs_keep_head_and_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    monkeypatch.setenv("AKOFLOW_HOME", str(tmp_path / "home"))
    text = """name: loud
spec:
  activities:
    - name: talk
      run: |
        echo FIRST-LINE
        head -c 3000000 /dev/zero | tr '\\0' x
        echo
        echo LAST-LINE
"""
    r = run_workflow(tmp_path / "home", text, {})
    out = write_crate(r.manifest, r.wf.id, tmp_path / "c.zip",
                      limits=Limits(max_log_bytes=64 * 1024))
    z = zipfile.ZipFile(out.path)
    log = z.read("logs/talk/1/stdout")
    assert len(log) < 65 * 1024
    assert log.startswith(b"FIRST-LINE\n") and log.endswith(b"LAST-LINE\n")
    assert b"bytes cut here; the whole log is" in log
    assert out.logs_cut == 1
    entity = graph(z)["logs/talk/1/stdout"]
    assert entity["contentSize"] == str(len(log)) and "cut" in entity["description"]
    r.manifest.close()


def test_odd_file_names_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AKOFLOW_HOME", str(tmp_path / "home"))
    text = """name: odd
spec:
  activities:
    - name: make
      run: |
        mkdir -p "sub dir" && echo hi > "sub dir/a #1%.txt"
"""
    r = run_workflow(tmp_path / "home", text, {})
    z = zipfile.ZipFile(write_crate(r.manifest, r.wf.id, tmp_path / "c.zip").path)
    ent = graph(z)
    ident = next(i for i in ent if i.startswith("data/"))
    assert ident == quote("data/sub dir/a #1%.txt")
    assert z.read(unquote(ident)) == b"hi\n"
    r.manifest.close()
