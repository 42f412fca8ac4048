"""What BatchExecutor owns for every scheduler: all-or-nothing submission, arrays, the poll.

Driven through a scripted Transport standing in for the scheduler's clients (the adapters'
own pieces are real: their scripts, argv and parsers); each test checks the commands the
base ran, which is what a scheduler would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from akoflow.executors.batch_commands import CommandResult, Transport
from akoflow.executors.pbs import PbsExecutor
from akoflow.executors.sge import SgeExecutor
from akoflow.executors.slurm import SlurmExecutor
from akoflow.port import JobRef, JobState, Resources, SpecError, TaskLaunch


class Scheduler(Transport):
    """Answers qsub with growing job ids (or a refusal from the `refuse_after`th on);
    records every command."""

    def __init__(self, refuse_after: int | None = None, listing: str = "") -> None:
        self.calls: list[list[str]] = []
        self.refuse_after = refuse_after
        self.listing = listing
        self.queued = 0

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append(list(argv))
        if argv[0] == "qsub":
            if self.refuse_after is not None and self.queued >= self.refuse_after:
                return CommandResult(list(argv), 1, "", "qsub: Unknown queue")
            self.queued += 1
            return CommandResult(list(argv), 0, f"{100 + self.queued}.srv\n", "")
        if argv[0] == "qstat":
            return CommandResult(list(argv), 0, self.listing, "")
        return CommandResult(list(argv), 0, "", "")


def _launch(tmp_path: Path, name: str, **resources: object) -> TaskLaunch:
    adir = tmp_path / name
    adir.mkdir()
    return TaskLaunch(workflow_id=1, workflow="w", activity_id=1, activity=name, attempt=1,
                      job_name=f"akoflow.1.{name}.1", attempt_dir=adir, work_dir=tmp_path,
                      run_dir=tmp_path, script="true",
                      resources=Resources(cpu=1, **resources))  # type: ignore[arg-type]


def test_a_refusal_cancels_what_the_batch_queued(tmp_path: Path) -> None:
    t = Scheduler(refuse_after=2)
    ex = PbsExecutor("pbs", {"command_retries": 0}, transport=t)
    with pytest.raises(Exception, match="Unknown queue"):
        ex.submit([_launch(tmp_path, n) for n in "abc"])
    assert [c[0] for c in t.calls] == ["qsub", "qsub", "qsub", "qdel"]
    assert t.calls[-1][1:] == ["101.srv", "102.srv"]


def test_a_bad_launch_mid_batch_cancels_what_was_queued(tmp_path: Path) -> None:
    t = Scheduler()
    ex = PbsExecutor("pbs", {"command_retries": 0}, transport=t)
    bad = _launch(tmp_path, "b", extra={"pbs.N": "mine"})  # akoflow sets -N itself
    with pytest.raises(SpecError, match="akoflow sets -N itself"):
        ex.submit([_launch(tmp_path, "a"), bad])
    assert t.calls[-1] == ["qdel", "101.srv"]  # nothing of the batch is left queued


def test_without_arrays_each_launch_is_a_job_in_order(tmp_path: Path) -> None:
    t = Scheduler()
    ex = PbsExecutor("pbs", {}, transport=t)
    ids = ex.submit([_launch(tmp_path, n, memory=m) for n, m in (("a", 1), ("b", 2), ("c", 1))])
    assert ids == ["101.srv", "102.srv", "103.srv"]
    assert [Path(c[-1]).parent.name for c in t.calls] == ["a", "b", "c"]


def test_same_shaped_launches_become_one_array(tmp_path: Path) -> None:
    class Sge(Transport):
        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
            self.calls.append(list(argv))
            out = "9.1-2:1\n" if "-t" in argv else "8\n"
            return CommandResult(list(argv), 0, out, "")

    t = Sge()
    ex = SgeExecutor("sge", {}, transport=t)
    ids = ex.submit([_launch(tmp_path, "a"), _launch(tmp_path, "b", memory=2**30),
                     _launch(tmp_path, "c")])
    assert ids == ["9.1", "8", "9.2"]  # a and c share an array, b differs
    array = next(c for c in t.calls if "-t" in c)
    tasks = (tmp_path / "arrays").glob("*.tasks")
    assert [ln.split("\t")[1] for ln in next(tasks).read_text().splitlines()] == [
        "akoflow.1.a.1", "akoflow.1.c.1"]
    assert array[array.index("-t") + 1] == "1-2"


def test_an_unreadable_listing_leaves_every_state_unknown() -> None:
    t = Scheduler(listing="{not json")
    ex = PbsExecutor("pbs", {}, transport=t)
    refs = [JobRef("101.srv", "akoflow.1.a.1", "/x", 0.0)]
    assert ex.poll(refs)["akoflow.1.a.1"].state is JobState.UNKNOWN


class Cell(Transport):
    """qsub answering `-terse` as SGE does: `N` for a job, `N.1-K:1` for an array of K."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append(list(argv))
        if "-t" not in argv:
            return CommandResult(list(argv), 0, f"{len(self.calls)}\n", "")
        size = argv[argv.index("-t") + 1].split("-")[1]
        return CommandResult(list(argv), 0, f"{len(self.calls)}.1-{size}:1\n", "")


