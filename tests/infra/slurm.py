"""A real, heterogeneous Slurm cluster on this one host, for integration tests.

``ensure_slurm()`` installs Debian's Slurm 22.05 and MUNGE when missing, writes
``/etc/slurm/slurm.conf`` describing two nodes of different shape (several ``slurmd`` on one
host, each with its own ``-N`` name and port), starts ``munged``, ``slurmctld`` and one ``slurmd``
per node, and waits until every node answers. It is idempotent: when everything already runs with
the same configuration it returns in a few tens of milliseconds; when the configuration changed it
rewrites it and restarts the daemons.

Run ``python -m tests.infra.slurm`` (as root) to bring the cluster up by hand.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.infra._common import (
    InfraError,
    apt_install,
    file_lock,
    kill_and_wait,
    live_pid,
    missing_commands,
    pids_named,
    run,
    short_hostname,
    start_daemon,
    tail,
    wait_for,
    write_if_changed,
)

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
COMMANDS = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "sbatch", "squeue",
            "scontrol", "sinfo", "scancel", "munge", "unmunge")

CONF_DIR = Path("/etc/slurm")
SLURM_CONF = CONF_DIR / "slurm.conf"
STATE_DIR = Path("/var/lib/slurm/slurmctld")
SPOOL_ROOT = Path("/var/lib/slurm/slurmd")
LOG_ROOT = Path("/var/log/slurm")
CTLD_PIDFILE = Path("/run/slurmctld.pid")
CTLD_LOG = LOG_ROOT / "slurmctld.log"
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
MUNGE_PIDFILE = MUNGE_RUN / "munged.pid"
CTLD_PORT = 6817
MARKER = "# Written by akoflow tests/infra/slurm.py"

# Job states that still occupy the queue (squeue's default listing).
ACTIVE_STATES = frozenset({
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
    "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD",
})


@dataclass(frozen=True)
class SlurmNode:
    name: str
    cpus: int
    memory_mb: int
    features: tuple[str, ...]
    port: int


@dataclass(frozen=True)
class SlurmPartition:
    name: str
    nodes: tuple[str, ...]
    default: bool = False


DEFAULT_NODES = (
    # Only 2 real cores here: `big` declares 4 CPUs (SlurmdParameters=config_overrides lets the
    # configuration win over the hardware), so the two nodes differ in CPUs, memory and features.
    SlurmNode("small", cpus=2, memory_mb=2000, features=("small", "ssd"), port=6818),
    SlurmNode("big", cpus=4, memory_mb=8000, features=("big", "highmem"), port=6819),
)
DEFAULT_PARTITIONS = (
    SlurmPartition("debug", ("small", "big"), default=True),
    SlurmPartition("bigmem", ("big",)),
)


@dataclass(frozen=True)
class SlurmJob:
    """One line of ``squeue -r``: array tasks are listed one by one (``123_4``)."""
    job_id: str
    state: str
    partition: str
    nodes: str
    reason: str
    name: str

    @property
    def base_id(self) -> str:
        """The id ``scancel`` and dependencies take for the whole job (array id for a task)."""
        return self.job_id.split("_", 1)[0]


@dataclass
class SlurmCluster:
    """Handle on the running cluster. All commands are on the default PATH (``/usr/bin``)."""
    hostname: str
    version: str
    nodes: tuple[SlurmNode, ...]
    partitions: tuple[SlurmPartition, ...]
    conf_path: Path = SLURM_CONF
    env: dict[str, str] = field(default_factory=dict)
    startup_seconds: float = 0.0

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def partition_names(self) -> list[str]:
        return [p.name for p in self.partitions]

    @property
    def default_partition(self) -> str:
        return next(p.name for p in self.partitions if p.default)

    @property
    def features(self) -> dict[str, tuple[str, ...]]:
        """Node name → its features (``--constraint`` names)."""
        return {n.name: n.features for n in self.nodes}

    def node(self, name: str) -> SlurmNode:
        return next(n for n in self.nodes if n.name == name)

    # -- queue ------------------------------------------------------------------------------

    def submit(self, script: str | Path, *sbatch_args: str, cwd: str | Path | None = None) -> str:
        """``sbatch --parsable ARGS SCRIPT``; returns the job id (without cluster suffix)."""
        proc = run(["sbatch", "--parsable", *sbatch_args, str(script)], cwd=cwd)
        return proc.stdout.strip().split(";", 1)[0]

    def squeue_jobs(self, name_prefix: str | None = None,
                    all_states: bool = False) -> list[SlurmJob]:
        """Jobs in the queue (``all_states``: also those finished within MinJobAge)."""
        argv = ["squeue", "-h", "-a", "-r", "-o", "%i|%T|%P|%N|%r|%j"]
        if all_states:
            argv += ["-t", "all"]
        proc = run(argv)
        jobs = []
        for line in proc.stdout.splitlines():
            parts = line.split("|", 5)
            if len(parts) != 6:
                continue
            job = SlurmJob(*parts)
            if name_prefix is None or job.name.startswith(name_prefix):
                jobs.append(job)
        return jobs

    def job_info(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o ID`` as a dict (first record; {} once the job is forgotten)."""
        proc = run(["scontrol", "show", "job", "-o", job_id], check=False)
        if proc.returncode != 0 or not proc.stdout.strip():
            return {}
        first = proc.stdout.splitlines()[0]
        return parse_scontrol_record(first)

    def wait_empty(self, timeout: float = 120, name_prefix: str | None = None) -> None:
        """Wait until no active job (with that name prefix, if given) is left in the queue."""
        wait_for(lambda: not [j for j in self.squeue_jobs(name_prefix)
                              if j.state in ACTIVE_STATES],
                 timeout=timeout, interval=0.5, what="the Slurm queue to drain",
                 details=lambda: run(["squeue", "-a"], check=False).stdout)

    def cancel_all(self, name_prefix: str | None = None, wait: bool = True,
                   timeout: float = 60) -> None:
        """``scancel`` every job (or those whose name starts with ``name_prefix``)."""
        ids = sorted({j.base_id for j in self.squeue_jobs(name_prefix)})
        if ids:
            run(["scancel", *ids], check=False)
        if wait:
            self.wait_empty(timeout=timeout, name_prefix=name_prefix)

    # -- daemons ----------------------------------------------------------------------------

    def ping(self) -> bool:
        return controller_up()

    def node_states(self) -> dict[str, str]:
        return node_states()

    def restart_controller(self, hard: bool = False, timeout: float = 60) -> None:
        """Stop ``slurmctld`` (SIGTERM, or SIGKILL when ``hard``) and start it again.

        Queued and running jobs survive: slurmctld saves them in StateSaveLocation and reloads
        them on start (never ``-c``). Returns once the controller answers and nodes respond.
        """
        with file_lock("slurm"):
            pids = _ctld_pids()
            if hard:
                for p in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, 9)
            kill_and_wait(pids)
            _start_ctld(timeout=timeout)
            _wait_nodes(self.node_names, timeout=timeout)


