"""sacct is optional: used for jobs that left squeue where accounting runs, never required.

The executor's logic is driven through a scripted Transport (canned squeue/sacct output in
the formats of tests/executors/captured/); the real cluster here has no slurmdbd, which the
last test checks is detected and tolerated."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from akoflow.executors.batch_commands import CommandResult, Transport
from akoflow.executors.slurm import SlurmExecutor
from akoflow.port import JobRef, JobState
from akoflow.sites import load_site

CAPTURED = Path(__file__).parent / "captured"


class Scripted(Transport):
    """Answers each command from a table keyed by argv[0]; records the calls."""

    def __init__(self, answers: dict[str, CommandResult]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append(list(argv))
        return self.answers[argv[0]]


def _result(argv0: str, rc: int, out: str = "", err: str = "") -> CommandResult:
    return CommandResult([argv0], rc, out, err)


def _refs() -> list[JobRef]:
    return [JobRef("1004_3", "akoflow.7.arr.1", "/x", 0.0),
            JobRef("1005", "akoflow.7.mem.1", "/y", 0.0),
            JobRef("999", "akoflow.7.none.1", "/z", 0.0)]


def test_jobs_gone_from_squeue_are_judged_by_sacct() -> None:
    sacct = (CAPTURED / "sacct_docs_sample.txt").read_text()
    t = Scripted({"squeue": _result("squeue", 0), "sacct": _result("sacct", 0, sacct)})
    ex = SlurmExecutor("slurm", {"accounting": "auto"}, transport=t)
    st = ex.poll(_refs())
    assert st["akoflow.7.arr.1"].state is JobState.TIMEOUT
    assert st["akoflow.7.mem.1"].state is JobState.OOM
    assert st["akoflow.7.none.1"].state is JobState.GONE  # unknown to sacct too
    assert [c[0] for c in t.calls] == ["squeue", "sacct"]  # one bounded query, no probe
    assert t.calls[1][-1] == "1004_3,1005,999"
    ex.poll(_refs())
    assert [c[0] for c in t.calls].count("sacct") == 2  # accounting answered: asked again


def test_no_accounting_means_gone_and_no_more_sacct_calls() -> None:
    t = Scripted({"squeue": _result("squeue", 0),
                  "sacct": _result("sacct", 1, err="Slurm accounting storage is disabled")})
    ex = SlurmExecutor("slurm", {}, transport=t)
    for _ in range(3):
        st = ex.poll(_refs())
        assert {s.state for s in st.values()} == {JobState.GONE}
    assert [c[0] for c in t.calls].count("sacct") == 1


def test_accounting_off_in_the_profile_never_calls_sacct() -> None:
    t = Scripted({"squeue": _result("squeue", 0)})
    ex = SlurmExecutor("slurm", {"accounting": "no"}, transport=t)
    assert {s.state for s in ex.poll(_refs()).values()} == {JobState.GONE}
    assert all(c[0] == "squeue" for c in t.calls)


class Counting(Transport):
    """The real clients, counted."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append(argv[0])
        return super().run(argv, timeout)


@pytest.mark.infra
def test_the_real_cluster_has_no_accounting(slurm_cluster: object) -> None:
    """Its first sacct answer says accounting is off: GONE, and sacct is never asked again."""
    t = Counting()
    ex = SlurmExecutor("slurm", load_site("slurm"), transport=t)
    for _ in range(2):
        assert ex.poll([JobRef("1", "akoflow.0.x.1", "/x", 0.0)])["akoflow.0.x.1"].state is \
            JobState.GONE
    assert t.calls.count("sacct") == 1 and t.calls.count("squeue") == 2


def test_an_unreachable_slurmdbd_is_given_up_after_three_failures() -> None:
    """`auto`: a slurmdbd that never answers (a temporary-looking error each time) costs
    three sacct calls, not one per poll forever."""
    t = Scripted({"squeue": _result("squeue", 0), "sacct": _result(
        "sacct", 1, err="sacct: error: slurm_persist_conn_open: Connection refused")})
    ex = SlurmExecutor("slurm", {}, transport=t)
    for _ in range(5):
        assert {s.state for s in ex.poll(_refs()).values()} == {JobState.GONE}
    assert [c[0] for c in t.calls].count("sacct") == 3
