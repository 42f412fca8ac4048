"""The local executor's task launcher: a long-lived bash that forks tasks.

Real processes throughout: the launcher, its forked tasks, and the executor that watches
them through pidfds. What must hold is what held for `bash task.sh` started directly:
one process group per task, exact exit codes, CPU time recorded, each attempt run once even
when the launcher itself is killed mid-run.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from akoflow.executors.launcher import Launcher
from akoflow.executors.local import LocalExecutor
from akoflow.executors.local_lanes import Lanes
from akoflow.port import AttemptOutcome, JobRef, JobState, Resources, TaskLaunch, protocol
from akoflow.worker.monitor import pid_owner_matches
from tests.conftest import procs_with


def _launch(run: Path, name: str, script: str, cpu: float = 0.5) -> TaskLaunch:
    ln = TaskLaunch(
        workflow_id=1, workflow="lw", activity_id=1, activity=name, attempt=1,
        job_name=protocol.job_name(1, name, 1),
        attempt_dir=protocol.attempt_dir(run, name, 1), work_dir=run / "work",
        run_dir=run, script=script, resources=Resources(cpu=cpu, memory=0),
        sample_interval=0.2)
    protocol.prepare_attempt(ln)
    (run / "work").mkdir(exist_ok=True)
    return ln


def _outcomes(ex: LocalExecutor, timeout: float = 30) -> dict[str, AttemptOutcome]:
    """Run the executor until nothing is left; the outcome per attempt directory."""
    reports: dict[str, AttemptOutcome] = {}
    end = time.time() + timeout
    while ex.busy() and time.time() < end:
        ex.wait(0.5)
        reports.update(ex.collect_reports())
    reports.update(ex.collect_reports())
    assert not ex.busy(), "tasks still running"
    return reports


def _finish(ex: LocalExecutor, timeout: float = 30) -> dict[str, int | None]:
    """Run the executor until nothing is left; exit code per attempt directory."""
    return {job: o.exit_code for job, o in _outcomes(ex, timeout).items()}


def test_launcher_reports_pid_of_a_task_in_its_own_group(tmp_path: Path) -> None:
    ln = _launch(tmp_path, "a", "echo out; echo err >&2; sleep 0.3")
    starter = Launcher(dict(os.environ))
    try:
        starter.send(str(ln.attempt_dir))
        heard: list[tuple[int, str]] = []
        end = time.time() + 10
        while not heard and time.time() < end:
            heard = starter.receive()
            time.sleep(0.01)
        assert heard and heard[0][1] == str(ln.attempt_dir)
        assert starter.pid in _own_launchers()
        pid = heard[0][0]
        assert os.getpgid(pid) == pid  # its own process group: a cancel reaches all of it
        assert pid_owner_matches(pid, ln.attempt_dir)  # found again by a later dispatcher
        assert not pid_owner_matches(pid, tmp_path / "elsewhere")
        psutil.Process(pid).wait(10)
    finally:
        starter.close()
    assert protocol.read_int(ln.attempt_dir / protocol.PID) == pid
    rc, cpu = protocol.read_exit(ln.attempt_dir)
    assert rc == 0 and cpu is not None
    assert (ln.attempt_dir / protocol.STDOUT).read_text() == "out\n"
    assert (ln.attempt_dir / protocol.STDERR).read_text() == "err\n"


def test_forked_task_that_redirects_its_output_is_still_recognised(tmp_path: Path) -> None:
    """A later dispatcher must adopt a running forked task even when its script moved its
    stdout/stderr elsewhere: its birth time matches its claim."""
    ln = _launch(tmp_path, "r", "exec >log 2>&1; sleep 5")
    assert not protocol.needs_fresh_shell(ln.script)
    ex = LocalExecutor("local", {"cpus": 2})
    ex.submit([ln])
    try:
        end = time.time() + 10
        pid = None
        while pid is None and time.time() < end:
            ex.wait(0.1)
            pid = protocol.read_int(ln.attempt_dir / protocol.PID)
        assert pid is not None
        while time.time() < end and os.readlink(f"/proc/{pid}/fd/1").startswith(
                str(ln.attempt_dir)):
            time.sleep(0.05)  # until the exec above has run
        assert pid_owner_matches(pid, ln.attempt_dir)
        assert not os.readlink(f"/proc/{pid}/fd/1").startswith(str(ln.attempt_dir))
    finally:
        ex.cancel([JobRef(str(ln.attempt_dir), ln.job_name, str(ln.attempt_dir), 0.0)])
        ex.close()


def _started(lanes: Lanes) -> list[int]:
    """The pids of the launchers that have started (one per CPU in use, when traced)."""
    return [la.pid for la in lanes.launchers if la.pid]


def test_exit_codes_cpu_time_and_time_limit(tmp_path: Path) -> None:
    ex = LocalExecutor("local", {"cpus": 4})
    assert ex.lanes is not None, "this kernel has pidfd_open; the launcher must be used"
    ok = _launch(tmp_path, "ok", "i=0; while (( i < 200000 )); do i=$((i+1)); done")
    bad = _launch(tmp_path, "bad", "exit 7")
    slow = _launch(tmp_path, "slow", "sleep 30")
    slow.resources = replace(slow.resources, time_limit=0.5)
    ex.submit([ok, bad, slow])
    try:
        reports = _outcomes(ex)
    finally:
        ex.close()
    o_ok, o_bad, o_slow = (reports[str(x.attempt_dir)] for x in (ok, bad, slow))
    assert o_ok.exit_code == 0 and o_ok.cpu_time is not None and o_ok.cpu_time > 0.05
    assert o_bad.exit_code == 7 and o_bad.reason == "EXIT"
    assert o_slow.reason == "TIMEOUT" and o_slow.exit_code == 143


def test_killed_launcher_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Kill the launcher while tasks are queued in its pipe and running: every task still
    runs exactly once (re-sent ones that had started are refused by the pid claim)."""
    ex = LocalExecutor("local", {"cpus": 8})
    launches = [_launch(tmp_path, f"t{i}", f"echo x >> ran-t{i}; sleep 0.2", cpu=0.5)
                for i in range(24)]
    ex.submit(launches)
    assert ex.lanes is not None and _started(ex.lanes)
    for pid in _started(ex.lanes):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    late = _launch(tmp_path, "late", "echo x >> ran-late", cpu=0.5)
    ex.submit([late])  # the first send after the death finds the pipe broken
    launches.append(late)
    try:
        codes = _finish(ex)
    finally:
        ex.close()
    assert sorted(codes) == sorted(str(ln.attempt_dir) for ln in launches)
    assert set(codes.values()) == {0}
    for ln in launches:
        assert (tmp_path / "work" / f"ran-{ln.activity}").read_text() == "x\n"


