"""Static node declarations, merging over discovered nodes, manifest history."""

from __future__ import annotations

from pathlib import Path

import pytest

from akoflow.manifest import Manifest
from akoflow.port import Node
from akoflow.scheduling.history import manifest_history
from akoflow.scheduling.inventory import (
    InventoryError,
    load_nodes_file,
    local_node,
    merge_nodes,
    parse_nodes,
    site_nodes,
)

GiB = 1024**3


def test_parse_nodes_with_units_and_attributes() -> None:
    [n] = parse_nodes({"nodes": [{"name": "x", "cpus": 8, "memory": "16Gi", "speed": 1.5,
                                  "cost_per_hour": 0.3, "energy": 120, "features": "a,b",
                                  "partitions": ["p"], "labels": {"zone": "z1"}}]})
    assert (n.cpus, n.cpus_free, n.memory, n.memory_free) == (8, 8, 16 * GiB, 16 * GiB)
    assert n.speed == 1.5 and n.cost_per_hour == 0.3 and n.features == ("a", "b")
    assert n.labels == {"zone": "z1", "energy": "120"} and n.partitions == ("p",)


@pytest.mark.parametrize(("entry", "words"), [
    ({"name": "x"}, "cpus"),
    ({"name": "x", "cpus": 2, "memory": "lots"}, "not a size"),
    ({"name": "x", "cpus": 2, "speed": 0}, "speed"),
    ({"name": "x", "cpus": 2, "colour": "red"}, "unknown field"),
    ({"cpus": 2}, "name"),
])
def test_bad_node_entries_name_node_and_field(entry: dict[str, object], words: str) -> None:
    with pytest.raises(InventoryError, match=words):
        parse_nodes([entry])


def test_duplicate_names_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="twice"):
        parse_nodes([{"name": "a", "cpus": 1}, {"name": "a", "cpus": 2}])
    bad = tmp_path / "n.yaml"
    bad.write_text("nodes: [\n")
    with pytest.raises(InventoryError, match="cannot read"):
        load_nodes_file(bad)


def test_static_over_discovered_keeps_live_free_room() -> None:
    seen = [Node("n1", 4, 1, 8 * GiB, 2 * GiB, features=("ssd",)), Node("n2", 2, 2, GiB, GiB)]
    declared = [{"name": "n1", "cpus": 4, "speed": 2.0, "cost_per_hour": 1.0,
                 "features": ["gpu"]}, {"name": "cloud", "cpus": 16, "memory": "64Gi"}]
    out = site_nodes({"nodes": declared}, seen)
    by = {n.name: n for n in out}
    assert [n.name for n in out] == ["n1", "n2", "cloud"]
    assert by["n1"].speed == 2.0 and by["n1"].cpus_free == 1
    assert by["n1"].memory == 8 * GiB and by["n1"].memory_free == 2 * GiB  # memory not declared
    assert by["n1"].features == ("ssd", "gpu") and by["cloud"].memory_free == 64 * GiB
    assert merge_nodes(seen, []) == seen


def test_local_node_is_this_machine() -> None:
    n = local_node()
    assert n.cpus >= 1 and 0 < n.memory_free <= n.memory


def test_history_from_the_manifest(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "manifest.db")
    c = m.conn
    for wf in (1, 2):  # two earlier runs of the same workflow
        c.execute("INSERT INTO workflow (id, name, status, created_at, run_dir, work_dir)"
                  " VALUES (?, 'w', 'FINISHED', 0, '', '')", (wf,))
    for aid, wf, name, ident in ((1, 1, "align", "id-A"), (2, 2, "align", "id-B"),
                                 (3, 1, "sort", None)):
        c.execute("INSERT INTO activity (id, workflow_id, seq, name, run, runtime, resources,"
                  " status, created_at, identity) VALUES (?, ?, ?, ?, 'true', 'local', '{}',"
                  " 'FINISHED', 0, ?)", (aid, wf, aid, name, ident))
    c.execute("INSERT INTO node (site, name, snapshot_at, speed) VALUES ('local', 'fast', 0, 2)")
    rows = [  # activity, number, status, node, start, end, peak rss
        (1, 1, "FINISHED", "fast", 100.0, 110.0, 5000),  # 10 s at speed 2 = 20 s
        (1, 2, "FAILED", "fast", 0.0, 500.0, None),  # failed runs do not count
        (2, 1, "FINISHED", "other", 0.0, 40.0, 7000),  # unknown node: speed 1
        (3, 1, "FINISHED", None, 0.0, 3.0, None),
    ]
    for act, num, st, nd, s, e, rss in rows:
        c.execute("INSERT INTO attempt (workflow_id, activity_id, number, status, executor,"
                  " job_name, node, attempt_dir, resources, submitted_at, started_at,"
                  " finished_at, peak_rss) VALUES (1, ?, ?, ?, 'local', 'j', ?, '', '{}', 0,"
                  " ?, ?, ?)", (act, num, st, nd, s, e, rss))
    h = manifest_history(m)
    assert h.expected("align", "id-A") == pytest.approx(20.0)
    assert h.expected("align", "id-B") == pytest.approx(40.0)
    assert h.expected("align", None) == pytest.approx(30.0)  # median over both identities
    assert h.expected("sort", None) == pytest.approx(3.0)
    assert h.peak_memory("align") == 7000
    m.close()
