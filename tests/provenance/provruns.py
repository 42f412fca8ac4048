"""Real runs for the provenance tests (module-scoped fixtures in conftest.py use them).

The diamond, split -> (left, right) -> join, with a pre-existing input; left and join fail
their first attempt and succeed on retry (so "the parent's final attempt" is not its first).
Each activity asks for every CPU of the machine so the local executor runs them one at a
time: two tasks writing into one work directory at the same moment are indistinguishable to
snapshots (see test_lineage's ambiguity test), and these tests need exact lineage.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from akoflow import service
from akoflow.manifest import Intent, Manifest, WorkflowRecord
from akoflow.port import AttemptOutcome, FileEntry, Resources
from akoflow.spec.loader import parse_workflow_text
from akoflow.spec.models import ActivitySpec, WorkflowSpec

CPUS = os.cpu_count() or 1

DIAMOND_YAML = f"""\
# provenance test diamond
name: diamond
spec:
  runtime: local
  activities:
    - name: split
      run: |
        tr a-z A-Z < input.csv > a.txt
        echo split-out
      cpuLimit: {CPUS}
    - name: left
      run: |
        if [ ! -f .left_tried ]; then touch .left_tried; exit 4; fi
        head -n 1 a.txt > l.txt
      dependsOn: [split]
      retries: 1
      cpuLimit: {CPUS}
    - name: right
      run: tail -n 1 a.txt > r.txt
      dependsOn: [split]
      cpuLimit: {CPUS}
    - name: join
      run: |
        if [ ! -f .join_tried ]; then touch .join_tried; echo first >&2; exit 3; fi
        cat l.txt r.txt > out.txt
        echo joined
        echo warn >&2
      dependsOn: [left, right]
      retries: 1
      cpuLimit: {CPUS}
"""

BROKEN_YAML = """\
name: broken
spec:
  runtime: local
  activities:
    - name: make
      run: |
        echo partial > partial.txt
        echo boom >&2
        exit 2
    - name: after
      run: cat partial.txt
      dependsOn: [make]
"""


@dataclass
class Run:
    home: Path
    manifest: Manifest
    wf: WorkflowRecord
    status: str


def run_workflow(home: Path, text: str, inputs: dict[str, str]) -> Run:
    m = service.open_manifest()
    wf = service.register(m, parse_workflow_text(text, source="test.yaml"))
    work = Path(wf.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    for name, content in inputs.items():
        (work / name).write_text(content)
    status = service.run(m, wf.id)
    return Run(home, m, m.get_workflow(wf.id), status)


def synthetic_run(db: Path, files: dict[str, list[FileEntry]]) -> tuple[Manifest, int]:
    """A finished run written through the manifest API, as the dispatcher would write it:
    one root activity per key of `files`, all attempts overlapping in time."""
    m = Manifest(db)
    spec = WorkflowSpec(name="synthetic",
                        activities=[ActivitySpec(name=n, run="true") for n in files])
    wf = m.register_workflow(spec, run_root=str(db.parent / "runs"))
    acts = m.ready_activities(wf.id)
    ids = m.begin_attempts(wf.id, [Intent(
        activity_id=a.id, number=1, site="local", job_name=f"j{a.name}", attempt_dir="/tmp/x",
        resources=Resources()) for a in acts])
    t = time.time()
    for act, attempt in zip(acts, ids, strict=True):
        assert attempt is not None
        m.complete_attempt(wf.id, attempt,
                           AttemptOutcome(0, None, t, t + 1, files=files[act.name]))
    m.finalize_workflow(wf.id)
    return m, wf.id
