"""Remote use over SSH, on loopback, against the real sshd of tests/infra/sshd.py (as root).

A laptop side (temporary HOME, its own AKOFLOW_HOME) drives the cluster user `akocluster`
through both transports. Printed, each beside its local baseline measured in the same run:
* `status SITE:ID` wall time, median of --repeat fresh processes: paramiko and OpenSSH on a
  fresh connection, OpenSSH through a master (`akoflow remote login`); baseline: `status ID`
  of a local run (targets: fresh <= 1.0 s, master <= 0.3 s);
* a 1,000-file input directory submitted twice: bytes of file content sent each time (target:
  the second sends none), and the second submit's wall time beside a local `submit`;
* `pull SITE:ID --no-files` of the 619-activity Montage run (`import wfformat --noop`) run on
  the cluster: wall time (target <= 5 s), beside a local `prov` of the pulled copy.
Usage (root): python benchmarks/bench_remote.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import trace  # noqa: E402

from tests.infra.sshd import ensure_sshd  # noqa: E402

REMOTE_HOME = ".akoflow-bench"


class Laptop:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "HOME": str(root / "home"), "AKOFLOW_HOME": str(root / "ak"),
                    "AKOFLOW_SITES": str(root / "sites")}
        self.env.pop("SSH_AUTH_SOCK", None)

    def run(self, *args: str) -> tuple[float, str]:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "akoflow", *args], env=self.env,
                              capture_output=True, text=True, cwd=self.root,
                              stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"akoflow {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return elapsed, proc.stdout

    def wait(self, ref: str, timeout: float = 600) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = json.loads(self.run("status", ref, "--json")[1])["status"]
            if status in ("FINISHED", "FAILED", "CANCELLED"):
                if status != "FINISHED":
                    raise SystemExit(f"{ref} ended {status}")
                return
            time.sleep(1)
        raise SystemExit(f"{ref} did not end within {timeout} s")


def rounds(lap: Laptop, n: int, commands: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """Median wall time of each command over n rounds, one of each per round."""
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(n):
        for key, argv in commands.items():
            times[key].append(lap.run(*argv)[0])
    return {k: statistics.median(v) for k, v in times.items()}


def figure(name: str, value: float, unit: str = "s", base: float | None = None) -> None:
    ratio = (f"  ({value / base:.2f}x the local baseline {base:.3f} {unit}; "
             f"+{value - base:.3f} {unit})" if base else "")
    print(f"{name} {value:.3f} {unit}{ratio}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=11)
    args = ap.parse_args()
    cluster = ensure_sshd()
    root = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    lap = Laptop(root)
    (root / "home" / ".ssh").mkdir(parents=True)
    (root / "home" / ".ssh" / "known_hosts").write_text(cluster.known_hosts())
    (root / "sites").mkdir()
    for name, transport in (("pk", "paramiko"), ("os", "openssh")):
        (root / "sites" / f"{name}.yaml").write_text(
            f"name: {name}\nextends: local\nssh:\n  host: {cluster.host}\n"
            f"  port: {cluster.target.port}\n  user: {cluster.user}\n"
            f"  identity_file: {cluster.client_key}\n"
            f"  known_hosts: {root / 'home' / '.ssh' / 'known_hosts'}\n"
            f"  remote_home: ~/{REMOTE_HOME}\n  transport: {transport}\n")
    try:
        took, _ = lap.run("remote", "setup", "pk")
        figure("setup_s", took)
        diamond = str(ROOT / "examples" / "diamond.yaml")
        ref = lap.run("submit", diamond, "--site", "pk")[1].strip()
        lap.wait(ref)
        local_id = lap.run("submit", diamond)[1].strip()
        lap.wait(local_id)
        os_ref = "os:" + ref.split(":")[1]
        # Rounds interleave the commands, so a busy spell on this shared machine weighs on
        # each of them alike; the master is opened only for the last phase (once open, every
        # openssh command to that host uses it).
        fresh = rounds(lap, args.repeat, {"local": ("status", local_id),
                                          "paramiko": ("status", ref),
                                          "openssh": ("status", os_ref)})
        figure("status_local_s", fresh["local"])
        figure("status_paramiko_fresh_s", fresh["paramiko"], base=fresh["local"])
        figure("status_openssh_fresh_s", fresh["openssh"], base=fresh["local"])
        lap.run("remote", "login", "os")
        try:
            warm = rounds(lap, args.repeat, {"local": ("status", local_id),
                                             "master": ("status", os_ref)})
        finally:
            lap.run("remote", "logout", "os")
        figure("status_local_again_s", warm["local"])
        figure("status_openssh_master_s", warm["master"], base=warm["local"])
        _uploads(lap, root)
        _montage(lap, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _uploads(lap: Laptop, root: Path) -> None:
    data = root / "inputs"
    for i in range(1000):
        d = data / f"d{i // 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}.dat").write_bytes(os.urandom(1024 + i))
    spec = root / "thousand.yaml"
    spec.write_text("name: thousand\nspec:\n  inputs: [inputs]\n  activities:\n"
                    "    - name: count\n      run: find inputs -type f | wc -l > count.txt\n")
    for label in ("first", "second"):
        took, out = lap.run("submit", str(spec), "--site", "pk", "--json")
        sent = json.loads(out)
        figure(f"upload_1000_files_{label}_bytes", sent["uploaded_bytes"], "bytes")
        if label == "second":
            local, _ = lap.run("submit", str(spec))
            figure("upload_1000_files_second_submit_s", took, base=local)
        lap.wait(sent["ref"])


def _montage(lap: Laptop, root: Path) -> None:
    spec = root / "montage.yaml"
    lap.run("import", "wfformat", str(trace("montage-chameleon-2mass-025d-001.json")),
            "--noop", "-o", str(spec))
    ref = lap.run("submit", str(spec), "--site", "pk")[1].strip()
    lap.wait(ref, timeout=1200)
    took, out = lap.run("pull", ref, "--no-files", "--json")
    pulled = json.loads(out)
    local, _ = lap.run("prov", str(pulled["id"]), "-o", str(root / "montage.prov.json"))
    figure("pull_montage_provenance_s", took, base=local)
    print(f"# pulled {pulled['rows']} rows", flush=True)


if __name__ == "__main__":
    main()