def test_arrays_are_chunked_by_the_array_limit(tmp_path: Path) -> None:
    """Five same-shaped launches under a limit of two: three arrays, ids in launch order;
    memory requests that differ by bytes share an array (schedulers count MiB)."""
    t = Cell()
    ex = SgeExecutor("sge", {"max_array_size": 2}, transport=t)
    launches = [_launch(tmp_path, n, memory=2**20 - i) for i, n in enumerate("abcde")]
    ids = ex.submit(launches)
    assert [c[c.index("-t") + 1] for c in t.calls] == ["1-2", "1-2", "1-1"]
    assert ids == ["1.1", "1.2", "2.1", "2.2", "3.1"]


def test_array_throttle_below_one_is_refused_with_the_site() -> None:
    with pytest.raises(SpecError, match="array_throttle"):
        SgeExecutor("sge", {"array_throttle": -2})


def test_slurm_arrays_group_what_sbatch_counts_alike(tmp_path: Path) -> None:
    """Slurm asks time in whole minutes: limits of 61 s and 119 s render the same `--time`,
    so those launches share one array; 121 s does not."""
    class Sbatch(Transport):
        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
            self.calls.append(list(argv))
            return CommandResult(list(argv), 0, f"{len(self.calls)}\n", "")

    t = Sbatch()
    ex = SlurmExecutor("slurm", {"max_array_size": 10}, transport=t)
    ids = ex.submit([_launch(tmp_path, n, time_limit=s)
                     for n, s in (("a", 61), ("b", 119), ("c", 121))])
    assert ids == ["1_0", "1_1", "2"]
    assert [a for a in t.calls[0] if a.startswith("--array")] == ["--array=0-1"]


class Listing(Transport):
    """squeue answering from a fixed listing and `%i|%k` comment rows; scancel refused with
    `refusal`; every command recorded."""

    def __init__(self, queue: str = "", comments: str = "", refusal: str = "") -> None:
        self.calls: list[list[str]] = []
        self.queue, self.comments, self.refusal = queue, comments, refusal

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append(list(argv))
        if argv[0] == "scancel" and self.refusal:
            return CommandResult(list(argv), 1, "", self.refusal)
        out = self.comments if "--format=%i|%k" in argv else self.queue
        return CommandResult(list(argv), 0, out, "")


def test_lookup_finds_array_elements_and_prefers_the_newest(tmp_path: Path) -> None:
    """Crash repair: an element is found through its array's tasks file (the `--comment`);
    where another array of this user holds the same name, the newer job is ours."""
    old, new = tmp_path / "old.tasks", tmp_path / "new.tasks"
    old.write_text("/a/x\takoflow.1.x.1\n")
    new.write_text("/b/y\takoflow.1.y.1\n/b/x\takoflow.1.x.1\n")
    rows = "".join(f"{j}|akoflow.1.array.{a}|RUNNING|None|n1|2024-01-01T00:00:00|0:01\n"
                   for j, a in (("77_1", "new"), ("9_0", "old"), ("77_0", "new"),
                                ("77_[2-5]", "new")))
    t = Listing(rows, f"9_0|{old}\n77_0|{new}\n77_1|{new}\n")
    found = SlurmExecutor("slurm", {}, transport=t).lookup(["akoflow.1.x.1", "akoflow.1.y.1"])
    assert found == {"akoflow.1.x.1": "77_1", "akoflow.1.y.1": "77_0"}


def test_a_refused_cancel_list_goes_one_by_one_unless_the_controller_is_down() -> None:
    ids = ["1", "2", "3"]
    gone = Listing(refusal="scancel: error: Invalid job id specified")
    SlurmExecutor("slurm", {}, transport=gone).cancel_ids(ids)
    assert [c[1:] for c in gone.calls] == [ids, ["1"], ["2"], ["3"]]
    down = Listing(refusal="scancel: error: Unable to contact slurm controller")
    SlurmExecutor("slurm", {"command_retries": 0}, transport=down).cancel_ids(ids)
    assert [c[1:] for c in down.calls] == [ids, ids]  # its one retry, then no id by id


def test_an_empty_pe_falls_back_to_the_site_parallel_environment() -> None:
    from akoflow.executors import sge

    site = sge.SiteOptions(parallel_environment="smp")
    assert sge.resource_options(Resources(cpu=2, extra={"pe": ""}), site) == ["-pe smp 2"]
