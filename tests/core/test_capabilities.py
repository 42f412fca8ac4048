"""What only some executors can do is declared, and the dispatcher's questions find it: the
local, Singularity, Docker and packing (pilot) executors run tasks in-process, every batch
scheduler hosts dispatcher jobs, Slurm alone chains `afterok`, and an executor that says
nothing is asked for nothing (no base-class default answers for it)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from akoflow.port import (
    Executor,
    JobRef,
    JobStatus,
    TaskLaunch,
    chains_after_ok,
    dispatcher_host,
    executor_class,
    in_process,
)


@pytest.mark.parametrize(("kind", "runner", "host"), [
    ("local", True, False), ("singularity", True, False), ("docker", True, False),
    ("slurm", False, True), ("sge", False, True), ("pbs", False, True), ("lsf", False, True),
    ("flux", False, True), ("kubernetes", False, False),
    ("pilot", True, True),  # packing: pilots' outcomes come in-process, allocations are jobs
])
def test_each_executor_declares_what_it_can_do(kind: str, runner: bool, host: bool) -> None:
    cls = executor_class(kind)
    if cls.missing():
        pytest.skip(cls.missing() or "")
    ex = cls.__new__(cls)  # the capabilities are the class's; nothing is started
    assert (in_process(ex) is not None) is runner
    assert (dispatcher_host(ex) is not None) is host
    assert chains_after_ok(ex) is (kind == "slurm")


class Bare(Executor):
    kind = "bare"

    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        return [ln.job_name for ln in launches]

    def poll(self, jobs: Sequence[JobRef]) -> dict[str, JobStatus]:
        return {}

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        pass


class HalfRunner(Bare):
    bounded = True  # but no planned_job_id, poll_changes, ...: not a runner


def test_an_executor_that_declares_nothing_is_asked_nothing() -> None:
    for ex in (Bare("x", {}), HalfRunner("y", {})):
        assert in_process(ex) is None and dispatcher_host(ex) is None
        assert not chains_after_ok(ex)
        assert not hasattr(ex, "busy") and not hasattr(ex, "submit_dispatcher")
