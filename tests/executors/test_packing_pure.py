"""Packing's pieces without a scheduler: the packing block, admin limits and "over a limit"
refusals, the pilot file protocol, the dispatcher's view of its pilots (fed by files a test
writes as an agent would), and the manifest's bound on runs that use no retry."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from akoflow.executors import pilot_files as pf
from akoflow.executors.batch_commands import CommandResult, Transport, over_limit
from akoflow.executors.pilot_config import Packing
from akoflow.executors.pilot_fleet import Fleet, Waiting
from akoflow.executors.pilot_limits import Limits, parse_qconf, parse_sacctmgr, profile_limits
from akoflow.executors.slurm import SlurmExecutor
from akoflow.manifest import Intent, Manifest
from akoflow.port import (
    ALLOCATION_ENDED,
    AttemptOutcome,
    ExecutorError,
    JobState,
    Resources,
    Status,
    SubmitError,
    TaskLaunch,
    protocol,
)
from akoflow.spec.models import ActivitySpec, WorkflowSpec

CAPTURED = Path(__file__).parent / "captured"


def test_the_packing_block_and_what_a_pilot_holds() -> None:
    p = Packing.of({"cpus": 4, "memory": "8Gi", "time": "30m", "max_allocations": 3,
                    "idle_timeout": "1m"}, "s")
    assert (p.cpus, p.memory, p.time, p.max_allocations, p.idle_timeout) == \
        (4.0, 8 * 1024**3, 1800.0, 3, 60.0)
    assert p.margin == 120.0 and Packing.of({"time": "1m"}, "s").margin == 6.0
    defaults = {"partition": "debug"}
    assert p.holds(Resources(cpu=2, memory=1024**3), defaults)
    assert p.holds(Resources(extra={"partition": "debug"}), defaults)
    for res in ({"cpu": 8}, {"gpus": 1}, {"memory": 9 * 1024**3}, {"time_limit": 1790},
                {"extra": {"partition": "bigmem"}}, {"node_selector": {"ssd": "1"}}):
        assert not p.holds(Resources.from_json(res), defaults), res  # an ordinary job runs it
    with pytest.raises(ExecutorError, match="Slurm"):
        Packing.of({"nodes": 2}, "s").allocation("sge", {})
    assert Packing.of({"nodes": 2}, "s").allocation("slurm", {})["extra"] == {
        "slurm.nodes": "2", "slurm.ntasks-per-node": "1"}
    with pytest.raises(ExecutorError, match="packing"):
        Packing.of({"time": "soon"}, "s")


def test_limits_from_sacctmgr_qconf_and_the_profile() -> None:
    # sacctmgr -n -P ... format=MaxSubmit,MaxJobs (sacctmgr(1)): one row per association
    assert parse_sacctmgr("|\n") == Limits()
    assert parse_sacctmgr("100|20\n50|\n") == Limits(50, 20)
    sconf = (CAPTURED / "sge_qconf_sconf.txt").read_text()  # real: max_u_jobs 0 (none)
    assert parse_qconf(sconf, "max_u_jobs", "max_jobs") == math.inf
    assert parse_qconf(sconf.replace("max_u_jobs                   0",
                                     "max_u_jobs                   12"), "max_u_jobs") == 12
    assert parse_qconf((CAPTURED / "sge_qconf_ssconf.txt").read_text(), "maxujobs") == math.inf
    assert profile_limits({"max_submit_jobs": 3}).tighter(Limits(max_jobs=2)) == Limits(3, 2)


class _Refusing(Transport):
    """sbatch as a cluster over its MaxSubmitJobs answers (text from Slurm's reason codes)."""

    def __init__(self, stderr: str) -> None:
        self.stderr = stderr
        self.calls = 0

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls += 1
        return CommandResult(list(argv), 1, "", self.stderr)


@pytest.mark.parametrize("text", [
    "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: "
    "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
    "sbatch: error: AssocMaxSubmitJobLimit",
    "qsub: would exceed queue generic's per-user limit of jobs in 'Q' state",
    "qsub: Maximum number of jobs already in queue MSG=total number of jobs in queue exceeds",
    "Pending job threshold reached. Retrying in 60 seconds...",
    "Unable to run job: job rejected: only 10 jobs are allowed per user (current job count: 10)",
    "flux-job: user has max active jobs",
])
def test_over_a_limit_is_try_later_at_once(text: str) -> None:
    assert over_limit(text)
    refusing = _Refusing(text)
    ex = SlurmExecutor("s", {"command_retries": 3}, refusing)
    with pytest.raises(SubmitError) as err:
        ex.command(["sbatch", "x.sh"])
    assert err.value.transient and refusing.calls == 1  # no retry: nothing changes in 1 s
    assert not over_limit("sbatch: error: invalid partition specified: nope")


def test_tail_reads_whole_lines_and_events_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "events"
    tail = pf.Tail(path)
    assert tail.lines() == []
    pf.append(path, ["a", "b"])
    with open(path, "a") as fh:
        fh.write("half")
    assert tail.lines() == ["a", "b"]
    with open(path, "a") as fh:
        fh.write(" done\n")
    assert tail.lines() == ["half done"]
    adir = tmp_path / "activities" / "x.1"
    adir.mkdir(parents=True)
    o = AttemptOutcome(exit_code=3, reason="EXIT", started_at=1.0, finished_at=2.0, node="n")
    kind, got, rest = pf.parse_event(pf.event(pf.ENDED, str(adir), pf.outcome_text(o)))
    back = pf.outcome_of(rest, got)
    assert kind == pf.ENDED and got == str(adir) and back is not None
    assert (back.exit_code, back.reason, back.node) == (3, "EXIT", "n")
    assert back.stdout_path == f"{adir}/stdout"
    assert pf.parse_event("garbage") == ("", "", "")
    assert pf.run_dir_of(adir) == tmp_path


def test_akoflows_prologue_needs_no_fresh_shell(tmp_path: Path) -> None:
    """The agent passes task.sh's whole text where the user's script would go: only the
    user's part may ask for a fresh bash, exactly as in a local run."""
    def text(script: str) -> str:
        return protocol.render_task_script(TaskLaunch(
            workflow_id=1, workflow="w", activity_id=1, activity="a", attempt=1, job_name="j",
            attempt_dir=tmp_path / "a. b.1", work_dir=tmp_path / "w. x", run_dir=tmp_path,
            script=script, env={"K": "v. w"}, resources=Resources(cpu=1, memory=10)))

    assert not protocol.needs_fresh_shell(text("echo hi > out.txt"))
    assert protocol.needs_fresh_shell(text("echo $$"))


# -- the dispatcher's view of its pilots, fed by files as an agent writes them ---------------

def _pilot(run_dir: Path, name: str, *, cpus: float = 2, deadline: float = 1e12,
           status: str = pf.RUNNING) -> Path:
    d = pf.pilots_dir(run_dir) / name
    d.mkdir(parents=True, exist_ok=True)
    pf.write_state(d, pf.PilotState(pilot=name, job_id=name.rpartition(".")[0], node="n1",
                                    cpus=cpus, memory=10**9, started=time.time(),
                                    deadline=deadline, beat=time.time(), status=status,
                                    host="elsewhere"))
    return d


def _attempt(run_dir: Path, name: str) -> str:
    adir = run_dir / "activities" / f"{name}.1"
    adir.mkdir(parents=True, exist_ok=True)
    return str(adir)


def test_the_fleet_feeds_pilots_with_room_and_walltime(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, prefetch=1.0, margin=10)
    d = _pilot(tmp_path, "7.0", cpus=2, deadline=time.time() + 100)
    waits = [Waiting(_attempt(tmp_path, f"t{i}"), 1.0, 0, 0.0) for i in range(6)]
    waits.append(Waiting(_attempt(tmp_path, "long"), 1.0, 0, 200.0))  # needs 200 s
    fleet.add(waits)
    fleet.refresh()
    fleet.feed()
    queued = (d / pf.QUEUE).read_text().splitlines()
    assert queued == [w.adir for w in waits[:4]]  # 2 cpus and as much again queued
    assert fleet.needs_fresh()  # `long` fits no live pilot's walltime
    assert fleet.status(waits[0].adir).state is JobState.PENDING
    pf.append(d / pf.EVENTS, [pf.event(pf.STARTED, waits[0].adir, 5.0, "n1"),
                              pf.event(pf.ENDED, waits[1].adir, pf.outcome_text(AttemptOutcome(
                                  exit_code=0, reason=None, started_at=1, finished_at=2)))])
    assert fleet.refresh()  # an attempt ended
    assert fleet.changes[waits[0].adir].state is JobState.RUNNING
    assert waits[1].adir in fleet.reports
    fleet.feed()
    assert (d / pf.QUEUE).read_text().splitlines()[4:] == [waits[4].adir]  # room for one
    huge = Waiting(_attempt(tmp_path, "huge"), 1.0, 2 * 10**9, 0.0)  # more than a pilot has
    fleet.add([huge])
    assert fleet.misfits() == [huge.adir] and huge.adir not in fleet.backlog


def test_a_pilot_that_is_over_leaves_its_attempts_to_their_files(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, prefetch=1.0, margin=10)
    dead = _pilot(tmp_path, "8.0", cpus=8)
    names = ["never", "done", "failed", "killed", "dying", "refused"]
    adirs = {n: _attempt(tmp_path, n) for n in names}
    fleet.add([Waiting(adirs[n], 1.0, 0, 0.0) for n in names])
    fleet.refresh()
    fleet.feed()
    (Path(adirs["done"]) / "pid").write_text("11\n0\n")
    (Path(adirs["failed"]) / "pid").write_text("12\n3\n")
    (Path(adirs["killed"]) / "pid").write_text("13\n143\n")
    (Path(adirs["dying"]) / "pid").write_text("14\n")
    pf.append(dead / pf.EVENTS, [pf.event(pf.REFUSED, adirs["refused"], "no time")])
    fleet.refresh()
    assert adirs["refused"] in fleet.backlog  # refused, never started: waits again
    assert (dead / pf.QUEUE).read_text().splitlines()[-1] == f"-{adirs['refused']}"
    again = Fleet(tmp_path, prefetch=1.0, margin=10)  # a dispatcher started after this one
    again.refresh()
    assert set(again.where) == set(adirs.values()) - {adirs["refused"]}
    fleet.allocations_over({"8"})  # the listing no longer shows allocation 8
    st = {n: fleet.changes.get(adirs[n]) for n in names}
    assert st["never"] is not None and st["never"].state is JobState.CANCELLED
    assert st["never"].message == ALLOCATION_ENDED
    assert (Path(adirs["never"]) / "pid").read_text().startswith("cancelled")  # claimed
    assert (st["done"].state, st["done"].exit_code) == (JobState.COMPLETED, 0)
    assert (st["failed"].state, st["failed"].exit_code) == (JobState.FAILED, 3)
    for n in ("killed", "dying"):  # the end of the allocation took them: they run again
        assert (st[n].state, st[n].message) == (JobState.PREEMPTED, ALLOCATION_ENDED)
    assert not fleet.where


def test_a_pilot_that_ended_cleanly_hands_back_what_it_never_started(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, prefetch=1.0, margin=10)
    d = _pilot(tmp_path, "9.0")
    adir = _attempt(tmp_path, "late")
    fleet.add([Waiting(adir, 1.0, 0, 0.0)])
    fleet.refresh()
    fleet.feed()
    assert fleet.where[adir] == "9.0"
    _pilot(tmp_path, "9.0", status=pf.GONE)  # it wrote "ended" after its last queue read
    time.sleep(1.1)
    fleet.refresh()
    assert adir in fleet.backlog and not (Path(adir) / "pid").exists()
    assert (d / pf.QUEUE).read_text().splitlines() == [adir, f"-{adir}"]  # taken back


def test_runs_that_lost_their_allocation_use_no_retry_up_to_a_bound(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.db")
    wf = m.register_workflow(WorkflowSpec(name="w", activities=[
        ActivitySpec(name="a", run="true")]), run_root=str(tmp_path)).id
    for n in range(1, 5):
        act = m.activity_named(wf, "a")
        assert act is not None and act.status == Status.READY.value
        (aid,) = m.begin_attempts(wf, [Intent(
            activity_id=act.id, number=n, site="s", job_name=f"j{n}", attempt_dir=f"/x/a.{n}",
            resources=Resources())])
        assert aid is not None
        m.record_started(wf, aid, time.time(), "n1")
        m.requeue_attempt(wf, aid, ALLOCATION_ENDED)
    act = m.activity_named(wf, "a")
    assert act is not None
    assert (act.status, act.reason, act.failures) == (Status.FAILED.value, "PREEMPTED", 1)
    assert [a.status for a in m.attempts(wf, act.id)] == ["FAILED"] * 4


def test_the_packing_block_is_checked_like_any_profile(tmp_path: Path) -> None:
    from akoflow.site_keys import problems

    good = {"packing": {"cpus": 2, "status_interval": 30, "grow_after": 5,
                        "max_submit_jobs": 10, "max_jobs": 5}}
    assert problems(good, tmp_path / "p.yaml", []) == []
    bad = problems({"packing": {"max_submit_job": 3}}, tmp_path / "p.yaml", [])
    assert len(bad) == 1 and "max_submit_jobs" in str(bad[0])
    assert json.dumps(good)  # plain data


def test_sge_arrays_keep_to_the_cells_max_aj_tasks(tmp_path: Path) -> None:
    from akoflow.executors.sge import SgeExecutor

    conf = (CAPTURED / "sge_qconf_sconf.txt").read_text().replace(
        "max_aj_tasks                 75000", "max_aj_tasks                 2")

    class Cell(Transport):
        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
            self.calls.append(list(argv))
            if argv[:2] == ["qconf", "-sconf"]:
                return CommandResult(list(argv), 0, conf, "")
            n = len(self.calls)
            size = argv[argv.index("-t") + 1].split("-")[1] if "-t" in argv else None
            return CommandResult(list(argv), 0, f"{n}.1-{size}:1\n" if size else f"{n}\n", "")

    cell = Cell()
    launches = [TaskLaunch(
        workflow_id=1, workflow="w", activity_id=i, activity=f"a{i}", attempt=1,
        job_name=f"akoflow.1.a{i}.1", attempt_dir=tmp_path / f"a{i}.1", work_dir=tmp_path,
        run_dir=tmp_path, script="true", resources=Resources(cpu=1)) for i in range(3)]
    for ln in launches:
        ln.attempt_dir.mkdir()
    SgeExecutor("sge", {}, cell).submit(launches)
    qsubs = [c for c in cell.calls if c[0] == "qsub"]
    assert [c[c.index("-t") + 1] for c in qsubs] == ["1-2", "1-1"]  # chunks of 2 tasks
