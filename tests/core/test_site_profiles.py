"""Site profiles are checked like specs, say where each value came from, and their
`sample_interval` (like the spec's `sampleInterval`) reaches the sampler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from akoflow.site_keys import BLOCKS, CORE_KEYS
from akoflow.sites import list_sites
from tests.conftest import ROOT, ak

BAD = """\
name: bad
extends: local
description: a profile with typos
sample_intervall: 5
host: user@login.example.org
ssh:
  hots: login.example.org
  user: me
packing: {cpus: 4, wallclock: 1h}
poll_interval: fast
"""


def _sites(tmp_path: Path, **files: str) -> dict[str, str]:
    d = tmp_path / "sites"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / f"{name}.yaml").write_text(text)
    return {"AKOFLOW_SITES": str(d)}


def test_every_shipped_profile_passes_its_own_check() -> None:
    names = {p["name"] for p in list_sites()}
    assert {"local", "slurm", "sdumont", "sge", "pbs", "lsf", "flux", "docker",
            "singularity", "kubernetes"} <= names


def test_unknown_keys_name_file_line_and_a_guess(akhome: Path, tmp_path: Path) -> None:
    env = _sites(tmp_path, bad=BAD)
    proc = ak("sites", "show", "bad", home=akhome, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    path = str(tmp_path / "sites" / "bad.yaml")
    assert lines == [
        f"error: {path}:4: sample_intervall: unknown key 'sample_intervall' "
        "(did you mean 'sample_interval'?)",
        f"error: {path}:5: host: unknown key 'host' (a key of `ssh:`?)",
        f"error: {path}:7: ssh.hots: unknown key 'hots' (did you mean 'host'?)",
        f"error: {path}:9: packing.wallclock: unknown key 'wallclock'",
        f"error: {path}:10: poll_interval: must be a positive number of seconds, not 'fast'",
    ]


def test_a_run_on_a_bad_site_stops_before_anything_runs(akhome: Path, tmp_path: Path) -> None:
    env = _sites(tmp_path, bad=BAD)
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: w\nspec:\n  runtime: bad\n  activities:\n"
                  "    - {name: a, run: touch ran}\n")
    proc = ak("run", str(wf), home=akhome, env=env)
    assert proc.returncode != 0 and "sample_intervall" in proc.stderr
    assert not list(akhome.glob("runs/*/work/ran"))


def test_blocks_and_executor_keys_are_known(akhome: Path, tmp_path: Path) -> None:
    good = ("name: good\nextends: slurm\nssh: {host: login, user: me, port: 22, jump: gw}\n"
            "packing: {cpus: 8, nodes: 1, memory: 16Gi, time: 1h, max_allocations: 2,"
            " idle_timeout: 60}\narray_throttle: 5\nlicense: MIT\n")
    env = _sites(tmp_path, good=good)
    proc = ak("sites", "show", "good", "--json", home=akhome, env=env)
    assert proc.returncode == 0, proc.stderr
    profile = json.loads(proc.stdout)
    assert profile["ssh"]["jump"] == "gw" and profile["packing"]["max_allocations"] == 2
    assert {"ssh", "packing"} <= set(BLOCKS) and "sample_interval" in CORE_KEYS


def test_show_marks_which_file_each_value_came_from(akhome: Path, tmp_path: Path) -> None:
    mine = "name: mine\nextends: slurm\ndefaults: {partition: debug}\nsample_interval: 5\n"
    env = _sites(tmp_path, mine=mine)
    out = ak("sites", "show", "mine", home=akhome, env=env, check=True).stdout
    rows = {line.split(":", 1)[0]: line.rsplit("# ", 1)[1] for line in out.splitlines()}
    mine_file = str(tmp_path / "sites" / "mine.yaml")
    slurm_file = str(ROOT / "site-configs" / "slurm.yaml")
    assert rows["defaults.partition"] == mine_file
    assert rows["sample_interval"] == mine_file
    assert rows["executor"] == slurm_file and rows["command_timeout"] == slurm_file
    assert "defaults" not in rows  # slurm.yaml's empty mapping is not a value of its own


def _samples(home: Path, env: dict[str, str], spec_line: str, tmp_path: Path) -> int:
    wf = tmp_path / f"wf{len(list(tmp_path.glob('wf*.yaml')))}.yaml"
    wf.write_text(f"name: sampled\nspec:\n  runtime: fast\n{spec_line}  activities:\n"
                  "    - {name: sleepy, run: sleep 3}\n")
    full = {k: v for k, v in os.environ.items() if k != "AKOFLOW_SAMPLE_INTERVAL"}
    full.update(env, AKOFLOW_HOME=str(home))
    subprocess.run([sys.executable, "-m", "akoflow", "run", str(wf)], env=full, check=True,
                   capture_output=True, timeout=120)
    out = subprocess.run([sys.executable, "-m", "akoflow", "metrics", "sampled", "--json"],
                         env=full, check=True, capture_output=True, text=True).stdout
    return int(json.loads(out)[0]["samples"])


def test_sample_interval_from_site_and_spec(tmp_path: Path) -> None:
    """No AKOFLOW_SAMPLE_INTERVAL: the site's interval applies, and the spec's wins."""
    home = tmp_path / "home"
    dense = _sites(tmp_path, fast="name: fast\nextends: local\nsample_interval: 0.2\n")
    assert _samples(home, dense, "", tmp_path) >= 8  # ~15 in 3 s
    sparse = _sites(tmp_path, fast="name: fast\nextends: local\nsample_interval: 15\n")
    assert _samples(home, sparse, "", tmp_path) <= 5  # 0, 0.5, 1, 2 s: then 15 s away
    assert _samples(home, sparse, "  sampleInterval: 200ms\n", tmp_path) >= 8


@pytest.mark.parametrize("bad", ["sampleInterval: 0", "sampleInterval: soon"])
def test_spec_sample_interval_is_checked(akhome: Path, tmp_path: Path, bad: str) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"name: w\nspec:\n  {bad}\n  activities:\n    - {{name: a, run: 'true'}}\n")
    proc = ak("validate", str(wf), home=akhome)
    assert proc.returncode == 2 and "spec.sampleInterval" in proc.stderr
