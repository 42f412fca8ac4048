"""How many real workflow files `akoflow validate` accepts: a held-out compatibility check.

    python benchmarks/compat_workflow_files.py [--git REPO ...] [--history] [PATH ...]

PATHs are files or folders (searched for *.yml / *.yaml); each `--git REPO` adds every YAML
blob of a git repository (bare or not) at the tip of each branch, or in any commit with
`--history`, that looks like a workflow (a line starting `activities:`, `jobs:` or
`jobDependencies:`), de-duplicated by content. Point it at AkôFlow's own repositories (the
engine, the umbrella repository with its branches) to measure what real AkôFlow files do; they
are deliberately not in the test suite, so the loader is never tuned to them.

Prints the totals, then one line per refused file with its first problem, then the warnings
by kind.
"""

from __future__ import annotations

import argparse
import collections
import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from akoflow.spec import SpecError, SpecIssue, load_workflow

WORKFLOWISH = re.compile(rb"^\s*(activities|jobs|jobDependencies):", re.MULTILINE)


def _git(repo: str, *args: str) -> bytes:
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, check=True).stdout


def git_files(repo: str, history: bool, into: Path) -> list[Path]:
    """Workflow-looking YAML blobs of `repo`, written under `into` (name: path + blob id)."""
    commits = _git(repo, "rev-list", "--all") if history else _git(
        repo, "for-each-ref", "--format=%(objectname)", "refs/heads", "refs/remotes")
    blobs: dict[str, str] = {}
    for commit in commits.decode().split():
        for line in _git(repo, "ls-tree", "-r", commit).decode().splitlines():
            meta, _, path = line.partition("\t")
            kind, blob = meta.split()[1:3]
            if kind == "blob" and path.endswith((".yml", ".yaml")) and ".github/" not in path:
                blobs.setdefault(blob, path)
    out = []
    for blob, path in sorted(blobs.items(), key=lambda kv: kv[1]):
        try:
            data = _git(repo, "cat-file", "-p", blob)
        except subprocess.CalledProcessError:  # a blob the clone does not have (LFS, partial)
            continue
        if WORKFLOWISH.search(data):
            target = into / f"{path.replace('/', '_')}__{blob[:8]}.yaml"
            if not target.exists():
                target.write_bytes(data)
                out.append(target)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--git", action="append", default=[], help="a git repository to scan")
    ap.add_argument("--history", action="store_true", help="every commit, not branch tips")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        files = [p for root in args.paths for p in (
            sorted(root.rglob("*.y*ml")) if root.is_dir() else [root])]
        for repo in args.git:  # a file both repositories hold is counted once
            files += [p for p in git_files(repo, args.history, Path(tmp)) if p not in files]
        refused: list[tuple[Path, str]] = []
        warned: collections.Counter[str] = collections.Counter()
        pegasus = 0
        for path in files:
            warnings: list[SpecIssue] = []
            try:
                spec = load_workflow(path, warnings=warnings)
            except SpecError as e:
                refused.append((path, f"{e.issues[0].path}: {e.issues[0].message}"))
                continue
            pegasus += spec.raw.lstrip().startswith(("pegasus", "x-pegasus"))
            warned.update(re.sub(r"\[\d+\]", "[]", f"{w.path}: {w.message}"[:100])
                          for w in warnings)
        ok = len(files) - len(refused)
        print(f"files {len(files)}")
        print(f"valid {ok} ({pegasus} of them Pegasus)")
        print(f"refused {len(refused)}")
        for path, why in refused:
            print(f"  refused {path.name}: {why[:160]}")
        for what, n in warned.most_common():
            print(f"  warning x{n}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
