"""Helpers of bench_slurm.py: call-counting wrappers, DAG maths, the hand-written baseline.

Counting is done from outside akoflow on purpose: wrapper `sbatch`/`squeue` scripts first on
PATH log every invocation (time, the caller's SLURM_JOB_ID, argv) and exec the real client,
so the figures hold whatever the dispatcher's code looks like. sbatch exports the caller's
environment, so dispatcher batch jobs go through the wrappers too.
"""

from __future__ import annotations

import heapq
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from akoflow.port import akoflow_argv
from akoflow.port.units import parse_memory

REAL = {"sbatch": "/usr/bin/sbatch", "squeue": "/usr/bin/squeue", "scancel": "/usr/bin/scancel"}
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}
_SLEEP = re.compile(r"^\s*sleep\s+([0-9.]+)", re.M)


class BenchError(Exception):
    """A run that did not finish as it should: reported in one line, not as a traceback."""


# -- call counting ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    ts: float
    job: str  # SLURM_JOB_ID of the caller, "-" outside a batch job
    argv: list[str]


def make_wrappers(scratch: Path) -> tuple[Path, Path]:
    """`scratch/bin/{sbatch,squeue,scancel}` that log to `scratch/calls.log`; returns (bin, log)."""
    bin_dir, log = scratch / "bin", scratch / "calls.log"
    bin_dir.mkdir(parents=True, exist_ok=True)
    log.touch()
    for name, real in REAL.items():
        path = bin_dir / name
        path.write_text(
            "#!/bin/bash\n"
            f"printf '%s\\t%s\\t%s\\t%s\\n' \"$(date +%s.%N)\" \"${{SLURM_JOB_ID:--}}\" {name} "
            f"\"$*\" >> {log}\n"
            f"exec {real} \"$@\"\n")
        path.chmod(0o755)
    return bin_dir, log


def read_calls(log: Path, command: str) -> list[Call]:
    out = []
    for line in log.read_text().splitlines():
        parts = line.split("\t", 3)
        if len(parts) == 4 and parts[2] == command:
            out.append(Call(float(parts[0]), parts[1], parts[3].split()))
    return out


def script_job_name(argv: list[str]) -> str:
    """The `#SBATCH --job-name=` of the script an sbatch call submitted (its last argument)."""
    try:
        text = Path(argv[-1]).read_text(errors="replace")
    except (OSError, IndexError):
        return "?"
    m = re.search(r"^#SBATCH --job-name=(\S+)", text, re.M)
    return m.group(1) if m else "?"


@dataclass
class SbatchSplit:
    task_calls: int = 0
    array_calls: int = 0
    array_elements: int = 0
    dispatcher_calls: int = 0
    other_calls: int = 0


def _array_size(spec: str) -> int:
    total = 0
    for part in spec.split("%", 1)[0].split(","):
        lo, _, hi = part.partition("-")
        step = 1
        if ":" in hi:
            hi, _, s = hi.partition(":")
            step = int(s)
        total += (int(hi) - int(lo)) // step + 1 if hi else 1
    return total


def split_sbatch(calls: list[Call]) -> SbatchSplit:
    s = SbatchSplit()
    for c in calls:
        name = script_job_name(c.argv)
        if ".dispatcher" in name:  # akoflow.<wf>.dispatcher.<manifest id>
            s.dispatcher_calls += 1
        elif name.startswith("akoflow."):
            s.task_calls += 1
            arr = next((a.split("=", 1)[1] for a in c.argv if a.startswith("--array=")), None)
            if arr:
                s.array_calls += 1
                s.array_elements += _array_size(arr)
        else:
            s.other_calls += 1
    return s


# -- akoflow through its CLI --------------------------------------------------------------------