def test_exit_code_survives_a_replaced_trap_or_exec(tmp_path: Path) -> None:
    """A script may set its own EXIT trap or exec another program: task.sh's trap does not
    run then, and the launcher (the task's parent) gives the exit code instead."""
    own_trap = _launch(tmp_path, "trap", "trap 'echo bye' EXIT; exit 5")
    execs = _launch(tmp_path, "exec", "exec sh -c 'exit 6'")
    killed = _launch(tmp_path, "killed", "kill -9 $$")
    ex = LocalExecutor("local", {"cpus": 4})
    ex.submit([own_trap, execs, killed])
    try:
        reports = _outcomes(ex)
    finally:
        ex.close()
    assert reports[str(own_trap.attempt_dir)].exit_code == 5
    assert reports[str(execs.attempt_dir)].exit_code == 6
    k = reports[str(killed.attempt_dir)]
    assert k.exit_code == 137 and "SIGKILL" in (k.message or "")


def test_each_task_is_its_own_bash(tmp_path: Path) -> None:
    """`$$` is the task's pid (scripts name temporary files after it), not the launcher's."""
    lns = [_launch(tmp_path, f"s{i}", "echo $$ > pid-$AKOFLOW_ACTIVITY; sleep 0.2")
           for i in range(3)]
    ex = LocalExecutor("local", {"cpus": 4})
    ex.submit(lns)
    try:
        _finish(ex)
    finally:
        ex.close()
    seen = [int((tmp_path / "work" / f"pid-{ln.activity}").read_text()) for ln in lns]
    assert len(set(seen)) == 3
    assert seen == [protocol.read_int(ln.attempt_dir / protocol.PID) for ln in lns]


