"""A long-lived bash that starts local tasks, so the dispatcher never waits for an exec.

Starting a task with `posix_spawn` blocks the calling process until the child has exec'd
bash (about a millisecond per task on a busy 2-core machine): the dispatcher, which also has
to record every start and end, spent a third of a 1,000-task run there. The launcher is one
bash process per local executor, in a session of its own (no controlling terminal, like
the `setsid` tasks had): the dispatcher writes an attempt directory on a line to its stdin
and the launcher answers `PID DIR` once the task runs in its own process group (killpg
reaches all of it), stdin /dev/null, stdout/stderr in the attempt directory.

How it starts the task is make's trick: most task scripts cannot tell a fresh bash from a
subshell forked from a running one, and forking skips exec'ing bash, its dynamic linking
and its locale, which is most of what a short task costs. So the launcher forks a subshell
that sources task.sh (`$0` set as `bash task.sh` would), unless the script reads the shell's
identity (`$$`, which a subshell shares with the launcher, `$PPID`, ...), returns from the
top level, or runs code we cannot see (`source`, `.`, `eval`): then, marked `+DIR`, it
starts a fresh `bash task.sh` (`protocol.needs_fresh_shell`). A task recovered after a crash
always gets a fresh bash.

The launcher is the tasks' parent, so it also knows how each one ended. task.sh records its
exit code itself (EXIT trap); for a task whose script replaced that trap or exec'd another
program, the dispatcher asks `?PID` and the launcher answers `S PID STATUS` (bash `wait`).

If the dispatcher dies, the launcher reads end-of-file and exits; tasks it already started
run on and are adopted by the next dispatcher through their pid files, as before.
"""

from __future__ import annotations

import os
import select
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager

from akoflow.worker import tracing
from akoflow.worker.monitor import DEFAULT_SIGNALS

BASH = shutil.which("bash") or "/bin/bash"

# `set -m`: each background job gets its own process group. `jobs` every 256 tasks lets
# bash forget ended jobs (their exit statuses stay available to `wait PID`), so a long run
# does not grow the launcher. A task whose files cannot be opened is reported all the same
# (its pid, then its status 1 on request). Output files are opened for appending: a second
# start of a running attempt (refused by the pid claim) must not truncate the first's output.
SCRIPT = r"""# akoflow-launcher (pid_owner_matches and the tests look for this in its command line)
set -m
exec 9</dev/null  # every task's stdin, opened once (a dup is no file operation to trace)
_akoflow_n=0
while IFS= read -r _akoflow_line; do
  case $_akoflow_line in
  '?'*)
    wait "${_akoflow_line#?}" 2>&-
    printf 'S %s %s\n' "${_akoflow_line#?}" "$?"
    continue ;;
  '+'*)
    _akoflow_line=${_akoflow_line#+}
    "$0" "$_akoflow_line/task.sh" <&9 9<&- >>"$_akoflow_line/stdout" \
      2>>"$_akoflow_line/stderr" & ;;
  *)
    ( set +m
      exec <&9 9<&- >>"$_akoflow_line/stdout" 2>>"$_akoflow_line/stderr" || exit 1
      BASH_ARGV0="$_akoflow_line/task.sh"
      . "$_akoflow_line/task.sh"
    ) & ;;
  esac
  printf '%s %s\n' "$!" "$_akoflow_line"
  (( ++_akoflow_n % 256 )) || jobs >&-
done
# A pilot's agent (executors/pilot_agent.py) asks for its tasks to end with it: if it dies
# without stopping them, they would outlive their allocation unseen.
[ -z "${AKOFLOW_LAUNCHER_REAP-}" ] || for _akoflow_p in $(jobs -p); do
  kill -KILL -- "-$_akoflow_p" 2>/dev/null
done
"""


