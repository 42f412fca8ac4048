"""Pure tests of the LSF adapter (executors/lsf.py): golden script, bsub options, states and
exit reasons, and the bjobs JSON parser on a sample in IBM's documented layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from akoflow.executors import lsf
from akoflow.port import JobState, Resources, SpecError, SubmitError
from tests.executors.test_slurm_pure import CAPTURED, WORKER, by_id, check_golden, launch

RES = Resources(cpu=1.5, memory=3 * 2**30, time_limit=3601, gpus=1, node_selector={"isa": "avx2"},
                extra={"queue": "debug", "project": "proj1", "lsf.x": "true", "lsf.app": "fast"})


def test_options_and_golden_script() -> None:
    ln = launch(resources=RES)
    opts = lsf.job_options(ln, "/scratch/logs")
    assert opts == [
        "-J", "akoflow.7.align.2", "-o", "/scratch/logs/akoflow.7.align.2.%J.out",
        "-e", "/scratch/logs/akoflow.7.align.2.%J.err", "-n", "2", "-R", "span[hosts=1]",
        "-R", "rusage[mem=3072MB]", "-M", "3072MB", "-W", "1:01", "-gpu", "num=1",
        "-q", "debug", "-P", "proj1", "-x", "-app", "fast", "-R", "select[avx2]"]
    text = lsf.render_script(ln, options=opts, worker_argv=[*WORKER, "/scratch/run/align/2"],
                             modules=["gcc/12.2"], env={"GREETING": "hi; $(rm -rf /)"},
                             array_size=None)
    check_golden("lsf_single.sh", text)


def test_array_golden_script() -> None:
    ln = launch(job_name="akoflow.7.align.arr1", resources=Resources(cpu=1))
    opts = lsf.job_options(ln, "/scratch/logs", array=lsf.array_spec(10, 4))
    assert opts[:2] == ["-J", "akoflow.7.align.arr1[1-10]%4"]
    assert "%J_%I" in opts[3]
    text = lsf.render_script(ln, options=opts, worker_argv=WORKER, modules=[], env={},
                             array_size=10, tasks_file="/scratch/run/tasks.txt")
    check_golden("lsf_array.sh", text)
    assert "#BSUB -J 'akoflow.7.align.arr1[1-10]%4'" in text and "LSB_JOBINDEX" in text


@pytest.mark.parametrize(("seconds", "text"), [(1, "0:01"), (60, "0:01"), (61, "0:02"),
                                               (3600, "1:00"), (86400, "24:00")])
def test_runlimit_rounds_up_to_minutes(seconds: float, text: str) -> None:
    assert lsf.format_runlimit(seconds) == text


def test_unknown_key_lists_valid_ones() -> None:
    with pytest.raises(SpecError) as err:
        lsf.resource_options(Resources(extra={"qos": "x"}))
    for key in ("partition", "queue", "account", "project", "reservation", "lsf.<bsub-option>"):
        assert key in str(err.value)


@pytest.mark.parametrize("res", [
    {"extra": {"queue": "q\n#BSUB -J x"}}, {"extra": {"project": "a b"}},
    {"extra": {"lsf.J": "x"}}, {"extra": {"lsf.w": "done(1)"}}, {"extra": {"lsf.o": "/x"}},
    {"extra": {"lsf.R": "rusage[mem=1] || x"}}, {"node_selector": {"k": "a && b"}},
    {"cpu": 0}, {"memory": -1}, {"time_limit": -5},
])
def test_resources_reject(res: dict[str, object]) -> None:
    with pytest.raises(SpecError):
        lsf.resource_options(Resources(**res))  # type: ignore[arg-type]


def test_every_state_code_maps_with_a_comment() -> None:
    codes = ["PEND", "PSUSP", "RUN", "USUSP", "SSUSP", "DONE", "EXIT", "UNKWN", "WAIT",
             "ZOMBI"]
    assert sorted(lsf.STATE_MAP) == sorted(codes)
    src = Path(lsf.__file__).read_text()
    for code in codes:
        assert "#" in next(ln for ln in src.splitlines() if ln.strip().startswith(f'"{code}":'))
    assert [c for c in codes if lsf.map_state(c) is JobState.COMPLETED] == ["DONE"]


def test_exit_reasons_and_unknown(caplog: pytest.LogCaptureFixture) -> None:
    assert lsf.map_state("EXIT", "TERM_RUNLIMIT: job killed") is JobState.TIMEOUT
    assert lsf.map_state("EXIT", "TERM_MEMLIMIT: job killed") is JobState.OOM
    assert lsf.map_state("EXIT", "TERM_OWNER: job killed by owner") is JobState.CANCELLED
    assert lsf.map_state("EXIT", "") is JobState.FAILED
    assert lsf.map_state("DONE", "TERM_RUNLIMIT") is JobState.COMPLETED
    assert lsf.map_state("WEIRD") is JobState.UNKNOWN and "WEIRD" in caplog.text


def test_parse_bjobs_json() -> None:
    out = by_id(lsf.parse_queue((CAPTURED / "lsf_bjobs.json").read_text(), "akoflow."))
    assert {jid: st.state for jid, (_, st) in out.items()} == {
        "5001": JobState.PENDING, "5002": JobState.RUNNING, "5003": JobState.COMPLETED,
        "5004": JobState.TIMEOUT, "5005": JobState.OOM, "5006": JobState.FAILED,
        "5007[2]": JobState.RUNNING}
    assert out["5006"][1].exit_code == 3 and out["5003"][1].exit_code == 0
    assert out["5003"][1].node == "hostA" and out["5002"][1].started_at
    assert out["5007[2]"][0] == "akoflow.7.arr"
    assert "dependency" in (out["5001"][1].message or "")
    assert by_id(lsf.parse_queue("", "akoflow.")) == {}


def test_dependencies_and_submit() -> None:
    assert lsf.dependency_after_ok(["1", "2[3]"]) == "done(1) && done(2[3])"
    assert lsf.dependency_first_to_end(["1", "2"]) == "ended(1) || ended(2)"
    with pytest.raises(ValueError):
        lsf.dependency_first_to_end(["1) || ended(2"])
    assert lsf.submit_argv("/j.sh", ["-J", "n"], dependency="done(1)") == [
        "bsub", "-J", "n", "-w", "done(1)", "/j.sh"]
    assert lsf.begin_at(61, now=0)[1].endswith(time_of(120))
    assert lsf.parse_submit("Job <1234> is submitted to default queue <normal>.\n") == "1234"
    with pytest.raises(SubmitError):
        lsf.parse_submit("Request aborted by esub. Job not submitted.")
    assert lsf.cancel_argv(["5", "6[2]"]) == ["bkill", "5", "6[2]"]


def time_of(epoch: int) -> str:
    import time

    return time.strftime("%H:%M", time.localtime(epoch))