def ak_env(home: Path, bin_dir: Path | None, extra: dict[str, str] | None = None
           ) -> dict[str, str]:
    env = {**os.environ, "AKOFLOW_HOME": str(home), **(extra or {})}
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def ak(args: list[str], env: dict[str, str], timeout: float = 3600,
       check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*akoflow_argv(), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise BenchError(f"akoflow {' '.join(args)} exited {proc.returncode}: "
                         f"{(proc.stderr or proc.stdout).strip()[-400:]}")
    return proc


def iso_ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- the DAG of an akoflow YAML file ----------------------------------------------------------

@dataclass
class Task:
    name: str
    seconds: float
    parents: list[str]
    mem_mb: int
    level: int = 0


@dataclass
class Dag:
    tasks: dict[str, Task] = field(default_factory=dict)  # topological (file) order

    @classmethod
    def from_yaml(cls, path: Path) -> Dag:
        doc: dict[str, Any] = yaml.safe_load(path.read_text())
        dag = cls()
        for a in doc["spec"]["activities"]:
            m = _SLEEP.search(str(a.get("run", "")))
            mem = parse_memory(a["memoryLimit"]) if a.get("memoryLimit") else 0
            dag.tasks[a["name"]] = Task(a["name"], float(m.group(1)) if m else 0.0,
                                        list(a.get("dependsOn") or []),
                                        max(1, -(-mem // 1024**2)) if mem else 0)
        order = dag.topo()
        for name in order:
            t = dag.tasks[name]
            t.level = 1 + max((dag.tasks[p].level for p in t.parents), default=0)
        dag.tasks = {n: dag.tasks[n] for n in order}
        return dag

    def topo(self) -> list[str]:
        done: set[str] = set()
        order: list[str] = []
        for start in self.tasks:
            stack = [(start, False)]
            while stack:
                n, expanded = stack.pop()
                if n in done:
                    continue
                if expanded:
                    done.add(n)
                    order.append(n)
                    continue
                stack.append((n, True))
                stack.extend((p, False) for p in self.tasks[n].parents if p not in done)
        return order

    def critical_path(self) -> float:
        finish: dict[str, float] = {}
        for t in self.tasks.values():
            finish[t.name] = t.seconds + max((finish[p] for p in t.parents), default=0.0)
        return max(finish.values(), default=0.0)

    def ideal_makespan(self, slots: int) -> float:
        """Greedy list schedule on `slots` one-CPU slots with zero overhead: a lower bound
        the cluster's width imposes, which the critical path alone ignores."""
        waiting = {t.name: len(t.parents) for t in self.tasks.values()}
        children: dict[str, list[str]] = {n: [] for n in self.tasks}
        for t in self.tasks.values():
            for p in t.parents:
                children[p].append(t.name)
        index = {n: i for i, n in enumerate(self.tasks)}
        ready = [(index[n], n) for n, w in waiting.items() if w == 0]
        heapq.heapify(ready)
        running: list[tuple[float, str]] = []
        now = 0.0
        while ready or running:
            while ready and len(running) < slots:
                _, n = heapq.heappop(ready)
                heapq.heappush(running, (now + self.tasks[n].seconds, n))
            now, n = heapq.heappop(running)
            for c in children[n]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    heapq.heappush(ready, (index[c], c))
        return now

    def subset(self, max_level: int) -> Dag:
        return Dag({n: t for n, t in self.tasks.items() if t.level <= max_level})


def filter_yaml(src: Path, dst: Path, keep: set[str]) -> None:
    doc = yaml.safe_load(src.read_text())
    doc["spec"]["activities"] = [a for a in doc["spec"]["activities"] if a["name"] in keep]
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))


# -- the hand-written baseline ----------------------------------------------------------------

def squeue_rows(env: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    out = subprocess.run(["squeue", "--noheader", "--all", "--states=all",
                          "--format=%i|%j|%T"], capture_output=True, text=True, env=env,
                         timeout=60, check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            rows.append((parts[0], parts[1], parts[2]))
    return rows


@dataclass
class HandResult:
    makespan: float
    submit_seconds: float
    ended: dict[str, str]  # job id → last state seen


def run_by_hand(dag: Dag, prefix: str, out_dir: Path, env: dict[str, str],
                timeout: float = 3600, poll: float = 0.5) -> HandResult:
    """sbatch every task in topological order with afterok on its parents' ids, each job
    `sleep <t>` with the same cpus/mem as akoflow asks; wait for the queue to drain."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    t0 = time.time()
    try:
        for t in dag.tasks.values():
            argv = ["sbatch", "--parsable", f"--job-name={prefix}{t.name}", "--cpus-per-task=1",
                    f"--output={out_dir}/%j.out", "--no-requeue"]
            if t.mem_mb:
                argv.append(f"--mem={t.mem_mb}M")
            if t.parents:
                argv.append("--dependency=afterok:" + ":".join(ids[p] for p in t.parents))
            argv.append(f"--wrap=sleep {t.seconds:g}")
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
            if proc.returncode != 0 and "dependency" in proc.stderr.lower() and t.parents:
                # a parent ended and was purged (MinJobAge) before this sbatch: drop it
                known = {jid for jid, _, _ in squeue_rows()}
                alive = [ids[p] for p in t.parents if ids[p] in known]
                argv = [a for a in argv if not a.startswith("--dependency=")]
                if alive:
                    argv.insert(-1, "--dependency=afterok:" + ":".join(alive))
                proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                                      timeout=60)
            if proc.returncode != 0:
                raise BenchError(f"sbatch for {t.name} failed: {proc.stderr.strip()}")
            ids[t.name] = proc.stdout.strip().split(";", 1)[0]
        submitted = time.time() - t0
        end, ended = wait_ids(set(ids.values()), timeout, poll, t0)
    except BaseException:
        if ids:  # only the jobs this driver submitted
            subprocess.run(["scancel", *ids.values()], capture_output=True, check=False)
        raise
    return HandResult(end - t0, submitted, ended)


def wait_ids(ids: set[str], timeout: float, poll: float, t0: float
             ) -> tuple[float, dict[str, str]]:
    """Poll squeue until none of `ids` is active; (time seen drained, last state of each).
    MinJobAge (30 s) keeps ended jobs listed, so a poll every `poll` s sees each end state."""
    last: dict[str, str] = {}
    while True:
        rows = {jid: st for jid, _, st in squeue_rows() if jid in ids}
        last.update(rows)
        if not any(st in ACTIVE for st in rows.values()):
            # never listed by a poll: it ended and was purged before the first poll
            return time.time(), {j: last.get(j, "ENDED_UNSEEN") for j in ids}
        if time.time() - t0 > timeout:
            pending = sum(st == "PENDING" for st in rows.values())
            raise BenchError(f"jobs still active after {timeout:.0f}s ({pending} pending)")
        time.sleep(poll)


def cluster_slots() -> int:
    """CPUs of the distinct nodes `sinfo` lists (a node in two partitions counts once)."""
    out = subprocess.run(["sinfo", "-N", "-h", "-o", "%N %c"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    cpus = {}
    for line in out.splitlines():
        name, _, n = line.partition(" ")
        cpus[name] = int(n)
    return sum(cpus.values())
