"""The dispatcher dies at each step of a submission; the next cycle must repair exactly.

Each test builds, with the real manifest and protocol code, the state a dispatcher leaves
when killed at one point, then resumes with the real CLI and checks every activity ran once.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from akoflow.manifest import Intent, Manifest
from akoflow.port import Resources, TaskLaunch, protocol
from akoflow.spec.models import ActivitySpec, WorkflowSpec
from tests.conftest import ak

RUN = 'echo "$AKOFLOW_ACTIVITY" >> "$AKOFLOW_RUN_DIR/executions.log"'


def _setup(home: Path) -> tuple[Manifest, int, TaskLaunch, int]:
    """Register a 3-activity chain and record the first activity's intent."""
    os.environ["AKOFLOW_HOME"] = str(home)
    m = Manifest(home / "manifest.db")
    spec = WorkflowSpec(name="crash", activities=[
        ActivitySpec(name="a", run=RUN),
        ActivitySpec(name="b", run=RUN, depends_on=["a"]),
        ActivitySpec(name="c", run=RUN, depends_on=["b"]),
    ])
    wf = m.register_workflow(spec, run_root=str(home / "runs"))
    act = m.activity_named(wf.id, "a")
    assert act is not None
    adir = protocol.attempt_dir(wf.run_dir, "a", 1)
    launch = TaskLaunch(
        workflow_id=wf.id, workflow=wf.name, activity_id=act.id, activity="a", attempt=1,
        job_name=protocol.job_name(wf.id, "a", 1), attempt_dir=adir,
        work_dir=Path(wf.work_dir), run_dir=Path(wf.run_dir), script=RUN,
        resources=Resources.from_json(act.resources))
    (aid,) = m.begin_attempts(wf.id, [Intent(
        activity_id=act.id, number=1, site="local", job_name=launch.job_name,
        attempt_dir=str(adir), resources=launch.resources, job_id=str(adir))])
    assert aid is not None
    Path(wf.work_dir).mkdir(parents=True, exist_ok=True)
    return m, wf.id, launch, aid


def _resume_and_check(home: Path, run_dir: Path) -> None:
    proc = ak("run", "--resume", "1", home=home, timeout=120,
              env={"AKOFLOW_LOST_GRACE": "5"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = json.loads(ak("status", "1", "--json", home=home, check=True).stdout)
    assert st["counts"] == {"FINISHED": 3}
    runs = Counter((run_dir / "executions.log").read_text().split())
    assert runs == {"a": 1, "b": 1, "c": 1}


def test_killed_after_intent_before_attempt_dir(akhome: Path) -> None:
    _m, _wf, launch, _aid = _setup(akhome)
    _resume_and_check(akhome, launch.run_dir)


def test_killed_after_attempt_dir_before_start(akhome: Path) -> None:
    _m, _wf, launch, _aid = _setup(akhome)
    protocol.prepare_attempt(launch)
    _resume_and_check(akhome, launch.run_dir)


def test_killed_after_task_ran_before_anything_recorded(akhome: Path) -> None:
    """The task ran to the end (pid and exit code on disk) while nobody watched."""
    import subprocess

    _m, _wf, launch, _aid = _setup(akhome)
    protocol.prepare_attempt(launch)
    subprocess.run(["bash", str(launch.attempt_dir / protocol.TASK_SH)], check=True)
    assert protocol.read_exit(launch.attempt_dir)[0] == 0
    _resume_and_check(akhome, launch.run_dir)


def test_killed_while_task_runs(akhome: Path) -> None:
    """A running orphan is adopted, not started again: a second start is refused."""
    import subprocess
    import time

    _m, _wf, launch, _aid = _setup(akhome)
    launch.script = f"sleep 1.5\n{RUN}"
    protocol.prepare_attempt(launch)
    orphan = subprocess.Popen(["bash", str(launch.attempt_dir / protocol.TASK_SH)],
                              start_new_session=True)
    time.sleep(0.3)
    _resume_and_check(akhome, launch.run_dir)
    assert orphan.wait(timeout=10) == 0
    # a duplicate start of the same attempt exits at once without running the user's text
    dup = subprocess.run(["bash", str(launch.attempt_dir / protocol.TASK_SH)])
    assert dup.returncode == protocol.DUPLICATE_EXIT
    runs = Counter((launch.run_dir / "executions.log").read_text().split())
    assert runs["a"] == 1


def test_killed_while_writing_task_script(akhome: Path) -> None:
    """Only a complete task.sh ever appears under its name: a half-written one (the
    dispatcher died mid-write) is never started."""
    _m, _wf, launch, _aid = _setup(akhome)
    launch.attempt_dir.mkdir(parents=True)
    text = protocol.render_task_script(launch)
    (launch.attempt_dir / f".{protocol.TASK_SH}.tmp").write_text(text[: len(text) // 2])
    _resume_and_check(akhome, launch.run_dir)
