"""A real Son of Grid Engine 8.1.9 cell on this one host, for integration tests.

``ensure_sge()`` installs Debian's ``gridengine-master``/``-exec``/``-client`` (debconf answers
preseeded), makes this host resolvable to itself (``host_aliases``), starts ``sge_qmaster``,
configures the cell (root may run jobs, this host is admin/submit/exec host, queue ``all.q`` with
2 slots, a 1-second scheduler, unbuffered accounting), starts ``sge_execd`` and waits until the
queue instance is usable. It is idempotent: every setting is read back and only changed when it
differs, and running daemons are reused.

Run ``python -m tests.infra.sge`` (as root) to bring the cell up by hand.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
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

PACKAGES = ("gridengine-master", "gridengine-exec", "gridengine-client")
SGE_ROOT = Path("/var/lib/gridengine")
SGE_CELL = "default"
SGE_BIN = Path("/usr/lib/gridengine")
QMASTER = Path("/usr/sbin/sge_qmaster")
EXECD = Path("/usr/sbin/sge_execd")
COMMANDS = (str(QMASTER), str(EXECD), "qsub", "qstat", "qconf", "qdel", "qacct")
SPOOL = Path("/var/spool/gridengine")
QMASTER_SPOOL = SPOOL / "qmaster"
QMASTER_PIDFILE = QMASTER_SPOOL / "qmaster.pid"
QMASTER_MESSAGES = QMASTER_SPOOL / "messages"
EXECD_SPOOL = SPOOL / "execd"
ADMIN_USER = "sgeadmin"
QUEUE = "all.q"
SLOTS = 2

COMMON = SGE_ROOT / SGE_CELL / "common"

GLOBAL_SETTINGS = {
    # Jobs run as root in tests; SGE refuses uid/gid below these limits (default 1000).
    "min_uid": "0",
    "min_gid": "0",
    # execd reports load (and notices jobs that ended while it was down) at this interval.
    "load_report_time": "00:00:10",
    # Write each accounting record at once, so `qacct -j` sees a job as soon as it ends.
    "reporting_params": "accounting=true reporting=false flush_time=00:00:15 joblog=false "
                        "sharelog=00:00:00 accounting_flush_time=00:00:00",
}
SCHED_SETTINGS = {
    "schedule_interval": "0:0:1",
    "flush_submit_sec": "1",
    "flush_finish_sec": "1",
}


def queue_conf(hostname: str) -> dict[str, str]:
    """The complete ``all.q`` definition (every attribute, as ``qconf -Aq`` expects)."""
    conf = {
        "qname": QUEUE, "hostlist": hostname, "seq_no": "0", "load_thresholds": "NONE",
        "suspend_thresholds": "NONE", "nsuspend": "1", "suspend_interval": "00:05:00",
        "priority": "0", "min_cpu_interval": "00:05:00", "processors": "UNDEFINED",
        "qtype": "BATCH INTERACTIVE", "ckpt_list": "NONE", "pe_list": "NONE", "rerun": "FALSE",
        "slots": str(SLOTS), "tmpdir": "/tmp", "shell": "/bin/bash", "prolog": "NONE",
        "epilog": "NONE",
        # Honour the script's #! line (posix_compliant would run every script with `shell`).
        "shell_start_mode": "unix_behavior",
        "starter_method": "NONE", "suspend_method": "NONE", "resume_method": "NONE",
        "terminate_method": "NONE", "notify": "00:00:60", "owner_list": "NONE",
        "user_lists": "NONE", "xuser_lists": "NONE", "subordinate_list": "NONE",
        "complex_values": "NONE", "projects": "NONE", "xprojects": "NONE", "calendar": "NONE",
        "initial_state": "default",
    }
    for limit in ("rt", "cpu", "fsize", "data", "stack", "core", "rss", "vmem"):
        conf[f"s_{limit}"] = "INFINITY"
        conf[f"h_{limit}"] = "INFINITY"
    return conf


def sge_env() -> dict[str, str]:
    """Environment for SGE commands: SGE_ROOT/SGE_CELL, and the real binaries on PATH.

    ``/usr/bin/q*`` are Debian wrappers that default these; direct binaries need them.
    """
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if str(SGE_BIN) not in path.split(":"):
        path = f"{path}:{SGE_BIN}"
    return {"SGE_ROOT": str(SGE_ROOT), "SGE_CELL": SGE_CELL, "PATH": path}


def _sge(argv: list[str], *, check: bool = True,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # The real binaries, not the /usr/bin wrapper scripts (which cost ~40 ms each: they source
    # /etc/default/gridengine and run the `arch` script).
    real = SGE_BIN / argv[0]
    if os.access(real, os.X_OK):
        argv = [str(real), *argv[1:]]
    return run(argv, check=check, timeout=timeout, env=sge_env())


@dataclass(frozen=True)
class SgeJob:
    """One entry of ``qstat -xml``: array tasks appear per task (running) or as a range."""
    job_id: str
    name: str
    state: str
    queue: str
    tasks: str
    owner: str


@dataclass
class SgeCluster:
    hostname: str
    version: str
    queue: str = QUEUE
    slots: int = SLOTS
    sge_root: Path = SGE_ROOT
    cell: str = SGE_CELL
    env: dict[str, str] = field(default_factory=sge_env)
    startup_seconds: float = 0.0

    def qsub(self, script: str | Path, *qsub_args: str, cwd: str | Path | None = None) -> str:
        """``qsub -terse ARGS SCRIPT``; returns what -terse prints (``12`` or ``12.1-4:1``)."""
        proc = run(["qsub", "-terse", *qsub_args, str(script)], env=self.env, cwd=cwd)
        return proc.stdout.strip()

    def jobs(self, name_prefix: str | None = None) -> list[SgeJob]:
        """Every user's jobs known to qmaster (pending, running, in error)."""
        proc = run(["qstat", "-xml", "-u", "*"], env=self.env)
        return [j for j in parse_qstat_xml(proc.stdout)
                if name_prefix is None or j.name.startswith(name_prefix)]

    def qacct(self, job_id: str) -> list[dict[str, str]]:
        """``qacct -j ID`` records (one per task), [] until the job is in the accounting file."""
        proc = run(["qacct", "-j", job_id.split(".", 1)[0]], env=self.env, check=False)
        if proc.returncode != 0:
            return []
        return parse_qacct(proc.stdout)

    def wait_empty(self, timeout: float = 120, name_prefix: str | None = None) -> None:
        wait_for(lambda: not self.jobs(name_prefix), timeout=timeout, interval=0.5,
                 what="the SGE queue to drain",
                 details=lambda: run(["qstat", "-u", "*"], env=self.env, check=False).stdout)

    def cancel_all(self, name_prefix: str | None = None, wait: bool = True,
                   timeout: float = 60) -> None:
        ids = sorted({j.job_id for j in self.jobs(name_prefix)})
        if ids:
            run(["qdel", "-f", *ids], env=self.env, check=False)
        if wait:
            self.wait_empty(timeout=timeout, name_prefix=name_prefix)

    def restart(self, execd: bool = False, timeout: float = 60) -> None:
        """Restart ``sge_qmaster`` (and ``sge_execd`` too when ``execd``); jobs are kept.

        qmaster spools jobs in Berkeley DB and reloads them. Restarting execd as well also keeps
        running jobs (their shepherds go on), but execd is then no longer their parent: it
        notices their end only in a scan every 60 s (OLD_JOB_INTERVAL, hard-coded), so a job
        that ends, or is qdel'ed, after such a restart leaves qstat up to a minute late.
        """
        with file_lock("sge"):
            # SIGTERM = controlled shutdown; qmaster takes ~9 s of it (its threads' timeouts).
            kill_and_wait([*(_execd_pids() if execd else []), *_qmaster_pids()], timeout=30)
            _start_qmaster(timeout)
            if execd or not _execd_pids():
                _start_execd(self.hostname, timeout)
            else:
                _wait_queue(self.hostname, timeout)


