"""Moving one workflow's rows between manifests (what `akoflow pull` does), generic by column
name: columns and tables added later travel too, ids are remapped, a second import replaces
the first copy instead of adding one."""

from __future__ import annotations

import json
from pathlib import Path

from akoflow import service, views
from akoflow.manifest import Manifest
from tests.conftest import EXAMPLES


def _run_diamond(home: Path) -> tuple[Manifest, int]:
    m = Manifest(home / "manifest.db")
    wf = m.register_workflow(service.load_spec(EXAMPLES / "diamond.yaml"),
                             run_root=str(home / "runs"))
    service.run(m, wf.id)
    return m, wf.id


def test_import_is_generic_and_replaces(akhome: Path, tmp_path: Path) -> None:
    src, wf_id = _run_diamond(akhome)
    # columns and a table a later schema might add, on both sides
    dst = Manifest(tmp_path / "laptop" / "manifest.db")
    for m in (src, dst):
        m.conn.execute("ALTER TABLE files ADD COLUMN op TEXT")
        m.conn.execute("CREATE TABLE file_edge (id INTEGER PRIMARY KEY, workflow_id INTEGER,"
                       " files_id INTEGER, attempt_id INTEGER, note TEXT)")
    src.conn.execute("ALTER TABLE metrics ADD COLUMN only_there TEXT")  # the laptop lacks it
    src.conn.execute("UPDATE files SET op='write' WHERE role='generated'")
    first_file, first_attempt = src.conn.execute(
        "SELECT id, attempt_id FROM files WHERE workflow_id=? ORDER BY id", (wf_id,)).fetchone()
    src.conn.execute("INSERT INTO file_edge (workflow_id, files_id, attempt_id, note)"
                     " VALUES (?,?,?, 'x')", (wf_id, first_file, first_attempt))
    # something already in the laptop's manifest, so ids differ from the cluster's
    dst.register_workflow(service.load_spec(EXAMPLES / "fanout.yaml"),
                          run_root=str(tmp_path / "runs"))
    data = json.loads(json.dumps(src.export_workflow(wf_id)))  # as it crosses the wire
    local = dst.import_workflow(data, "clu", wf_id)
    assert local != wf_id
    assert views.status(dst, str(local))["counts"] == {"FINISHED": 4}
    assert views.files(dst, str(local)) == views.files(src, str(wf_id))
    assert [r["activity"] for r in views.metrics(dst, str(local))] == [
        r["activity"] for r in views.metrics(src, str(wf_id))]
    ops = {r[0] for r in dst.conn.execute("SELECT op FROM files WHERE workflow_id=?",
                                          (local,))}
    assert ops == {"write", None}
    edge = dst.conn.execute("SELECT files_id, attempt_id FROM file_edge WHERE workflow_id=?",
                            (local,)).fetchone()
    path = dst.conn.execute("SELECT path FROM files WHERE id=?", (edge[0],)).fetchone()[0]
    assert path == src.conn.execute("SELECT path FROM files WHERE id=?",
                                    (first_file,)).fetchone()[0]
    assert dst.conn.execute("SELECT workflow_id FROM attempt WHERE id=?",
                            (edge[1],)).fetchone()[0] == local
    assert dst.origins() == {local: f"clu:{wf_id}"}
    before = {t: dst.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in dst.workflow_tables()}
    again = dst.import_workflow(data, "clu", wf_id)
    after = {t: dst.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
             for t in dst.workflow_tables()}
    assert again == local and after == before  # updated in place, never duplicated
    assert [w["id"] for w in views.workflows(dst)] == [local, 1]