def parse_scontrol_record(line: str) -> dict[str, str]:
    """``Key=Value Key2=Value with spaces`` (one ``-o`` record) → dict.

    Values may contain spaces (``Command=``, ``Reason=``); a new key starts at a space followed
    by ``Word=``.
    """
    out: dict[str, str] = {}
    for m in re.finditer(r"(\w[\w:/.]*)=(.*?)(?=\s+\w[\w:/.]*=|\s*$)", line.strip()):
        out[m.group(1)] = m.group(2)
    return out


# ---------------------------------------------------------------------------------------------
# configuration


def render_conf(hostname: str, nodes: tuple[SlurmNode, ...],
                partitions: tuple[SlurmPartition, ...]) -> str:
    """The whole slurm.conf text (deterministic, so an unchanged config is detected exactly)."""
    lines = [
        MARKER,
        "# Several slurmd run on this one host: one per NodeName, each with its own Port,",
        "# started as `slurmd -N <name>`. Edits are overwritten by ensure_slurm().",
        "ClusterName=akoflow",
        f"SlurmctldHost={hostname}(127.0.0.1)",
        f"SlurmctldPort={CTLD_PORT}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        "DisableRootJobs=NO",
        "MpiDefault=none",
        "MailProg=/bin/true",
        f"StateSaveLocation={STATE_DIR}",
        f"SlurmdSpoolDir={SPOOL_ROOT}/%n",
        f"SlurmctldPidFile={CTLD_PIDFILE}",
        "SlurmdPidFile=/run/slurmd-%n.pid",
        f"SlurmctldLogFile={CTLD_LOG}",
        f"SlurmdLogFile={LOG_ROOT}/slurmd-%n.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # No cgroups: processes are tracked by parent pid, tasks are not bound.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SlurmdParameters=config_overrides",
        # Memory is a consumable resource: --mem decides which node fits.
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        # Without a default, a job that asks no memory is given the whole node's memory and
        # nodes run one job at a time; real sites set a per-CPU default.
        "DefMemPerCPU=100",
        "SchedulerType=sched/backfill",
        # Tests want quick reactions; event-driven scheduling does most of the work anyway.
        "SchedulerParameters=sched_interval=2,bf_interval=2",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "ReturnToService=2",
        "MaxArraySize=1001",
        "MaxJobCount=100000",
        "MinJobAge=30",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=60",
        "MessageTimeout=10",
        "KillWait=5",
        "InactiveLimit=0",
        "Waittime=0",
    ]
    for n in nodes:
        lines.append(
            f"NodeName={n.name} NodeHostname={hostname} NodeAddr=127.0.0.1 Port={n.port} "
            f"CPUs={n.cpus} RealMemory={n.memory_mb} Features={','.join(n.features)} "
            "State=UNKNOWN")
    for p in partitions:
        lines.append(
            f"PartitionName={p.name} Nodes={','.join(p.nodes)} "
            f"Default={'YES' if p.default else 'NO'} MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# daemons


def _ctld_pids() -> list[int]:
    pid = live_pid(CTLD_PIDFILE, "slurmctld")
    found = set(pids_named("slurmctld"))
    if pid is not None:
        found.add(pid)
    return sorted(found)


def _slurmd_pidfile(node: str) -> Path:
    return Path(f"/run/slurmd-{node}.pid")


def controller_up() -> bool:
    proc = run(["scontrol", "ping"], check=False, timeout=30)
    return proc.returncode == 0 and " is UP" in proc.stdout


def node_states() -> dict[str, str]:
    """Node → state as ``sinfo`` prints it (``idle``, ``mixed``, ``down*``, ``drained`` …)."""
    proc = run(["sinfo", "-N", "-h", "-o", "%N %T"], check=False, timeout=30)
    states: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


_UP_STATES = ("idle", "mixed", "allocated", "completing")


def _node_ok(state: str) -> bool:
    return not state.endswith("*") and state.rstrip("+~#!%$@^-") in _UP_STATES


def _wait_nodes(names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    resumed: set[str] = set()
    while True:
        states = node_states()
        bad = {n: states.get(n, "missing") for n in names if not _node_ok(states.get(n, ""))}
        if not bad:
            return
        for n, st in bad.items():
            base = st.rstrip("+~#!%$@^-")
            if not st.endswith("*") and base in ("down", "drained", "draining", "drain", "fail",
                                                 "failing") and n not in resumed:
                run(["scontrol", "update", f"nodename={n}", "state=resume"], check=False)
                resumed.add(n)
        if time.monotonic() > deadline:
            logs = "\n".join(tail(LOG_ROOT / f"slurmd-{n}.log", 15) for n in bad)
            raise InfraError(f"Slurm nodes not up after {timeout:.0f}s: {bad}\n"
                             f"{run(['sinfo', '-R'], check=False).stdout}\n{logs}\n"
                             f"{tail(CTLD_LOG, 15)}")
        time.sleep(0.25)


def _start_ctld(timeout: float) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    LOG_ROOT.mkdir(parents=True, exist_ok=True)
    start_daemon(["/usr/sbin/slurmctld"], name="slurmctld")
    wait_for(controller_up, timeout=timeout, interval=0.2, what="slurmctld to answer",
             details=lambda: tail(CTLD_LOG))


def _start_slurmd(node: str) -> None:
    (SPOOL_ROOT / node).mkdir(parents=True, exist_ok=True)
    start_daemon(["/usr/sbin/slurmd", "-N", node], name=f"slurmd-{node}")


def _munge_ok() -> bool:
    enc = run(["munge", "-n"], check=False, timeout=10)
    if enc.returncode != 0:
        return False
    dec = run(["unmunge"], check=False, timeout=10, input_text=enc.stdout)
    return dec.returncode == 0


def ensure_munge() -> None:
    """A MUNGE key (created if absent) and a running ``munged`` (as user munge)."""
    try:
        munge_user = pwd.getpwnam("munge")
    except KeyError as exc:
        raise InfraError("user 'munge' missing: the munge package is not installed") from exc
    if not MUNGE_KEY.exists():
        MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
        MUNGE_KEY.write_bytes(os.urandom(1024))
        MUNGE_KEY.chmod(0o400)
        os.chown(MUNGE_KEY, munge_user.pw_uid, munge_user.pw_gid)
    if live_pid(MUNGE_PIDFILE, "munged") is not None and _munge_ok():
        return
    MUNGE_RUN.mkdir(mode=0o755, exist_ok=True)
    os.chown(MUNGE_RUN, munge_user.pw_uid, munge_user.pw_gid)
    # munged refuses to run as root with a key it does not own; run it as munge, like systemd
    # does. --force: a socket left behind by a munged that died (machine kept between runs).
    start_daemon(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--force"], name="munged")
    wait_for(_munge_ok, timeout=20, what="munged to encode/decode a credential",
             details=lambda: tail(Path("/var/log/munge/munged.log")))


def _install() -> None:
    missing = missing_commands(COMMANDS)
    if missing:
        apt_install(PACKAGES)
        still = missing_commands(COMMANDS)
        if still:
            raise InfraError(f"installed {PACKAGES} but still missing: {still}")


def slurm_version() -> str:
    return run(["/usr/sbin/slurmd", "-V"]).stdout.strip()


def ensure_slurm(nodes: tuple[SlurmNode, ...] = DEFAULT_NODES,
                 partitions: tuple[SlurmPartition, ...] = DEFAULT_PARTITIONS,
                 timeout: float = 90) -> SlurmCluster:
    """Install, configure and start the cluster as needed; return a handle on it.

    Must run as root. Raises :class:`InfraError` with the relevant logs when it cannot.
    """
    if os.geteuid() != 0:
        raise InfraError("ensure_slurm() must run as root (it installs packages and starts "
                         "slurmctld/slurmd)")
    t0 = time.monotonic()
    hostname = short_hostname()
    with file_lock("slurm"):
        _install()
        ensure_munge()
        text = render_conf(hostname, nodes, partitions)
        if SLURM_CONF.exists() and MARKER not in SLURM_CONF.read_text(errors="replace"):
            backup = SLURM_CONF.with_name("slurm.conf.before-akoflow")
            if not backup.exists():
                SLURM_CONF.replace(backup)
        changed = write_if_changed(SLURM_CONF, text)
        if changed:
            # Node or partition definitions cannot be reloaded with `scontrol reconfigure`
            # in 22.05: stop every daemon and start them with the new file.
            kill_and_wait([*pids_named("slurmd"), *_ctld_pids()])
        if not _ctld_pids():
            _start_ctld(timeout=timeout)
        elif not controller_up():
            # Alive but not answering (e.g. still starting): give it time before giving up.
            wait_for(controller_up, timeout=timeout, what="slurmctld to answer",
                     details=lambda: tail(CTLD_LOG))
        for n in nodes:
            if live_pid(_slurmd_pidfile(n.name), "slurmd") is None:
                _start_slurmd(n.name)
        _wait_nodes([n.name for n in nodes], timeout=timeout)
        version = slurm_version()
    return SlurmCluster(hostname=hostname, version=version, nodes=nodes, partitions=partitions,
                        startup_seconds=time.monotonic() - t0)


def main() -> None:
    t0 = time.monotonic()
    cluster = ensure_slurm()
    print(f"{cluster.version} on {cluster.hostname}: nodes {cluster.node_names}, "
          f"partitions {cluster.partition_names} (ready in {time.monotonic() - t0:.2f}s)")
    print(run(["sinfo", "-N", "-o", "%N %P %c %m %f %T"]).stdout, end="")


if __name__ == "__main__":
    main()
