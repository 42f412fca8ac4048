"""Exact lineage (#11): what each task really read, wrote, renamed and deleted, observed by
tracing its syscalls, even with fifty tasks writing into one directory at the same time.

Every test here runs real tasks through the real CLI and compares `akoflow files --json`
with what the tasks were written to do (the ground truth), row for row.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from pathlib import Path

import pytest

from akoflow.worker import tracing
from tests.conftest import ak
from tests.infra import in_ci

Truth = dict[str, dict[str, set[str]]]  # activity -> role -> paths

pytestmark = pytest.mark.skipif(
    tracing.unavailable() is not None and not in_ci(),
    reason=f"syscall tracing unavailable here: {tracing.unavailable()}")


def wide_site(tmp: Path, mode: str = "inline") -> dict[str, str]:
    """A local site with room for fifty tasks at once (they sleep, so two cores do)."""
    sites = tmp / "sites"
    sites.mkdir(exist_ok=True)
    (sites / "wide.yaml").write_text(
        f"name: wide\nexecutor: local\ncpus: 64\nmode: {mode}\n")
    return {"AKOFLOW_SITES": str(sites)}


def concurrent_workflow(tmp: Path, n: int = 50, seed: int = 7) -> tuple[Path, Truth]:
    """`n` writers, then `n` readers that all run at once in the one work directory, each
    reading a few writers' outputs (declared as dependencies, so the files exist) and
    writing its own; plus a task for each tricky case."""
    rng = random.Random(seed)
    truth: Truth = defaultdict(lambda: defaultdict(set))
    acts = []
    for i in range(n):
        acts.append(f"    - name: w{i}\n      run: |\n        sleep 0.2\n"
                    f"        echo w{i} > w{i}.txt\n")
        truth[f"w{i}"]["generated"].add(f"w{i}.txt")
    for i in range(n):
        reads = sorted(rng.sample(range(n), 3))
        cats = " ".join(f"w{j}.txt" for j in reads)
        deps = ", ".join(f"w{j}" for j in reads)
        acts.append(f"    - name: r{i}\n      dependsOn: [{deps}]\n      run: |\n"
                    f"        cat {cats} > r{i}.txt\n        sleep 0.3\n"
                    f"        cat r{i}.txt >> r{i}.txt.bak; rm r{i}.txt.bak\n")
        truth[f"r{i}"]["used"] |= {f"w{j}.txt" for j in reads}
        truth[f"r{i}"]["generated"].add(f"r{i}.txt")  # the .bak is its own temporary file
    acts.append("    - name: via_python\n      dependsOn: [w0]\n      run: |\n"
                "        python3 -c \"open('py.out','w').write(open('w0.txt').read())\"\n")
    truth["via_python"]["used"].add("w0.txt")
    truth["via_python"]["generated"].add("py.out")
    acts.append("    - name: prep\n      run: |\n"
                "        echo a > tomove.txt; echo b > todelete.txt\n")
    truth["prep"]["generated"] |= {"tomove.txt", "todelete.txt"}
    acts.append("    - name: mover\n      dependsOn: [prep]\n"
                "      run: |\n"
                "        mv tomove.txt moved.txt\n        rm -f todelete.txt\n")
    truth["mover"]["invalidated"] |= {"tomove.txt", "todelete.txt"}
    truth["mover"]["generated"].add("moved.txt")
    acts.append("    - name: statter\n      dependsOn: [w3]\n      run: |\n"
                "        stat w3.txt > /dev/null; test -e w3.txt; ls > /dev/null\n")
    acts.append("    - name: appender\n      dependsOn: [prep]\n      run: |\n"
                "        echo more >> log.txt\n        echo more >> log.txt\n")
    truth["appender"]["generated"].add("log.txt")
    wf = tmp / "wide.yaml"
    wf.write_text("name: wide\nspec:\n  runtime: wide\n  activities:\n" + "".join(acts))
    return wf, truth


def observed(home: Path, env: dict[str, str]) -> tuple[Truth, list[dict[str, object]]]:
    rows = json.loads(ak("files", "1", "--json", home=home, env=env, check=True).stdout)
    got: Truth = defaultdict(lambda: defaultdict(set))
    for r in rows:
        role = "used" if r["role"] == "pre-existing" else str(r["role"])
        got[str(r["activity"])][role].add(str(r["path"]))
    return got, rows


def as_plain(t: Truth) -> dict[str, dict[str, set[str]]]:
    return {a: {r: p for r, p in roles.items() if p} for a, roles in t.items()
            if any(roles.values())}


@pytest.mark.parametrize("mode", ["inline", "process"])
def test_fifty_tasks_at_once_in_one_directory(akhome: Path, tmp_path: Path, mode: str) -> None:
    env = wide_site(tmp_path, mode)
    wf, truth = concurrent_workflow(tmp_path)
    proc = ak("run", str(wf), home=akhome, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got, rows = observed(akhome, env)
    assert as_plain(got) == as_plain(truth)
    assert {r["observed"] for r in rows} == {"trace"}
    assert not any(r["ambiguous"] for r in rows)
    # readers really overlapped (else this would not test concurrency)
    desc = json.loads(ak("describe", "1", "--json", home=akhome, env=env).stdout)
    spans = sorted((a["started_at"], a["finished_at"]) for a in desc["activities"]
                   if a["name"].startswith("r"))
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans))


def test_without_a_tracer_snapshots_say_so(akhome: Path, tmp_path: Path) -> None:
    """No strace: the run still works; rows say `snapshot`, and what snapshots cannot
    attribute (reads; writes beside a concurrent task) is marked ambiguous."""
    env = {**wide_site(tmp_path), "AKOFLOW_STRACE": str(tmp_path / "no-such-strace")}
    wf, _ = concurrent_workflow(tmp_path, n=6)
    proc = ak("run", str(wf), home=akhome, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _, rows = observed(akhome, env)
    assert rows and {r["observed"] for r in rows} == {"snapshot"}
    used = [r for r in rows if r["role"] in ("used", "pre-existing")]
    assert used and all(r["ambiguous"] for r in used)
    assert any(r["ambiguous"] for r in rows if r["role"] == "generated")
    table = ak("files", "1", home=akhome, env=env, check=True)
    assert "generated?" in table.stdout and "ambiguous" in table.stderr


def test_prov_round_trip_keeps_invalidation(akhome: Path, tmp_path: Path) -> None:
    """A rename generates the new path and invalidates the old; a deletion invalidates;
    derivations only where one attempt used the input and generated the output. Every
    relation survives each PROV format's round trip."""
    from akoflow.manifest import Manifest
    from akoflow.provenance import prov as P

    wf = tmp_path / "moves.yaml"
    wf.write_text("name: moves\nspec:\n  activities:\n"
                  "    - {name: make, run: 'echo a > a.txt; echo b > b.txt; echo c > c.txt'}\n"
                  "    - name: shuffle\n      dependsOn: [make]\n      run: |\n"
                  "        cat a.txt > a2.txt\n        mv b.txt b2.txt\n        rm c.txt\n")
    assert ak("run", str(wf), home=akhome).returncode == 0
    got, _ = observed(akhome, {})
    assert as_plain(got) == {
        "make": {"generated": {"a.txt", "b.txt", "c.txt"}},
        "shuffle": {"used": {"a.txt"}, "generated": {"a2.txt", "b2.txt"},
                    "invalidated": {"b.txt", "c.txt"}}}
    doc = P.build_document(Manifest(akhome / "manifest.db"), 1)
    counts = P.relation_counts(doc)
    assert counts["wasInvalidatedBy"] == 2
    assert counts["wasDerivedFrom"] == 2  # a2.txt and b2.txt from a.txt (shuffle's only use)
    for fmt in sorted(P.FORMATS):
        back = P.parse(P.serialize(doc, fmt), fmt)
        assert P.relation_counts(back) == counts, fmt


