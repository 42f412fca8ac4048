"""Lineage graph of real runs: exact edges, upstream/downstream closures, DOT and Mermaid."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from provruns import Run, synthetic_run

from akoflow.manifest import ManifestError
from akoflow.port import FileEntry
from akoflow.provenance import prov as P
from akoflow.provenance.lineage import lineage, to_dot, to_json, to_mermaid

G, U = "wasGeneratedBy", "used"
FULL = {
    ("input.csv", U, "split"), ("split", G, "a.txt"),
    ("a.txt", U, "left"), ("left", G, "l.txt"), ("left", G, ".left_tried"),
    ("a.txt", U, "right"), ("right", G, "r.txt"),
    ("l.txt", U, "join"), ("r.txt", U, "join"),
    ("join", G, "out.txt"), ("join", G, ".join_tried"),
}  # what the tasks really did: join reads l.txt and r.txt only; `[ -f ]` is no use


def test_full_graph_has_exactly_the_observed_edges(diamond: Run) -> None:
    g = lineage(diamond.manifest, diamond.wf.id)
    assert g.edge_set() == FULL
    tasks = {n.label: n for n in g.nodes.values() if n.kind == "task"}
    assert {k: v.status for k, v in tasks.items()} == {
        "split": "FINISHED", "left": "FINISHED", "right": "FINISHED", "join": "FINISHED"}
    assert tasks["join"].attrs["attempts"] == tasks["left"].attrs["attempts"] == 2
    files = {n.label: n for n in g.nodes.values() if n.kind == "file"}
    assert {p for p, n in files.items() if n.pre_existing} == {"input.csv"}
    # Each first attempt only left its marker and failed: the reads and writes are the
    # second's.
    edges = {(g.nodes[e.source].label, e.relation, g.nodes[e.target].label): e for e in g.edges}
    assert edges[("l.txt", U, "join")].attempts == (2,)
    assert edges[("join", G, "out.txt")].attempts == (2,)
    assert edges[("join", G, ".join_tried")].attempts == (1,)
    assert edges[("a.txt", U, "left")].attempts == (2,)
    assert edges[("left", G, "l.txt")].attempts == (2,)
    assert not any(e.ambiguous for e in g.edges)


def test_upstream_of_a_file(diamond: Run) -> None:
    g = lineage(diamond.manifest, diamond.wf.id, file="l.txt", direction="up")
    assert g.edge_set() == {("input.csv", U, "split"), ("split", G, "a.txt"),
                            ("a.txt", U, "left"), ("left", G, "l.txt")}
    assert {n.label for n in g.nodes.values()} == {"input.csv", "split", "a.txt", "left",
                                                   "l.txt"}


def test_downstream_of_an_activity(diamond: Run) -> None:
    g = lineage(diamond.manifest, diamond.wf.id, activity="right", direction="downstream")
    assert g.edge_set() == {("right", G, "r.txt"), ("r.txt", U, "join"),
                            ("join", G, "out.txt"), ("join", G, ".join_tried")}


def test_both_directions_keep_only_walked_edges(diamond: Run) -> None:
    g = lineage(diamond.manifest, diamond.wf.id, activity="right")
    # join's read of l.txt is not on any path through `right`.
    assert g.edge_set() == {("input.csv", U, "split"), ("split", G, "a.txt"),
                            ("a.txt", U, "right"), ("right", G, "r.txt"),
                            ("r.txt", U, "join"), ("join", G, "out.txt"),
                            ("join", G, ".join_tried")}


def test_file_by_absolute_path_and_errors(diamond: Run) -> None:
    m, wf = diamond.manifest, diamond.wf
    absolute = str(Path(wf.work_dir) / "out.txt")
    up = lineage(m, wf.id, file=absolute, direction="up")
    assert ("join", G, "out.txt") in up.edge_set()
    assert lineage(m, wf.id, file="out.txt", direction="down").edge_set() == set()
    with pytest.raises(ManifestError, match=r"nope\.txt"):
        lineage(m, wf.id, file="nope.txt")
    with pytest.raises(ManifestError, match="ghost"):
        lineage(m, wf.id, activity="ghost")
    with pytest.raises(ValueError, match="direction"):
        lineage(m, wf.id, activity="join", direction="sideways")


def test_dot_has_the_right_edges(diamond: Run, tmp_path: Path) -> None:
    dot = to_dot(lineage(diamond.manifest, diamond.wf.id))
    assert '"task:split" -> "file:a.txt" [label="wasGeneratedBy"];' in dot
    assert '"file:a.txt" -> "task:left" [label="used"];' in dot
    assert '"file:r.txt" -> "task:join" [label="used"];' in dot
    assert '"task:left" -> "file:r.txt"' not in dot
    assert dot.count(" -> ") == len(FULL)
    assert '"file:input.csv" [label="input.csv (pre-existing)", shape=note, style="dashed' in dot
    if shutil.which("dot"):  # syntax check by Graphviz itself when it is installed
        subprocess.run(["dot", "-Tsvg", "-o", str(tmp_path / "g.svg")], input=dot,
                       text=True, check=True, timeout=60)


def test_mermaid_has_the_right_edges(diamond: Run) -> None:
    text = to_mermaid(lineage(diamond.manifest, diamond.wf.id, file="out.txt", direction="up"))
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert "  task_join -->|wasGeneratedBy| file_out_txt" in lines
    assert "  file_l_txt -->|used| task_join" in lines
    assert "  file_input_csv -->|used| task_split" in lines
    assert '  file_input_csv[/"input.csv"/]' in lines
    assert "  class file_input_csv preexisting" in lines
    assert not any("join_tried" in line for line in lines)  # downstream of join only


def test_json_is_complete(diamond: Run) -> None:
    data = json.loads(to_json(lineage(diamond.manifest, diamond.wf.id)))
    assert data["workflow"] == {"id": diamond.wf.id, "name": "diamond"}
    assert len(data["edges"]) == len(FULL)
    labels = {n["id"]: n["label"] for n in data["nodes"]}
    assert {(labels[e["source"]], e["relation"], labels[e["target"]])
            for e in data["edges"]} == FULL


def test_failed_task_is_in_the_graph(broken: Run) -> None:
    g = lineage(broken.manifest, broken.wf.id)
    assert g.edge_set() == {("make", G, "partial.txt")}
    assert g.nodes["task:make"].status == "FAILED"
    assert g.nodes["task:after"].status == "SKIPPED"
    assert "class task_make failed" in to_mermaid(g)


def test_concurrent_claims_are_flagged_not_hidden(tmp_path: Path) -> None:
    # Two siblings overlapping in time both report x.txt (one version) as generated.
    t = time.time()
    m, wf_id = synthetic_run(tmp_path / "m.db", {
        "a": [FileEntry("x.txt", 3, t, "generated"), FileEntry("a.out", 1, t, "generated")],
        "b": [FileEntry("x.txt", 3, t, "generated")]})
    g = lineage(m, wf_id)
    flags = {(g.nodes[e.source].label, g.nodes[e.target].label): e.ambiguous for e in g.edges}
    assert flags == {("a", "x.txt"): True, ("b", "x.txt"): True, ("a", "a.out"): False}
    assert '"task:a" -> "file:x.txt" [label="wasGeneratedBy?", style=dashed' in to_dot(g)
    assert "task_b -.->|wasGeneratedBy?| file_x_txt" in to_mermaid(g)
    doc = P.build_document(m, wf_id)
    flagged = {next(iter(e.get_attribute("akoflow:path")))
               for e in doc.get_records() if e.get_attribute("akoflow:ambiguousGeneration")}
    assert flagged == {"x.txt"}
    m.close()