def test_cancel_before_the_launcher_answers(tmp_path: Path) -> None:
    """A task sent but not yet started when it is cancelled never runs."""
    ex = LocalExecutor("local", {"cpus": 2})
    warm = _launch(tmp_path, "warm", "true")
    ex.submit([warm])
    _finish(ex)
    assert ex.lanes is not None and _started(ex.lanes)
    for pid in _started(ex.lanes):  # (the late task goes to the least loaded: the first)
        os.kill(pid, signal.SIGSTOP)
    ln = _launch(tmp_path, "late", "echo ran > ran-late")
    try:
        ex.submit([ln])
        ex.cancel([JobRef(str(ln.attempt_dir), ln.job_name, str(ln.attempt_dir), 0.0)])
    finally:
        for pid in _started(ex.lanes):
            os.kill(pid, signal.SIGCONT)
    time.sleep(0.5)
    ex.close()
    assert not (tmp_path / "work" / "ran-late").exists()
    assert protocol.read_exit(ln.attempt_dir)[0] == 143


def test_cancel_stops_launched_task_and_its_children(tmp_path: Path) -> None:
    marker = f"{os.getpid()}.{int(time.time() * 1000) % 100000}"
    ln = _launch(tmp_path, "c", f"sleep {marker} & sleep {marker}")
    ex = LocalExecutor("local", {"cpus": 2})
    ex.submit([ln])
    try:
        end = time.time() + 10
        while len(procs_with(marker)) < 2 and time.time() < end:
            ex.wait(0.1)
        assert len(procs_with(marker)) == 2
        ex.cancel([JobRef(str(ln.attempt_dir), ln.job_name, str(ln.attempt_dir), 0.0)])
        end = time.time() + 10
        while procs_with(marker) and time.time() < end:
            time.sleep(0.1)
        assert procs_with(marker) == []
        assert not ex.busy()
    finally:
        ex.close()


def test_site_can_turn_the_launcher_off(tmp_path: Path) -> None:
    ex = LocalExecutor("local", {"cpus": 2, "launcher": False})
    assert ex.lanes is None
    ln = _launch(tmp_path, "d", "exit 3")
    ex.submit([ln])
    assert _finish(ex) == {str(ln.attempt_dir): 3}
    status = ex.poll([JobRef(str(ln.attempt_dir), ln.job_name, str(ln.attempt_dir), 0.0)])
    assert status[ln.job_name].state is JobState.FAILED


def _own_launchers() -> set[int]:
    """Live launcher shells started by this test process: other processes on the machine
    (other test runs, other users' dispatchers) have launchers of their own."""
    found = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if "akoflow-launcher" in " ".join(p.cmdline()) and p.status() != "zombie":
                found.add(p.pid)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture(autouse=True)
def _no_stray_launchers() -> Iterator[None]:
    """Each test closes its executor; its launcher must then exit (end of input)."""
    before = _own_launchers()
    yield
    end = time.time() + 5
    while _own_launchers() - before and time.time() < end:
        time.sleep(0.05)
    assert not _own_launchers() - before


@pytest.mark.parametrize("launcher", [True, False])
def test_tasks_get_default_sigpipe(tmp_path: Path, launcher: bool) -> None:
    """Python ignores SIGPIPE; its children must not, or `yes | head -1` makes `yes` fail
    with "Broken pipe" instead of ending quietly, as in a terminal."""
    ln = _launch(tmp_path, "p", "set +o pipefail; yes | head -1; echo \"${PIPESTATUS[0]}\"; "
                                "awk '/^SigIgn/ {print $2}' /proc/self/status")
    ex = LocalExecutor("local", {"cpus": 2, "launcher": launcher})
    ex.submit([ln])
    try:
        assert _finish(ex) == {str(ln.attempt_dir): 0}
    finally:
        ex.close()
    out = (ln.attempt_dir / protocol.STDOUT).read_text().split()
    assert out[:2] == ["y", str(128 + signal.SIGPIPE)]  # killed by SIGPIPE, not an error
    assert not int(out[2], 16) & (1 << (signal.SIGPIPE - 1))  # not ignored in the task
    assert (ln.attempt_dir / protocol.STDERR).read_text() == ""