def parse_qstat_xml(text: str) -> list[SgeJob]:
    root = ET.fromstring(text)
    jobs = []
    for el in root.iter("job_list"):
        jobs.append(SgeJob(
            job_id=el.findtext("JB_job_number", ""), name=el.findtext("JB_name", ""),
            state=el.findtext("state", ""), queue=el.findtext("queue_name", "") or "",
            tasks=el.findtext("tasks", "") or "", owner=el.findtext("JB_owner", "")))
    return jobs


def parse_qacct(text: str) -> list[dict[str, str]]:
    """``qacct -j`` output → one dict per record (records are separated by ``====`` lines)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("====="):
            current = {}
            records.append(current)
            continue
        if current is None or not line.strip():
            continue
        key, _, value = line.partition(" ")
        current[key] = value.strip()
    return records


def parse_conf(text: str) -> dict[str, str]:
    """``qconf -s*`` listing → dict (handles ``\\``-continued lines)."""
    out: dict[str, str] = {}
    key = None
    for raw in text.splitlines():
        if raw.startswith("#") or not raw.strip():
            continue
        if raw[0].isspace() and key is not None:
            out[key] = (out[key] + " " + raw.strip()).strip()
        else:
            key, _, value = raw.partition(" ")
            out[key] = value.strip()
        if key is not None and out[key].endswith("\\"):
            out[key] = out[key][:-1].strip()
    return out


def _qconf_from_file(option: str, values: dict[str, str], name: str) -> None:
    """``qconf <option> FILE`` with ``values`` written to a temporary file called ``name``.

    Never the interactive forms (``-mconf``, ``-aq``, ``-ae`` …): those start $EDITOR (vi),
    which waits forever without a terminal.
    """
    with tempfile.TemporaryDirectory(prefix="akoflow-sge-") as d:
        path = Path(d) / name
        path.write_text("".join(f"{k} {v}\n" for k, v in values.items()))
        _sge(["qconf", option, str(path)])


# ---------------------------------------------------------------------------------------------
# daemons


def _qmaster_pids() -> list[int]:
    found = set(pids_named("sge_qmaster"))
    pid = live_pid(QMASTER_PIDFILE, "sge_qmaster")
    if pid is not None:
        found.add(pid)
    return sorted(found)


def _execd_pids() -> list[int]:
    return pids_named("sge_execd")


def qmaster_up() -> bool:
    return _sge(["qconf", "-sh"], check=False, timeout=20).returncode == 0


def _start_qmaster(timeout: float) -> None:
    Path("/var/run/gridengine").mkdir(exist_ok=True)
    start_daemon([str(QMASTER)], name="sge_qmaster", env=sge_env())
    wait_for(qmaster_up, timeout=timeout, interval=0.2, what="sge_qmaster to answer",
             details=lambda: tail(QMASTER_MESSAGES))


def queue_instance_state(hostname: str) -> str | None:
    """States of ``all.q@host`` (``""`` when fine, e.g. ``"u"`` unheard), None if absent."""
    proc = _sge(["qstat", "-f", "-xml", "-q", QUEUE], check=False)
    if proc.returncode != 0:
        return None
    try:
        root = ET.fromstring(proc.stdout)
    except ET.ParseError:
        return None
    for ql in root.iter("Queue-List"):
        if ql.findtext("name", "") == f"{QUEUE}@{hostname}":
            return ql.findtext("state", "") or ""
    return None


def _start_execd(hostname: str, timeout: float) -> None:
    start_daemon([str(EXECD)], name="sge_execd", env=sge_env())
    _wait_queue(hostname, timeout)


def _wait_queue(hostname: str, timeout: float) -> None:
    cleared = False

    def ready() -> bool:
        nonlocal cleared
        state = queue_instance_state(hostname)
        if state is None:
            return False
        if "E" in state and not cleared:
            _sge(["qmod", "-c", f"{QUEUE}@{hostname}"], check=False)
            cleared = True
        if "d" in state:
            _sge(["qmod", "-e", f"{QUEUE}@{hostname}"], check=False)
        return not any(c in state for c in "uEdaosSC")

    wait_for(ready, timeout=timeout, interval=0.25, what=f"queue {QUEUE}@{hostname} to be usable",
             details=lambda: (f"state: {queue_instance_state(hostname)!r}\n"
                              f"{tail(QMASTER_MESSAGES, 15)}\n"
                              f"{_execd_messages()}"))


def _execd_messages() -> str:
    # execd names its spool directory after the name it resolves itself to ("localhost" here).
    logs = sorted(EXECD_SPOOL.glob("*/messages"))
    return "\n".join(tail(p, 15) for p in logs) or f"[no messages under {EXECD_SPOOL}]"


# ---------------------------------------------------------------------------------------------
# install and configure


def _debconf(hostname: str) -> str:
    lines = []
    for pkg in ("gridengine-common", "gridengine-client", "gridengine-master", "gridengine-exec"):
        lines += [f"{pkg} shared/gridenginemaster string {hostname}",
                  f"{pkg} shared/gridenginecell string {SGE_CELL}",
                  f"{pkg} shared/gridengineconfig boolean true"]
    # bsd-mailx pulls in an MTA; do not let it ask anything either.
    lines.append("exim4-config exim4/dc_eximconfig_configtype select local delivery only; "
                 "not on a network")
    return "\n".join(lines) + "\n"


def _install(hostname: str) -> None:
    if missing_commands(COMMANDS):
        apt_install(PACKAGES, debconf=_debconf(hostname))
        still = missing_commands(COMMANDS)
        if still:
            raise InfraError(f"installed {PACKAGES} but still missing: {still}")
    if not (COMMON / "bootstrap").exists() or not (SPOOL / "spooldb" / "sge").exists():
        # The packages were installed without shared/gridengineconfig=true: create the cell
        # the way gridengine-master's postinst does.
        for d in (QMASTER_SPOOL, QMASTER_SPOOL / "job_scripts", SPOOL / "spooldb", COMMON):
            d.mkdir(parents=True, exist_ok=True)
            _chown_admin(d)
        if not (COMMON / "bootstrap").exists():
            run(["install", "-m0644", "-o", ADMIN_USER, "-g", ADMIN_USER,
                 "/usr/share/gridengine/default-bootstrap", str(COMMON / "bootstrap")])
        run(["runuser", "-u", ADMIN_USER, "--", "/usr/share/gridengine/scripts/init_cluster",
             str(SGE_ROOT), SGE_CELL, str(SPOOL / "spooldb"), ADMIN_USER], timeout=120)


def _chown_admin(path: Path) -> None:
    pw = pwd.getpwnam(ADMIN_USER)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def _write_cell_files(hostname: str) -> bool:
    """act_qmaster and host_aliases; True when one of them changed."""
    changed = write_if_changed(COMMON / "act_qmaster", f"{hostname}\n")
    # This host's address reverse-resolves to "localhost" (/etc/hosts: 127.0.0.1 localhost …),
    # so qmaster would see execd and clients as "localhost", not as the configured host, and
    # refuse them. host_aliases makes "localhost" another name of this host.
    if hostname != "localhost":
        changed |= write_if_changed(COMMON / "host_aliases", f"{hostname} localhost\n")
    for name in ("act_qmaster", "host_aliases"):
        if (COMMON / name).exists():
            _chown_admin(COMMON / name)
    return changed


def _configure(hostname: str) -> None:
    conf = parse_conf(_sge(["qconf", "-sconf", "global"]).stdout)
    if any(conf.get(k) != v for k, v in GLOBAL_SETTINGS.items()):
        # -Mconf takes files named after the configuration they replace ("global").
        conf.update(GLOBAL_SETTINGS)
        _qconf_from_file("-Mconf", conf, "global")

    sched = parse_conf(_sge(["qconf", "-ssconf"]).stdout)
    if any(sched.get(k) != v for k, v in SCHED_SETTINGS.items()):
        sched.update(SCHED_SETTINGS)
        _qconf_from_file("-Msconf", sched, "sched")

    if hostname not in _sge(["qconf", "-sh"]).stdout.split():
        _sge(["qconf", "-ah", hostname])
    if hostname not in _sge(["qconf", "-ss"], check=False).stdout.split():
        _sge(["qconf", "-as", hostname])
    if hostname not in _sge(["qconf", "-sel"], check=False).stdout.split():
        exec_host = {"hostname": hostname, "load_scaling": "NONE", "complex_values": "NONE",
                     "user_lists": "NONE", "xuser_lists": "NONE", "projects": "NONE",
                     "xprojects": "NONE", "usage_scaling": "NONE", "report_variables": "NONE"}
        _qconf_from_file("-Ae", exec_host, "exechost")

    want = queue_conf(hostname)
    current = _sge(["qconf", "-sq", QUEUE], check=False)
    if current.returncode != 0:
        _qconf_from_file("-Aq", want, QUEUE)
    else:
        have = parse_conf(current.stdout)
        if any(have.get(k) != v for k, v in want.items()):
            _qconf_from_file("-Mq", want, QUEUE)


def sge_version() -> str:
    out = _sge(["qstat", "-help"], check=False).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def ensure_sge(timeout: float = 90) -> SgeCluster:
    """Install, configure and start the SGE cell as needed; return a handle on it.

    Must run as root. Raises :class:`InfraError` with the daemons' messages when it cannot.
    """
    if os.geteuid() != 0:
        raise InfraError("ensure_sge() must run as root (it installs packages and starts "
                         "sge_qmaster/sge_execd)")
    t0 = time.monotonic()
    hostname = short_hostname()
    try:
        socket.gethostbyname(hostname)
    except OSError as exc:
        raise InfraError(f"SGE needs this host's name to resolve: {hostname!r} does not "
                         f"({exc}); add it to /etc/hosts") from exc
    with file_lock("sge"):
        _install(hostname)
        if _write_cell_files(hostname):
            # Names are resolved when the daemons start: restart them on any change.
            kill_and_wait([*_execd_pids(), *_qmaster_pids()], timeout=30)
        if not _qmaster_pids():
            _start_qmaster(timeout)
        elif not qmaster_up():
            wait_for(qmaster_up, timeout=timeout, what="sge_qmaster to answer",
                     details=lambda: tail(QMASTER_MESSAGES))
        _configure(hostname)
        if not _execd_pids():
            _start_execd(hostname, timeout)
        else:
            _wait_queue(hostname, timeout)
        version = sge_version()
    return SgeCluster(hostname=hostname, version=version, startup_seconds=time.monotonic() - t0)


def main() -> None:
    t0 = time.monotonic()
    cluster = ensure_sge()
    print(f"{cluster.version} on {cluster.hostname}: queue {cluster.queue} with {cluster.slots} "
          f"slots (ready in {time.monotonic() - t0:.2f}s)")
    print(run(["qstat", "-f"], env=cluster.env).stdout, end="")


if __name__ == "__main__":
    main()
