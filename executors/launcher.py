"""A long-lived bash that forks local tasks, so the dispatcher never waits for an exec.

Starting a task with `posix_spawn` blocks the calling process until the child has exec'd
bash (about a millisecond on a busy 2-core machine, per task), and exec'ing bash costs more
CPU than forking an already-running one. The launcher is one bash process per local
executor: the dispatcher writes an attempt directory on a line to its stdin; it forks a
subshell in its own process group that sources that attempt's task.sh (same protocol as
`bash task.sh`: pid claim, exit-code trap) with stdin from /dev/null and stdout/stderr into
the attempt directory, and answers `PID DIR` on its stdout.

If the dispatcher dies, the launcher reads end-of-file and exits; tasks it already started
run on and are adopted by the next dispatcher through their pid files, as before.
"""

from __future__ import annotations

import os
import select
import shutil

from akoflow.worker.monitor import DEFAULT_SIGNALS

BASH = shutil.which("bash") or "/bin/bash"

# `set -m` gives every background subshell its own process group (killpg reaches all its
# processes); inside it `set +m` keeps the task's own pipelines in that group. `jobs` every
# 256 tasks lets bash forget ended jobs, so a long run does not grow the launcher.
SCRIPT = r"""set -m
_akoflow_n=0
while IFS= read -r _akoflow_line; do
  ( set +m
    exec </dev/null >"$_akoflow_line/stdout" 2>"$_akoflow_line/stderr"
    BASH_ARGV0="$_akoflow_line/task.sh"
    . "$_akoflow_line/task.sh"
  ) &
  printf '%s %s\n' "$!" "$_akoflow_line"
  (( ++_akoflow_n % 256 )) || jobs >/dev/null
done
"""


class Launcher:
    """The dispatcher's end of the launcher: send directories, collect `(pid, dir)` pairs."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.pid = 0
        self._to = -1  # write end of the launcher's stdin
        self.fd = -1  # read end of its stdout: poll it for new pids
        self._buf = b""
        self._heard: list[tuple[int, str]] = []  # answers not yet handed out
        self.lost = False  # it exited: what was sent and never answered must be sent again

    @staticmethod
    def usable(directory: str) -> bool:
        """A path that fits the line protocol (others use plain spawn)."""
        return "\n" not in directory and len(directory.encode()) < 4000  # one atomic write

    def _start(self) -> None:
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        actions = [
            (os.POSIX_SPAWN_DUP2, cmd_r, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),  # bash's job notices
        ]
        try:
            self.pid = os.posix_spawn(BASH, [BASH, "-c", SCRIPT, "akoflow-launcher"],
                                      self.env, file_actions=actions,
                                      setsigdef=DEFAULT_SIGNALS)
        finally:
            os.close(cmd_r)
            os.close(out_w)
        self._to, self.fd = cmd_w, out_r
        os.set_blocking(self.fd, False)
        os.set_blocking(self._to, False)
        self._buf = b""
        self.lost = False

    def send(self, directory: str) -> None:
        """Ask for one task to be started; BrokenPipeError if the launcher has gone."""
        if self._to < 0:
            self._start()
        line = f"{directory}\n".encode()
        while True:
            try:
                os.write(self._to, line)
                return
            except BlockingIOError:
                # Its input is full because its output is: read answers, then try again.
                self._read()
                if self.lost:
                    raise BrokenPipeError("the task launcher exited") from None
                select.select([self.fd], [self._to], [], 0.05)

    def receive(self) -> list[tuple[int, str]]:
        """The `(pid, dir)` of tasks started since the last call (check `lost` after)."""
        self._read()
        heard, self._heard = self._heard, []
        return heard

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
                pid, _, directory = line.decode().partition(" ")
                self._heard.append((int(pid), directory))
        if self.lost:
            self.close()

    def close(self) -> None:
        """Close both pipes (the launcher exits at end of input) and reap it if it has."""
        for fd in (self._to, self.fd):
            if fd >= 0:
                os.close(fd)
        self._to = self.fd = -1
        if self.pid:
            try:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    self.pid = 0
            except ChildProcessError:
                self.pid = 0