def test_declared_inputs_and_outputs_are_checked(akhome: Path, tmp_path: Path) -> None:
    """Declarations are checked, never the source of lineage: a missing input fails the
    attempt before it runs; a missing output fails it after (a retry may still fix it)."""
    wf = tmp_path / "declared.yaml"
    wf.write_text(
        "name: declared\nspec:\n  activities:\n"
        "    - name: good\n      inputs: []\n      outputs: ['out/*.txt']\n"
        "      run: mkdir -p out; echo x > out/a.txt; echo y > other.txt\n"
        "    - name: needs\n      inputs: ['data/*.csv']\n      run: touch ran.marker\n"
        "    - name: forgets\n      outputs: [result.txt]\n      retries: 1\n"
        "      run: |\n        if [ -e tried ]; then echo r > result.txt; fi; touch tried\n")
    proc = ak("run", str(wf), home=akhome)
    assert proc.returncode == 1, proc.stderr
    st = json.loads(ak("status", "1", "--json", home=akhome).stdout)
    fails = {(f["activity"], f["reason"]) for f in st["failures"] + st["recovered"]}
    assert ("needs", "MISSING_INPUT") in fails and ("forgets", "MISSING_OUTPUT") in fails
    desc = {a["name"]: a for a in json.loads(ak("describe", "1", "--json",
                                                home=akhome).stdout)["activities"]}
    assert desc["good"]["status"] == "FINISHED" and desc["forgets"]["status"] == "FINISHED"
    assert desc["needs"]["status"] == "FAILED"
    work = Path(st["work_dir"])
    assert not (work / "ran.marker").exists()  # never ran
    got, _ = observed(akhome, {})  # lineage is what was observed, declared or not
    assert got["good"]["generated"] == {"out/a.txt", "other.txt"}
