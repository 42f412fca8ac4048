"""Pure tests of the SGE adapter pieces (executors/sge.py) on golden scripts and REAL output of
the SGE 8.1.9 test cell (tests/executors/captured/sge_*.txt, made by sge_capture.sh)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from akoflow.executors import sge, sge_qacct
from akoflow.executors.batch_commands import CommandResult, Transport
from akoflow.executors.sge import SgeExecutor
from akoflow.port import JobRef, JobState, Resources, SpecError, SubmitError, TaskLaunch

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
CAPTURED = HERE / "captured"
WORKER = ["/opt/py/bin/python", "-m", "akoflow", "worker"]
SITE = sge.SiteOptions(parallel_environment="smp", memory_resources=("h_vmem", "mem_free"))


def launch(**over: object) -> TaskLaunch:
    base: dict[str, object] = dict(
        workflow_id=7, workflow="demo", activity_id=3, activity="align", attempt=2,
        job_name="akoflow.7.align.2", attempt_dir=Path("/scratch/run/align/2"),
        work_dir=Path("/scratch/run"), run_dir=Path("/scratch/run"), script="echo hi",
        resources=Resources(cpu=2, memory=3 * 2**30, time_limit=3600, gpus=1,
                            node_selector={"arch": "lx-amd64"},
                            extra={"queue": "all.q", "project": "p1", "features": "ssd",
                                   "sge.notify": "true", "sge.m": "n"}),
    )
    base.update(over)
    return TaskLaunch(**base)  # type: ignore[arg-type]


def captured(name: str) -> str:
    return (CAPTURED / name).read_text()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("AKOFLOW_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing {path}; rerun with AKOFLOW_UPDATE_GOLDEN=1"
    assert text == path.read_text()


# -- rendering ---------------------------------------------------------------------------------

def test_render_single_matches_golden() -> None:
    text = sge.render_script(
        launch(after_ok=["41", "42.3"]), worker_argv=[*WORKER, "/scratch/run/align/2"],
        modules=["gcc/12.2"], env={"GREETING": "hello world; $(rm -rf /)"},
        log_dir="/scratch/run/align/2", site=SITE)
    check_golden("sge_single.sh", text)
    directives = [ln for ln in text.splitlines() if ln.startswith("#$ ")]
    assert "#$ -N akoflow.7.align.2" in directives
    assert "#$ -o /scratch/run/align/2/$JOB_NAME.$JOB_ID.out" in directives
    assert "#$ -pe smp 2" in directives
    # 3 GiB over 2 slots; h_rt = time limit + the default 30 s grace
    assert "#$ -l h_vmem=1536M,mem_free=1536M,h_rt=1:00:30,gpu=1,arch=lx-amd64,ssd=TRUE" \
        in directives
    assert not [d for d in directives if "-terse" in d or "-hold_jid" in d]  # qsub flags
    assert "'hello world; $(rm -rf /)'" in text  # quoted, never expanded


def test_render_array_matches_golden() -> None:
    text = sge.render_script(
        launch(job_name="akoflow.7.array.0123456789ab", resources=Resources(cpu=1)),
        worker_argv=WORKER, modules=[], env={"A": "1"}, log_dir="/scratch/run/arrays",
        site=SITE, array_size=10, tasks_file="/scratch/run/arrays/x.tasks")
    check_golden("sge_array.sh", text)
    assert "$JOB_NAME.$JOB_ID.$TASK_ID.out" in text and "${SGE_TASK_ID}p" in text


@pytest.mark.parametrize("kwargs", [
    {"log_dir": "/with space"}, {"env": {"BAD-NAME": "x"}}, {"modules": ["gcc; rm"]},
    {"array_size": 3},  # no tasks file
])
def test_render_rejects_unsafe_input(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = dict(worker_argv=["/bin/true"], modules=[], env={},
                                   log_dir="/tmp", site=SITE)
    args.update(kwargs)
    with pytest.raises(SpecError):
        sge.render_script(launch(), **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["a b", "9starts.with.digit", "x:y", "a/b", ""])
def test_render_rejects_bad_job_names(name: str) -> None:
    with pytest.raises(SpecError):
        sge.render_script(launch(job_name=name), worker_argv=["/bin/true"], modules=[],
                          env={}, log_dir="/tmp", site=SITE)


# -- resources ---------------------------------------------------------------------------------

def test_cpus_need_a_parallel_environment() -> None:
    none = sge.SiteOptions()
    assert sge.resource_options(Resources(cpu=1.0, gpus=0, memory=None), none) == []
    with pytest.raises(SpecError, match="parallel_environment"):
        sge.resource_options(Resources(cpu=1.5), none)
    assert sge.resource_options(Resources(cpu=4, extra={"pe": "mpi"}), none) == ["-pe mpi 4"]
    assert sge.resource_options(Resources(cpu=3), SITE) == ["-pe smp 3"]


def test_resource_mapping_and_passthrough() -> None:
    opts = sge.resource_options(Resources(
        memory=100 * 2**20, time_limit=59.2,
        extra={"partition": "long.q", "account": "acct", "constraint": "a,b",
               "sge.l": "scratch=10G", "sge.notify": "yes", "sge.R": "false"}),
        sge.SiteOptions(time_limit_grace=0))
    assert opts == ["-l h_vmem=100M,h_rt=0:01:00,a=TRUE,b=TRUE", "-q long.q", "-P acct",
                    "-l scratch=10G", "-notify"]


def test_unknown_extra_key_lists_valid_keys() -> None:
    with pytest.raises(SpecError) as err:
        sge.resource_options(Resources(extra={"queu": "all.q"}), SITE)
    for key in ("queue", "partition", "project", "account", "features", "pe",
                "sge.<qsub-option>"):
        assert key in str(err.value)


@pytest.mark.parametrize("res", [
    {"extra": {"queue": "all.q\n#$ -b y"}},
    {"extra": {"project": "a b"}},
    {"extra": {"sge.N": "x"}},  # akoflow owns the name, logs, arrays and holds
    {"extra": {"sge.o": "/tmp/x"}}, {"extra": {"sge.hold_jid": "1"}}, {"extra": {"sge.t": "1"}},
    {"extra": {"sge.l": "a=1;rm"}}, {"extra": {"sge.bad-opt": "1"}},
    {"node_selector": {"k": "a b"}},
    {"cpu": -1}, {"memory": -1}, {"time_limit": "soon"}, {"gpus": float("inf")},
])
def test_resource_options_rejects(res: dict[str, object]) -> None:
    with pytest.raises(SpecError):
        sge.resource_options(Resources(**res), SITE)  # type: ignore[arg-type]


@pytest.mark.parametrize(("seconds", "text"), [
    (1, "0:00:01"), (0.2, "0:00:01"), (59.5, "0:01:00"), (3600, "1:00:00"),
    (90061, "25:01:01"),
])
def test_format_time(seconds: float, text: str) -> None:
    assert sge.format_time(seconds) == text


# -- states ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "state"), [
    ("qw", JobState.PENDING), ("hqw", JobState.PENDING), ("hRwq", JobState.PENDING),
    ("r", JobState.RUNNING), ("t", JobState.RUNNING), ("Rr", JobState.RUNNING),
    ("Rt", JobState.RUNNING), ("s", JobState.RUNNING), ("ts", JobState.RUNNING),
    ("S", JobState.RUNNING), ("tS", JobState.RUNNING), ("T", JobState.RUNNING),
    ("tT", JobState.RUNNING), ("Eqw", JobState.FAILED), ("Ehqw", JobState.FAILED),
    ("dr", JobState.CANCELLED), ("dt", JobState.CANCELLED), ("dRr", JobState.CANCELLED),
])
def test_state_map(code: str, state: JobState) -> None:
    assert sge.map_state(code) is state


def test_every_letter_combination_has_the_state_of_its_strongest_letter() -> None:
    """All 2,047 non-empty sets of qstat's letters: deletion wins, then error, then any
    running or suspended letter, else pending; never an end state without d or E."""
    letters = "dEhrRsStTqw"
    for mask in range(1, 2 ** len(letters)):
        code = "".join(c for i, c in enumerate(letters) if mask >> i & 1)
        state = sge.map_state(code)
        if "d" in code:
            assert state is JobState.CANCELLED, code
        elif "E" in code:
            assert state is JobState.FAILED, code
        elif set(code) & set("rtsST"):
            assert state is JobState.RUNNING, code
        else:
            assert state is JobState.PENDING, code


def test_unknown_state_is_unknown_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert sge.map_state("zq") is JobState.UNKNOWN
        assert sge.map_state("") is JobState.UNKNOWN
    assert "zq" in caplog.text


# -- parsers on real output --------------------------------------------------------------------

def test_parse_submit_real_terse_output() -> None:
    single, array = captured("sge_qsub_terse.txt").split()
    assert sge.parse_submit(single + "\n") == [single]
    base = array.split(".")[0]
    assert sge.parse_submit(array) == [f"{base}.{i}" for i in range(1, 5)]
    assert sge.parse_submit("12.2-10:4\n") == ["12.2", "12.6", "12.10"]
    for junk in ("", "Your job 12 (x) has been submitted", "12.1-3"):
        with pytest.raises(SubmitError):
            sge.parse_submit(junk)


def test_parse_queue_real_mixed() -> None:
    entries = sge.parse_queue(captured("sge_qstat_mixed.txt"), "akoflow.")
    by_id = {e.job_id: e for e in entries}
    assert "someone-else" not in {e.name for e in entries}
    long_ = next(e for e in entries if e.name == "akoflow.99.long.1")
    assert long_.status.state is JobState.RUNNING and long_.status.node == "vm"
    assert long_.status.started_at is not None
    arr = sorted(i for i, e in by_id.items() if e.name == "akoflow.99.array.abc")
    base = arr[0].split(".")[0]
    assert arr == [f"{base}.{t}" for t in range(1, 5)]  # task 1 running, 2-4:1 pending
    assert by_id[f"{base}.1"].status.state is JobState.RUNNING
    assert by_id[f"{base}.3"].status.state is JobState.PENDING
    assert by_id[f"{base}.3"].status.started_at is None
    held = next(e for e in entries if e.name == "akoflow.99.held.1")
    assert held.state_code == "hqw" and held.status.state is JobState.PENDING


def test_parse_queue_real_deleting_and_error_states() -> None:
    deleting = sge.parse_queue(captured("sge_qstat_deleting.txt"), "akoflow.")
    assert next(e for e in deleting if e.name == "akoflow.99.long.1").status.state \
        is JobState.CANCELLED
    eqw = sge.parse_queue(captured("sge_qstat_eqw.txt"), "akoflow.")
    broken = [e for e in eqw if e.state_code == "Eqw"]
    assert len(broken) == 1 and broken[0].status.state is JobState.FAILED


def test_parse_queue_rejects_garbage() -> None:
    with pytest.raises(SubmitError):
        sge.parse_queue("<job_info><queue_info>", "akoflow.")
    assert sge.expand_tasks("2,3") == [2, 3]
    assert sge.expand_tasks("4-10:2") == [4, 6, 8, 10]
    with pytest.raises(ValueError):
        sge.expand_tasks("x-y")


@pytest.mark.parametrize(("name", "state", "text"), [
    ("sge_qacct_h_rt.txt", JobState.TIMEOUT, "37"),
    ("sge_qacct_qdel.txt", JobState.CANCELLED, "100"),
    ("sge_qacct_exit3.txt", JobState.FAILED, "exit_status 3"),
])
def test_parse_qacct_real(name: str, state: JobState, text: str) -> None:
    st = sge_qacct.parse_qacct(captured(name))
    assert st is not None and st.state is state and text in (st.message or "")


def test_parse_qacct_success_says_nothing() -> None:
    assert sge_qacct.parse_qacct(captured("sge_qacct_ok.txt")) is None  # result.json decides
    assert sge_qacct.parse_qacct(captured("sge_qacct_array_task.txt")) is None
    assert sge_qacct.parse_qacct("error: job id 5 not found\n") is None


# -- argv --------------------------------------------------------------------------------------

def test_submit_and_cancel_argv() -> None:
    assert sge.submit_argv("/j.sh") == ["qsub", "-terse", "/j.sh"]
    assert sge.submit_argv("/j.sh", hold=["5", "6.2", "6.3"], array_size=8, throttle=2) == [
        "qsub", "-terse", "-hold_jid", "5,6", "-t", "1-8", "-tc", "2", "/j.sh"]
    argv = sge.submit_argv("/j.sh", start_at=0.0)
    assert argv[2] == "-a" and len(argv[3]) == len("197001010000.00")
    assert sge.cancel_argv(["5", "6.2"]) == ["qdel", "5", "6.2"]
    assert sge_qacct.qacct_argv("6.2") == ["qacct", "-j", "6", "-t", "2"]
    for bad in (["5;rm"], ["-u"], []):
        with pytest.raises(ValueError):
            sge.cancel_argv(bad)


# -- the executor over a transport that answers like a broken qmaster ---------------------------

class Down(Transport):
    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        return CommandResult(list(argv), 1, "", "error: unable to contact qmaster using port")


def test_failing_query_is_unknown_for_every_job() -> None:
    ex = SgeExecutor("sge", {"command_retries": 0}, transport=Down())
    refs = [JobRef("5", "akoflow.1.a.1", "/nonexistent", 0.0),
            JobRef("6.2", "akoflow.1.b.1", "/nonexistent", 0.0)]
    assert {k: v.state for k, v in ex.poll(refs).items()} == {
        "akoflow.1.a.1": JobState.UNKNOWN, "akoflow.1.b.1": JobState.UNKNOWN}


def test_site_profile_is_packaged_and_documented() -> None:
    from akoflow.sites import load_site

    prof = load_site("sge")
    assert prof["executor"] == "sge" and prof["parallel_environment"] is None
    ex = SgeExecutor("sge", prof)
    assert ex.options.memory_resources == ("h_vmem",) and ex.hosts_dispatcher