class Launcher:
    """The dispatcher's end of the launcher: send directories, collect `(pid, dir)` pairs."""

    def __init__(self, env: dict[str, str], trace_dir: str | None = None,
                 cpus: frozenset[int] | None = None) -> None:
        self.env = env
        # Held to these CPUs with everything it starts (its tracer, its tasks): see
        # local_lanes.py. None: wherever the kernel puts them.
        self.cpus = cpus
        # With a trace directory, the launcher bash runs under `strace -DD -f`: one tracer
        # follows every task it starts (bash stays our child; see worker/tracing.py). Each
        # launcher started writes a log of its own (a restarted one must not truncate the
        # log its predecessor's tracer still writes for tasks that run on).
        self.trace_dir = trace_dir
        self.logs: list[str] = []
        self.pid = 0
        self._to = -1  # write end of the launcher's stdin
        self.fd = -1  # read end of its stdout: poll it for new pids
        self._buf = b""
        self._heard: list[tuple[int, str]] = []  # answers not yet handed out
        self._status: dict[int, int] = {}  # answers to `?PID`
        self._old: list[int] = []  # launchers that exited or were let go, to reap
        self.lost = False  # it exited: what was sent and never answered must be sent again
        self.pidfd = -1  # readable once the launcher has exited
        self._pending: list[bytes] = []  # requests not written yet (see `flush`)
        self._batching = False

    @staticmethod
    def supported() -> bool:
        """pidfd_open works here (Linux 5.3+): needed to learn when a launched task ends."""
        try:
            os.close(os.pidfd_open(os.getpid()))
        except (AttributeError, OSError):
            return False
        return True

    @staticmethod
    def usable(directory: str) -> bool:
        """A path that fits the line protocol (others use plain spawn)."""
        raw = os.fsencode(directory)
        return b"\n" not in raw and raw[:1] not in (b"?", b"+") and len(raw) < 4000

    def _start(self) -> None:
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        actions = [
            (os.POSIX_SPAWN_DUP2, cmd_r, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),  # bash's job notices
        ]
        try:
            # argv[0] is bash itself: the script starts tasks with "$0".
            argv = [BASH, "-c", SCRIPT, BASH]
            if self.trace_dir is not None:
                log = os.path.join(self.trace_dir, f"launcher-{os.getpid()}-{time.time_ns()}"
                                   ".strace")
                self.logs.append(log)
                argv = [*tracing.argv(log), *argv]
            self.pid = self._spawn(argv, actions)
        finally:
            os.close(cmd_r)
            os.close(out_w)
        self._to, self.fd = cmd_w, out_r
        os.set_blocking(self.fd, False)
        os.set_blocking(self._to, False)
        self._buf = b""
        # Its death is seen on this pidfd, not only as the end of its output: a tracer
        # (strace -DD) forked before bash started holds a copy of that pipe, so no
        # end-of-file comes while the tracer lives on (tracing tasks, or waiting).
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError:
            self.pidfd = -1

    def _spawn(self, argv: list[str], actions: list[tuple[str | int, ...]]) -> int:
        """posix_spawn, with this thread's CPU affinity (which the child inherits) set to
        the launcher's CPUs for the moment it takes."""
        before = os.sched_getaffinity(0) if self.cpus else None
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)
        try:
            return os.posix_spawn(argv[0], argv, self.env, file_actions=actions,
                                  setsid=True, setsigdef=DEFAULT_SIGNALS)
        finally:
            if before is not None:
                os.sched_setaffinity(0, before)

    def send(self, directory: str, fresh: bool = True) -> None:
        """Ask for one task to be started, in a fresh bash or (`fresh=False`, for a script
        that cannot tell the difference) a subshell forked from the launcher. Requests are
        written at the next `flush` (one pipe write, one wake-up of the launcher, for all
        the tasks a dispatcher wake-up starts) inside `batched()`, at once otherwise. Raises
        BrokenPipeError if the launcher has gone (then `lost` is set: the caller sends
        again whatever it has not heard back about)."""
        self._pending.append((b"+" if fresh else b"") + os.fsencode(directory) + b"\n")
        if not self._batching or len(self._pending) >= 64:
            self.flush()

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Collect the requests sent inside, written in one go at the end."""
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
        self.flush()

    def flush(self) -> None:
        """Write the requests `send` collected."""
        if self._pending:
            lines, self._pending = b"".join(self._pending), []
            self._write(lines)

    def _write(self, line: bytes) -> None:
        if self._to < 0:
            self._start()
        while True:
            try:
                os.write(self._to, line)
                return
            except BlockingIOError:
                # Its input is full because its output is: read answers, then try again.
                self._read()
            except BrokenPipeError:
                self._read()
                self.lost = True
                self.close()
            if self.lost:
                raise BrokenPipeError("the task launcher exited")
            select.select([self.fd], [self._to], [], 0.05)

    def receive(self) -> list[tuple[int, str]]:
        """The `(pid, dir)` of tasks started since the last call (check `lost` after)."""
        self._read()
        heard, self._heard = self._heard, []
        return heard

    def status(self, pid: int, patience: float = 2.0) -> int | None:
        """How task `pid` ended, as its parent saw it (128+n if killed by signal n); None
        if the launcher cannot say (it is gone, or the pid was not its child)."""
        if self.fd < 0:
            return None
        try:
            self.flush()
            self._write(f"?{pid}\n".encode())
        except BrokenPipeError:
            return None
        end = time.monotonic() + patience
        while pid not in self._status and not self.lost and time.monotonic() < end:
            select.select([self.fd], [], [], 0.05)
            self._read()
        code = self._status.pop(pid, None)
        return None if code == 127 else code  # 127: not a child of this launcher

    def _read(self) -> None:
        if self.fd < 0:
            return
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                self.lost = True
                break
            chunks.append(chunk)
        if chunks:
            lines = (self._buf + b"".join(chunks)).split(b"\n")
            self._buf = lines.pop()
            for line in lines:
                self._parse(line)
        if not self.lost and self.pidfd >= 0 and select.select([self.pidfd], [], [], 0)[0]:
            self.lost = True  # it exited (its output pipe may still be held open)
        if self.lost:
            self.close()

    def _parse(self, line: bytes) -> None:
        head, _, rest = line.partition(b" ")
        try:
            if head == b"S":
                pid, _, code = rest.partition(b" ")
                self._status[int(pid)] = int(code)
            else:
                self._heard.append((int(head), os.fsdecode(rest)))
        except ValueError:
            pass  # not a line of ours: nothing to act on

    def close(self) -> None:
        """Close both pipes (the launcher exits at end of input) and reap it when it has."""
        if self._pending and self._to >= 0:
            try:
                self.flush()
            except BrokenPipeError:
                pass
        for fd in (self._to, self.fd, self.pidfd):
            if fd >= 0:
                os.close(fd)
        self._to = self.fd = self.pidfd = -1
        if self.pid:
            self._old.append(self.pid)
            self.pid = 0
        end = time.monotonic() + 0.2
        while self._old:
            self._old = [p for p in self._old if not _reaped(p)]
            if not self._old or time.monotonic() >= end:
                break
            time.sleep(0.005)


def _reaped(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True
