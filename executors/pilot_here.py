"""The allocation this process runs in: its nodes, and one agent started on each.

A pilot allocation runs one agent per node (executors/pilot_agent.py). On the node its job
script runs on, the agent is a child process (of the dispatcher, when the dispatcher job is
the allocation, with PR_SET_PDEATHSIG so it never outlives it); on the allocation's other
nodes `srun --overlap` starts it as a job step (Slurm only: SGE, PBS, LSF and Flux pilots are
one node each, see pilot_config.py). One agent per node rather than one `srun` per task: a
step costs a round trip to slurmctld, a local fork does not (bench_slurm.py --part packing
measures both).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil

from akoflow.port import akoflow_argv
from akoflow.port.home import current_job

from . import pilot_files as pf
from .pilot_agent import node_name


def job_here() -> str:
    """This allocation's job id, or a stand-in outside any scheduler (tests, `run`)."""
    return current_job() or f"host{os.getpid()}"


def started_here() -> float:
    """When this allocation started, as well as this process can tell: the start of the
    job script's process (a job script `exec`s akoflow), else this process's."""
    me = psutil.Process()
    times = [me.create_time()]
    try:
        parent = me.parent()
        if parent is not None and "slurmstepd" not in parent.name():
            times.append(parent.create_time())
    except psutil.Error:
        pass
    return min(times)


def nodes_here(kind: str) -> list[str]:
    """The allocation's nodes, this one first."""
    me = node_name()
    listed = os.environ.get("SLURM_JOB_NODELIST") if kind == "slurm" else None
    if not listed:
        return [me]
    out = subprocess.run(["scontrol", "show", "hostnames", listed], capture_output=True,
                         text=True, timeout=30, check=False).stdout.split()
    return [me, *[n for n in out if n != me]]


def agent_argv(python: str | None, run_dir: Path, site: str, index: int, started: float,
               parent: int | None = None, lead: bool = False) -> list[str]:
    argv = [*akoflow_argv(python), "pilot", "--run-dir", str(run_dir), "--site", site,
            "--index", str(index), "--started", f"{started:.3f}"]
    if lead:
        argv.append("--lead")
    return [*argv, "--parent", str(parent)] if parent else argv


def srun_argv(node: str) -> list[str]:
    """A step on `node` sharing the allocation's resources with the batch step."""
    return ["srun", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={node}",
            "--kill-on-bad-exit=0", "--export=ALL"]


class Agents:
    """The agents this process started for its own allocation."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dirs: list[Path] = []

    def start(self, *, kind: str, python: str | None, run_dir: Path, site: str,
              started: float, first: int = 0, parent: int | None = None,
              lead: bool = False) -> None:
        """An agent on every node of the allocation from node `first` on (0: this one too,
        a child that dies with `parent`)."""
        logs = pf.pilots_dir(run_dir) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        job = job_here()
        for index, node in enumerate(nodes_here(kind)):
            if index < first:
                continue
            argv = agent_argv(python, run_dir, site, index, started,
                              parent if index == 0 else None, lead)
            if index:
                argv = [*srun_argv(node), *argv]
            name = pf.pilot_name(job, index)
            with open(logs / f"agent-{name}.log", "ab") as out:
                self.procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                                   stdout=out, stderr=subprocess.STDOUT))
            self.dirs.append(pf.pilots_dir(run_dir) / name)

    def alive(self) -> bool:
        """The agent on this node still runs (the others are watched through their files)."""
        return bool(self.procs) and self.procs[0].poll() is None

    def stop(self, patience: float = 10.0) -> None:
        """Ask them to end (they refuse what is queued, report what ended) and wait."""
        for d in self.dirs:
            if d.is_dir():
                (d / pf.STOP).touch()
        end = time.monotonic() + patience
        for p in self.procs:
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()

    def wait(self) -> None:
        for p in self.procs:
            p.wait()
