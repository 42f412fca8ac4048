"""Ingest of 100,000 file-snapshot entries into the manifest (one worker report).

Half of the entries are files the attempt generated; half were present before it started
and are sorted into `used` (made by its parent) or dropped, as the dispatcher does.
Usage: python benchmarks/bench_ingest.py
"""

from __future__ import annotations

import os
import time

from _common import cleanup, figure, fresh_home


def main() -> None:
    home = fresh_home("ingest")
    os.environ["AKOFLOW_HOME"] = str(home)
    from akoflow import service
    from akoflow.dispatch.ingest import Lineage, ingest
    from akoflow.manifest import Intent
    from akoflow.port import AttemptOutcome, FileEntry, Resources
    from akoflow.spec import ActivitySpec, WorkflowSpec

    m = service.open_manifest()
    wf = m.register_workflow(WorkflowSpec(name="ingest", activities=[
        ActivitySpec(name="parent", run="true"),
        ActivitySpec(name="child", run="true", depends_on=["parent"])]),
        run_root=str(home / "runs"))
    now = time.time()

    def attempt(name: str) -> int:
        act = m.activity_named(wf.id, name)
        assert act is not None
        (aid,) = m.begin_attempts(wf.id, [Intent(
            activity_id=act.id, number=1, site="local", job_name=name, attempt_dir="/x",
            resources=Resources())])
        assert aid is not None
        return aid

    parent_files = [FileEntry(f"in/{i:06d}.dat", 4096, now, "generated") for i in range(50_000)]
    m.complete_attempt(wf.id, attempt("parent"), AttemptOutcome(
        exit_code=0, reason=None, started_at=now, finished_at=now, files=parent_files))
    child = attempt("child")
    present = [FileEntry(f.path, f.size, f.mtime, "present") for f in parent_files]
    generated = [FileEntry(f"out/{i:06d}.dat", 4096, now, "generated") for i in range(50_000)]
    outcome = AttemptOutcome(exit_code=0, reason=None, started_at=now, finished_at=now,
                             files=present + generated)
    lineage = Lineage(m, wf.id)
    live = next(la for la in m.live_attempts(wf.id) if la.attempt_id == child)
    start = time.perf_counter()
    ingest(m, wf.id, live, outcome, lineage)
    figure("ingest_100000_file_entries_s", time.perf_counter() - start)
    assert m.table_count("files", wf.id) == 150_000
    cleanup(home)


if __name__ == "__main__":
    main()
