"""Compile a Python-API workflow in a child process, never inside the service.

`load_python` runs the user's module; in the service's own process a submitted file could
hang it, exhaust its memory or change its state. The child (`python -m
akoflow.server.pycompile FILE`, parameters as JSON on stdin) prints the compiled spec as
AkôFlow YAML, which the service then validates like any YAML submission; a problem comes
back as the spec's own issues. Time and memory are capped.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from akoflow.spec.errors import SpecError, SpecIssue

TIMEOUT = 30.0
MEMORY_CAP = 1 << 30


def compile_python(path: Path, params: dict[str, str], timeout: float = TIMEOUT) -> str:
    """The AkôFlow YAML of the Python workflow at `path`; SpecError when it does not compile."""
    argv = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []),
            "-m", "akoflow.server.pycompile", str(path)]
    try:
        proc = subprocess.run(argv, input=json.dumps(params), capture_output=True, text=True,
                              timeout=timeout, cwd=path.parent)
    except subprocess.TimeoutExpired:
        raise SpecError([SpecIssue(path.name, None, "", f"compiling the Python workflow took "
                                   f"over {timeout:g} s")]) from None
    if proc.returncode == 0:
        return proc.stdout
    try:
        issues = [SpecIssue(path.name, i.get("line"), i.get("path", ""), i["message"])
                  for i in json.loads(proc.stdout)]
    except (ValueError, KeyError, TypeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        issues = [SpecIssue(path.name, None, "", f"compiling failed: {tail}")]
    raise SpecError(issues)


def _main(path: str) -> int:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    from akoflow.spec import dump_yaml
    from akoflow.spec.python_api import load_python

    params = json.loads(sys.stdin.read() or "{}")
    try:
        spec = load_python(path, {str(k): str(v) for k, v in params.items()})
    except SpecError as exc:
        print(json.dumps([{"line": i.line, "path": i.path, "message": i.message}
                          for i in exc.issues]))
        return 2
    sys.stdout.write(dump_yaml(spec))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