def test_fork_only_for_scripts_that_cannot_tell(tmp_path: Path) -> None:
    """A plain script is forked from the launcher (make's fast path); one that reads `$$`
    (or sources code, returns, ...) gets a fresh `bash task.sh`."""
    assert not protocol.needs_fresh_shell("sort -u in.txt | head -5 > out.txt")
    assert all(protocol.needs_fresh_shell(t) for t in (
        "echo $$", "f=${$}.tmp", "kill $PPID", ". ./env.sh", "source env.sh", "eval \"$x\"",
        "if true; then . x; fi", "return 3"))
    show = "me=$BASHPID; tr '\\0' ' ' < /proc/$me/cmdline > cmd-$AKOFLOW_ACTIVITY; echo \"$0\""
    forked = _launch(tmp_path, "forked", show)
    fresh = _launch(tmp_path, "fresh", show + "; : $$")
    ex = LocalExecutor("local", {"cpus": 4})
    ex.submit([forked, fresh])
    try:
        assert set(_finish(ex).values()) == {0}
    finally:
        ex.close()
    work = tmp_path / "work"
    assert "akoflow-launcher" in (work / "cmd-forked").read_text()  # the launcher's
    assert (work / "cmd-fresh").read_text().split()[-1] == str(fresh.attempt_dir / "task.sh")
    for ln in (forked, fresh):  # $0 is task.sh either way
        assert (ln.attempt_dir / protocol.STDOUT).read_text() == f"{ln.attempt_dir}/task.sh\n"


@pytest.mark.parametrize("fresh", [False, True])
def test_a_refused_second_start_leaves_the_running_tasks_output_alone(
        tmp_path: Path, fresh: bool) -> None:
    """A second start of a running attempt (a crash-recovery race) is refused by the pid
    claim, and must not truncate the stdout/stderr the first start is writing."""
    ln = _launch(tmp_path, "a", "echo first; echo warn >&2; sleep 0.6; echo second")
    out = ln.attempt_dir / protocol.STDOUT
    first, second = Launcher(dict(os.environ)), Launcher(dict(os.environ))
    try:
        first.send(str(ln.attempt_dir))
        end = time.time() + 10
        while not (out.exists() and out.read_bytes() == b"first\n") and time.time() < end:
            time.sleep(0.01)
        second.send(str(ln.attempt_dir), fresh=fresh)
        time.sleep(0.3)  # the second start ran its redirections and was refused
        pid = protocol.read_int(ln.attempt_dir / protocol.PID)
        assert pid is not None
        psutil.Process(pid).wait(10)
    finally:
        first.close()
        second.close()
    assert out.read_text() == "first\nsecond\n"
    assert (ln.attempt_dir / protocol.STDERR).read_text() == "warn\n"


def _affinity(work: Path, name: str) -> set[int]:
    text = (work / f"aff-{name}").read_text().split(":", 1)[1].strip()
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return out


AFFINITY = "grep Cpus_allowed_list /proc/self/status > aff-{0}; sleep 0.3"


@pytest.mark.parametrize("bind", [True, False])
def test_traced_tasks_run_on_the_cpu_of_their_tracer(tmp_path: Path, bind: bool) -> None:
    """With tracing, each one-cpu task runs on one CPU with the launcher (and tracer) that
    started it, two at once on different CPUs; a wider task and `bind: false` are free."""
    from akoflow.worker import tracing
    from tests.infra import in_ci

    why = tracing.unavailable()
    if why is not None and not in_ci():
        pytest.skip(f"no tracing here: {why}")
    mine = os.sched_getaffinity(0)
    if len(mine) < 2:
        pytest.skip("one CPU: nothing to bind to")
    ex = LocalExecutor("local", {"cpus": 2, "bind": bind})
    assert ex.lanes is not None
    assert [la.cpus for la in ex.lanes.bound] == (
        [frozenset({c}) for c in sorted(mine)[:2]] if bind else [])
    a, b = (_launch(tmp_path, n, AFFINITY.format(n), cpu=1) for n in ("a", "b"))
    wide = _launch(tmp_path, "wide", AFFINITY.format("wide"), cpu=2)
    ex.submit([a, b, wide])
    try:
        reports = _outcomes(ex)
    finally:
        ex.close()
    work = tmp_path / "work"
    if bind:
        one, two = _affinity(work, "a"), _affinity(work, "b")
        assert len(one) == len(two) == 1 and one != two
    else:
        assert _affinity(work, "a") == _affinity(work, "b") == mine
    assert _affinity(work, "wide") == mine
    for ln, name in ((a, "aff-a"), (b, "aff-b"), (wide, "aff-wide")):  # traced, exactly
        files = {(f.role, f.path, f.observed) for f in reports[str(ln.attempt_dir)].files}
        assert files == {("generated", name, "trace")}
