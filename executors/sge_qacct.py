"""SGE's accounting: how a job that left `qstat` ended, read with `qacct -j`.

Asked only for jobs that left no result.json, a bounded number per poll (`qacct_per_poll`),
since each call reads the cell's whole accounting file; an answer never changes, so it is
kept. Parsed on REAL output of the SGE 8.1.9 test cell (tests/executors/captured/).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from akoflow.port import JobRef, JobState, JobStatus, SubmitError, protocol


class Qacct:
    """The SGE executor's `accounted` hook (`qacct: false` in the site profile turns it off)."""

    def __init__(self, config: Mapping[str, Any], command: Callable[..., str],
                 checked: Callable[[Sequence[str]], list[str]]) -> None:
        self.per_poll = int(config.get("qacct_per_poll", 4)) if config.get("qacct", True) else 0
        self.command, self.checked = command, checked
        self.known: dict[str, JobStatus] = {}  # job id -> what qacct said

    def judge(self, gone: Sequence[JobRef]) -> dict[str, JobStatus]:
        budget = self.per_poll
        for ref in gone:
            if ref.job_id and ref.job_id not in self.known and budget > 0 and \
                    not (Path(ref.attempt_dir) / protocol.RESULT).exists():
                budget -= 1
                try:
                    argv = qacct_argv(self.checked([ref.job_id])[0])
                    found = parse_qacct(self.command(argv, retries=0))
                except SubmitError:  # not (yet) in the accounting file, or no qacct here
                    found = None
                if found is not None:
                    self.known[ref.job_id] = found
        return {r.job_id: self.known[r.job_id] for r in gone if r.job_id in self.known}


def qacct_argv(job_id: str) -> list[str]:
    job, _, task = job_id.partition(".")
    return ["qacct", "-j", job, *(["-t", task] if task else [])]


def parse_qacct(stdout: str) -> JobStatus | None:
    """The outcome of the last `qacct -j` record, or None when it says nothing certain.

    `failed` 37 (qmaster enforced h_rt, h_cpu or h_vmem) → TIMEOUT; 100 with a signal exit
    (137) is a qdel → CANCELLED; other `failed` codes (could not start) and non-zero exits →
    FAILED. A clean exit 0 returns None: success is judged by the worker's result.json only.
    """
    rec: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("====="):
            rec = {}
        key, _, value = line.partition(" ")
        rec[key] = value.strip()
    failed, status = rec.get("failed", ""), rec.get("exit_status", "").split(" ", 1)[0]
    code = failed.split(":", 1)[0].strip()
    if not code.isdigit() or not status.isdigit():
        return None
    text = f"qacct: failed {failed}, exit_status {rec.get('exit_status')}"
    if code == "37":
        return JobStatus(JobState.TIMEOUT, message=text)
    if code == "100" and int(status) > 128:
        return JobStatus(JobState.CANCELLED, message=text)
    if code != "0" or status != "0":
        return JobStatus(JobState.FAILED, message=text)
    return None
