"""CPU and memory figures against what the tasks themselves know, with default settings.

`akoflow run` on the local site, no AKOFLOW_SAMPLE_INTERVAL (so 15 s sampling) and the
launcher starting tasks: a task that burns one core for 20 s must show that load in
`metrics`, in the report's chart and in its table (the page rendered by Chromium, the two
figures compared); a `python3` holding 200 MiB for 2 s must show its peak. Each busy task
writes its own CPU time over wall time, the ground truth the figures are judged by: on a
machine shared with other work a task may get less than a core, and the figure must show
what it got. With `launcher: false` (the dispatcher is the tasks' parent) the peak is the
kernel's own figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.chromium import open_page

BUSY = """python3 -c 'import time
t0, c0 = time.time(), time.process_time()
while time.time() - t0 < 20: pass
open("busy.truth", "w").write(str((time.process_time() - c0) / (time.time() - t0)))'
"""
MEM = "python3 -c 'import time; b = b\"x\" * (200 * 1024 * 1024); time.sleep(2)'\n"
WORKFLOW = f"""\
name: truth
spec:
  runtime: SITE
  activities:
    - name: busy
      run: |
{"".join("        " + line + chr(10) for line in BUSY.splitlines())}    - name: mem
      run: |
        {MEM}"""

PROBE = """(() => {
  const fig = a => document.querySelector(`#resources figure.mini[data-activity="${a}"]`);
  const row = a => document.querySelector(`#memory-table tr[data-activity="${a}"]`);
  const out = {};
  for (const a of ['busy', 'mem']) {
    const f = fig(a), r = row(a);
    const label = k => f.querySelector(`text.peak[data-kind="${k}"]`);
    const lines = Array.from(f.querySelectorAll('svg polyline.series, svg circle'));
    out[a] = {
      cpuLabel: label('cpu').textContent, cpuPeak: +label('cpu').dataset.peak,
      rssLabel: label('rss').textContent, rssPeak: +label('rss').dataset.peak,
      tableCpu: r.querySelector('td.peak-cpu').textContent,
      tableRss: +r.dataset.peakRss, rssFrom: r.dataset.rssSource,
      cpuTop: Math.min(...Array.from(f.querySelectorAll('svg polyline.series'))
        .slice(0, 1).flatMap(p => p.getAttribute('points').split(' ')
        .map(xy => +xy.split(',')[1]))),
      drawn: lines.length,
    };
  }
  return out;
})()"""


def _run(tmp_path: Path, site: str) -> tuple[dict[str, Any], Path, Path]:
    home = tmp_path / "home"
    wf = tmp_path / "truth.yaml"
    wf.write_text(WORKFLOW.replace("SITE", site))
    env = {k: v for k, v in os.environ.items() if k != "AKOFLOW_SAMPLE_INTERVAL"}
    env.update(AKOFLOW_HOME=str(home), AKOFLOW_SITES=str(tmp_path / "sites"))
    (tmp_path / "sites").mkdir(exist_ok=True)
    (tmp_path / "sites" / "parent.yaml").write_text(
        "name: parent\nextends: local\nlauncher: false\n")

    def ak(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "akoflow", *args], env=env, check=True,
                              capture_output=True, text=True, timeout=300).stdout

    ak("run", str(wf))
    metrics = {m["activity"]: m for m in json.loads(ak("metrics", "truth", "--json"))}
    report = tmp_path / "report.html"
    ak("report", "truth", "-o", str(report))
    work = Path(json.loads(ak("status", "truth", "--json"))["work_dir"])
    return metrics, report, work


def _expected_cpu(work: Path) -> float:
    """What the task got, in % of a core; the figure must show at least 80 % of a core when
    the task had a core, and must not hide less when the machine was shared."""
    truth = 100.0 * float((work / "busy.truth").read_text())
    return 80.0 if truth >= 85.0 else 0.9 * truth


def test_default_sampling_on_the_launcher_path(tmp_path: Path) -> None:
    metrics, report, work = _run(tmp_path, "local")
    busy, mem = metrics["busy"], metrics["mem"]
    assert busy["cpu_percent_peak"] >= _expected_cpu(work), busy
    assert busy["cpu_percent_mean"] >= 0.9 * _expected_cpu(work), busy
    assert mem["rss_peak"] >= 190_000_000, mem
    assert mem["rss_peak_source"] == "sampled"  # the launcher, not us, is the parent
    dom = open_page(report, expressions={"dom": PROBE}).values["dom"]
    for name in ("busy", "mem"):
        d, m = dom[name], metrics[name]
        # The chart says the table's figures, in the same rounding.
        assert d["cpuLabel"].endswith(f"(peak {d['tableCpu']}%)"), d
        assert d["cpuPeak"] == pytest.approx(float(d["tableCpu"]), abs=0.05)
        assert d["cpuPeak"] == pytest.approx(m["cpu_percent_peak"], abs=0.05)
        assert d["rssPeak"] == pytest.approx(d["tableRss"], abs=0.5)
        assert d["tableRss"] == m["rss_peak"] and d["rssFrom"] == m["rss_peak_source"]
        # ... and the drawn line reaches it: the top of the plot is y = 15.
        assert d["cpuTop"] == pytest.approx(15.0, abs=0.2), d
    assert dom["busy"]["cpuPeak"] >= _expected_cpu(work)


def test_kernel_peak_where_the_dispatcher_is_the_parent(tmp_path: Path) -> None:
    metrics, _, work = _run(tmp_path, "parent")
    assert metrics["mem"]["rss_peak"] >= 200 * 1024 * 1024
    assert metrics["mem"]["rss_peak_source"] == "kernel"
    assert metrics["mem"]["rusage_peak_rss"] >= 200 * 1024 * 1024
    assert metrics["busy"]["cpu_percent_peak"] >= _expected_cpu(work)
