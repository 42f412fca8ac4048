"""Singularity/Apptainer support, as contract tests against a fake `apptainer`.

Apptainer cannot be installed on this machine, so tests/executors/fakes/apptainer/apptainer
stands in: it checks its argv strictly, runs the command without isolation (cwd = the host
source of the `--pwd` bind) and logs each call. Pure tests pin the argv and the rendered
task.sh / Slurm job script (golden files); end-to-end tests run the real CLI with
`--site singularity`, and an sdumont attempt through `akoflow worker` (and through the real
Slurm cluster when it is up).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from akoflow import service
from akoflow.executors import singularity, slurm
from akoflow.executors.flux import FluxExecutor
from akoflow.executors.lsf import LsfExecutor
from akoflow.executors.pbs import PbsExecutor
from akoflow.executors.sge import SgeExecutor
from akoflow.executors.singularity import SingularityExecutor, image_ref, wrapper_argv
from akoflow.executors.slurm import SlurmExecutor
from akoflow.port import Resources, SpecError, TaskLaunch, akoflow_argv, protocol
from akoflow.sites import load_site
from tests.conftest import ak

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
FAKES = HERE / "fakes" / "apptainer"
FAKE = FAKES / "apptainer"
SIF_HEADER = b"#!/usr/bin/env run-singularity\n".ljust(32, b"\0") + b"SIF_MAGIC\0"


def make_sif(path: Path) -> Path:
    """A file the fake accepts as a SIF image (launch line, then the magic at offset 32)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SIF_HEADER + b"\0" * 64)
    return path


def fake_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
            "FAKE_APPTAINER_LOG": str(tmp_path / "apptainer.log")}


def fake_calls(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "apptainer.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def check_golden(name: str, text: str, tmp_path: Path) -> None:
    # `python [-P] -m akoflow` as this interpreter starts it (-P from Python 3.11 on)
    text = text.replace(str(tmp_path), "{TMP}").replace(" ".join(akoflow_argv()), "{AKOFLOW}")
    text = text.replace(sys.executable, "{PYTHON}")
    text = re.sub(r"/a[0-9a-f]{24}/cgroup\.procs", "/{CGROUP}/cgroup.procs", text)  # of {TMP}
    path = GOLDEN / name
    if os.environ.get("AKOFLOW_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing {path}; rerun with AKOFLOW_UPDATE_GOLDEN=1"
    assert text == path.read_text()


def launch(tmp_path: Path, **over: Any) -> TaskLaunch:
    run = tmp_path / "run"
    base: dict[str, Any] = dict(
        workflow_id=3, workflow="nemo", activity_id=9, activity="infer", attempt=1,
        job_name="akoflow.3.infer.1", attempt_dir=protocol.attempt_dir(run, "infer", 1),
        work_dir=run / "work", run_dir=run, script="python infer.py > out.txt\necho done",
        resources=Resources(cpu=2.0, memory=2**30, time_limit=600, gpus=0, node_selector={},
                            extra={}),
        image=str(make_sif(tmp_path / "sifs" / "nemo.sif")), env={"MODEL": "small"},
    )
    base.update(over)
    return TaskLaunch(**base)


# -- pure: the argv ------------------------------------------------------------------------

def test_wrapper_argv_and_task_sh_golden(tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    (tmp_path / "models").mkdir()
    ln = launch(tmp_path, mount_path="/data", volumes=[(str(tmp_path / "models"), "/models")],
                resources=Resources(cpu=1.0, gpus=1))
    config = {"container": "apptainer", "container_binary": "apptainer",
              "binds": [f"{tmp_path}/scratch:/scratch:ro"]}
    argv = wrapper_argv(config, ln)
    work = str(ln.work_dir)
    assert argv == ["apptainer", "exec", "--nv", "--bind", f"{work}:/data",
                    "--bind", f"{tmp_path}/scratch:/scratch:ro",
                    "--bind", f"{tmp_path}/models:/models", "--pwd", "/data",
                    "--env", "AKOFLOW_WORKDIR=/data", str(tmp_path / "sifs" / "nemo.sif")]
    assert ln.work_dir.is_dir()  # the bind source must exist before apptainer runs
    ln.wrapper = argv
    check_golden("singularity_task.sh", protocol.render_task_script(ln), tmp_path)


def test_default_mount_is_the_host_path_and_no_gpu_flag(tmp_path: Path) -> None:
    ln = launch(tmp_path, image="docker://ghcr.io/acme/nemo:1.2")
    argv = wrapper_argv({"container_binary": "singularity"}, ln)
    work = str(ln.work_dir)
    assert argv == ["singularity", "exec", "--bind", f"{work}:{work}", "--pwd", work,
                    "docker://ghcr.io/acme/nemo:1.2"]


@pytest.mark.parametrize(("image", "ref"), [
    ("docker://alpine:3.19", "docker://alpine:3.19"),
    ("ubuntu:22.04", "docker://ubuntu:22.04"),
    ("ovvesley/akoflow-wf-montage:0.1", "docker://ovvesley/akoflow-wf-montage:0.1"),
    ("library://sylabsed/examples/lolcow:latest", "library://sylabsed/examples/lolcow:latest"),
    ("library:///library/default/alpine:3.19", "library:///library/default/alpine:3.19"),
    ("oras://ghcr.io/acme/tool:2", "oras://ghcr.io/acme/tool:2"),
    ("https://example.org/images/tool.sif", "https://example.org/images/tool.sif"),
])
def test_image_references(image: str, ref: str) -> None:
    assert image_ref(image) == ref


@pytest.mark.parametrize(("image", "why"), [
    ("ftp://example.org/x.sif", "unknown scheme ftp://"),
    ("docker://Alpine:3.19", "not a valid docker reference"),
    ("docker://", "not a valid docker reference"),
    ("relative/tool.sif", "must be absolute"),
    ("/nonexistent/tool.sif", "does not exist"),
    ("two words", "whitespace"),
    ("foo::bar", "neither an image file path"),
    ("https://example.org", "no host or no path"),
])
def test_bad_image_references(image: str, why: str) -> None:
    with pytest.raises(SpecError, match=why):
        image_ref(image)


def test_binary_is_looked_up_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    only_singularity = tmp_path / "bin"
    only_singularity.mkdir()
    (only_singularity / "singularity").symlink_to(FAKE)
    monkeypatch.setenv("PATH", str(only_singularity))
    assert singularity.container_binary({}) == "singularity"
    monkeypatch.setenv("PATH", str(FAKES))
    assert singularity.container_binary({}) == "apptainer"  # preferred when both exist
    assert singularity.container_binary({"container_binary": "/opt/sing/bin/x"}) == \
        "/opt/sing/bin/x"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SpecError, match="set container_binary"):
        singularity.container_binary({"name": "here"})


def test_bad_binds_are_refused(tmp_path: Path) -> None:
    cfg = {"container_binary": "apptainer"}
    with pytest.raises(SpecError, match="does not exist"):
        wrapper_argv(cfg, launch(tmp_path, volumes=[(str(tmp_path / "nope"), "/nope")]))
    with pytest.raises(SpecError, match="absolute path"):
        wrapper_argv(cfg, launch(tmp_path, mount_path="data"))
    with pytest.raises(SpecError, match="absolute path"):
        wrapper_argv(cfg, launch(tmp_path, volumes=[(str(tmp_path), "/a:b")]))
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    with pytest.raises(SpecError, match="both mounted at /m"):
        wrapper_argv(cfg, launch(tmp_path, volumes=[(str(tmp_path / "x"), "/m"),
                                                    (str(tmp_path / "y"), "/m")]))
    with pytest.raises(SpecError, match="mode must be ro or rw"):
        wrapper_argv({**cfg, "binds": ["/tmp:/t:rx"]}, launch(tmp_path))
    with pytest.raises(SpecError, match="has no image"):
        wrapper_argv(cfg, launch(tmp_path, image=None))


def test_the_fake_accepts_the_real_argv(tmp_path: Path) -> None:
    """The argv wrapper_argv builds, plus task.sh's tail, runs under the fake; exit codes pass."""
    ln = launch(tmp_path, mount_path="/data")
    argv = wrapper_argv({"container_binary": str(FAKE)}, ln)
    env = {**os.environ, **fake_env(tmp_path)}
    cmd = "pwd -P; echo $AKOFLOW_WORKDIR; exit 7"
    proc = subprocess.run([*argv, "bash", "-eo", "pipefail", "-c", cmd], capture_output=True,
                          text=True, env=env, timeout=30)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.split() == [str(ln.work_dir.resolve()), "/data"]
    assert fake_calls(tmp_path)[0]["cwd"] == str(ln.work_dir)


@pytest.mark.parametrize(("args", "why"), [
    (["run", "/x.sif", "true"], "only implements exec"),
    (["exec", "--bind", "/nonexistent:/d", "IMG", "true"], "doesn't exist"),
    (["exec", "--bind", "rel:/d", "IMG", "true"], "must be absolute"),
    (["exec", "--bind", "/tmp:/d:bogus", "IMG", "true"], "unknown bind option"),
    (["exec", "--pwd", "data", "IMG", "true"], "absolute path"),
    (["exec", "--bind", "/tmp:/d", "--pwd", "/elsewhere", "IMG", "true"], "not inside any bind"),
    (["exec", "--nv", "IMG", "true"], "no GPU driver"),
    (["exec", "--cleanenv", "IMG", "true"], "unknown flag"),
    (["exec", "/nonexistent.sif", "true"], "no such file"),
    (["exec", "docker://Bad Ref", "true"], "invalid image reference"),
    (["exec", "ftp://x/y", "true"], "unsupported transport"),
    (["exec", "NOTSIF", "true"], "image format not recognized"),
    (["exec", "IMG"], "needs a command"),
])
def test_the_fake_is_strict(tmp_path: Path, args: list[str], why: str) -> None:
    img = str(make_sif(tmp_path / "ok.sif"))
    not_sif = tmp_path / "not.sif"
    not_sif.write_text("just text\n" * 10)
    args = [img if a == "IMG" else str(not_sif) if a == "NOTSIF" else a for a in args]
    env = {k: v for k, v in os.environ.items() if k != "FAKE_APPTAINER_NV"}
    proc = subprocess.run([str(FAKE), *args], capture_output=True, text=True, env=env,
                          timeout=30)
    assert proc.returncode == 255
    assert why in proc.stderr


# -- the executor --------------------------------------------------------------------------

def test_singularity_executor_refuses_through_submit(tmp_path: Path) -> None:
    """The refusal surfaces from submit(), where the dispatcher fails only that batch."""
    ex = SingularityExecutor("singularity", {**load_site("singularity"),
                                             "container_binary": "apptainer"})
    bare = launch(tmp_path, image=None)
    assert ex.task_wrapper(bare) == []
    with pytest.raises(SpecError, match="has no image: site singularity runs every task"):
        ex.submit([bare])
    good = launch(tmp_path)
    assert ex.task_wrapper(good) == wrapper_argv(ex.config, good)
    assert ex.task_wrapper(launch(tmp_path, image="ftp://x/y")) == []


# -- end to end through the real CLI, --site singularity -----------------------------------

def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _status(home: Path, wf: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(ak("status", wf, "--json", home=home, check=True).stdout)
    return out


def test_workflow_runs_in_containers(akhome: Path, tmp_path: Path) -> None:
    sif = make_sif(tmp_path / "images" / "tools.sif")
    wf = _write(tmp_path / "wf.yaml", f"""\
name: contained
spec:
  image: {sif}
  activities:
    - name: produce
      run: |
        seq 1 100 > numbers.txt
        echo "container=$APPTAINER_CONTAINER"
    - name: square
      dependsOn: [produce]
      image: docker://alpine:3.19
      run: |
        awk '{{print $1*$1}}' numbers.txt > squares.txt
        sleep 0.6
    - name: total
      dependsOn: [square]
      image: ubuntu:22.04
      run: awk '{{s+=$1}} END {{print s}}' squares.txt > total.txt
""")
    proc = ak("run", str(wf), "--site", "singularity", home=akhome, env=fake_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = _status(akhome, "contained")
    assert st["counts"] == {"FINISHED": 3}
    work = Path(st["work_dir"])
    assert (work / "total.txt").read_text().strip() == "338350"
    calls = fake_calls(tmp_path)
    assert len(calls) == 3
    images = {}
    for needle in ("numbers.txt", "squares.txt", "total.txt"):
        call = next(c for c in calls if f"> {needle}" in c["argv"][-1])
        assert call["argv"][:5] == ["exec", "--bind", f"{work}:{work}", "--pwd", str(work)]
        assert call["argv"][-6:-1] == [call["image"], "bash", "-eo", "pipefail", "-c"]
        assert call["cwd"] == str(work)
        images[needle] = call["image"]
    assert images == {"numbers.txt": str(sif), "squares.txt": "docker://alpine:3.19",
                      "total.txt": "docker://ubuntu:22.04"}
    out = (Path(st["run_dir"]) / "activities" / "produce.1" / "stdout").read_text()
    assert out.strip() == f"container={sif}"  # the fake's env reached the command
    metrics = json.loads(ak("metrics", "contained", "--json", home=akhome, check=True).stdout)
    assert {m["activity"] for m in metrics} == {"produce", "square", "total"}
    assert next(m for m in metrics if m["activity"] == "square")["samples"] >= 2
    files = json.loads(ak("files", "contained", "--json", home=akhome, check=True).stdout)
    roles = {(f["activity"], f["path"], f["role"]) for f in files}
    # exact lineage: the container's processes are traced like any task's
    assert roles == {("produce", "numbers.txt", "generated"), ("square", "numbers.txt", "used"),
                     ("square", "squares.txt", "generated"), ("total", "squares.txt", "used"),
                     ("total", "total.txt", "generated")}
    assert {f["observed"] for f in files} == {"trace"}


def test_standalone_storage_copies_parent_outputs_in(akhome: Path, tmp_path: Path) -> None:
    sif = make_sif(tmp_path / "tools.sif")
    wf = _write(tmp_path / "wf.yaml", f"""\
name: isolated
spec:
  image: {sif}
  mountPath: /data
  storagePolicy: {{type: standalone}}
  activities:
    - name: left
      run: echo left > left.txt
    - name: right
      run: echo right > right.txt
    - name: join
      dependsOn: [left, right]
      run: |
        cat left.txt right.txt > joined.txt
        echo "$AKOFLOW_WORKDIR" > where.txt
""")
    proc = ak("run", str(wf), "--site", "singularity", home=akhome, env=fake_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = _status(akhome, "isolated")
    vols = Path(st["run_dir"]) / "volumes"
    assert (vols / "join" / "joined.txt").read_text() == "left\nright\n"
    assert (vols / "join" / "where.txt").read_text() == "/data\n"
    assert not (vols / "left" / "right.txt").exists()  # each activity has its own volume
    join = next(c for c in fake_calls(tmp_path) if "joined.txt" in c["argv"][-1])
    assert join["argv"][:7] == ["exec", "--bind", f"{vols / 'join'}:/data", "--pwd", "/data",
                                "--env", "AKOFLOW_WORKDIR=/data"]
    assert join["cwd"] == str(vols / "join")


@pytest.mark.parametrize(("image_line", "message"), [
    ("  image: ftp://example.org/tool.sif\n", "unknown scheme ftp://"),
    ("", "has no image: site singularity runs every task in a container"),
])
def test_bad_image_is_one_clear_error(akhome: Path, tmp_path: Path, image_line: str,
                                      message: str) -> None:
    wf = _write(tmp_path / "wf.yaml", f"""\
name: badimage
spec:
{image_line}  activities:
    - name: first
      run: echo never
    - name: second
      dependsOn: [first]
      run: echo never either
""")
    proc = ak("run", str(wf), "--site", "singularity", home=akhome, env=fake_env(tmp_path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "FAILED first attempt 1: SPEC_ERROR" in proc.stdout
    st = _status(akhome, "badimage")
    assert st["counts"] == {"FAILED": 1, "SKIPPED": 1}
    logs = ak("logs", "badimage", home=akhome, check=True).stdout
    assert logs.count(message) == 1, logs
    assert fake_calls(tmp_path) == []  # nothing ran


# -- sdumont: Slurm jobs whose task.sh runs singularity exec --------------------------------

def _sdumont_attempt(tmp_path: Path) -> tuple[SlurmExecutor, TaskLaunch, str]:
    """What SlurmExecutor does for an sdumont launch once its task_wrapper calls
    wrapper_argv (the diff in the report): task.sh with the wrapper, then the job script."""
    config = load_site("sdumont")
    ex = SlurmExecutor("sdumont", config)
    ln = launch(tmp_path, script="seq 1 3 > seq.txt\nsleep 1\ncat seq.txt",
                sample_interval=0.2)
    ln.work_dir.mkdir(parents=True)
    ln.wrapper = wrapper_argv(ex.config, ln)
    protocol.prepare_attempt(ln)
    job = slurm.render_script(replace(ln, resources=ex.with_defaults(ln.resources)),
                              worker_argv=ex.worker_argv(ln), modules=ex.modules, env=ex.env,
                              log_dir=str(ln.attempt_dir), array_size=None)
    return ex, ln, job


def test_sdumont_profile_renders_singularity_task(tmp_path: Path) -> None:
    ex, ln, job = _sdumont_attempt(tmp_path)
    assert singularity.is_container_runtime(ex.config) and ex.kind == "slurm"
    task = (ln.attempt_dir / protocol.TASK_SH).read_text()
    check_golden("singularity_sdumont_task.sh", task, tmp_path)
    check_golden("singularity_sdumont_job.sh", job, tmp_path)
    assert f"exec {' '.join(akoflow_argv())} worker {ln.attempt_dir}" in job


def test_sdumont_attempt_runs_through_the_worker(tmp_path: Path) -> None:
    """The job's last line (`akoflow worker DIR`) run here: task.sh -> singularity (the fake)
    -> bash; psutil sees the container's processes as the worker's task tree."""
    _, ln, job = _sdumont_attempt(tmp_path)
    worker = job.strip().splitlines()[-1].removeprefix("exec ").split()
    env = {**os.environ, **fake_env(tmp_path), "AKOFLOW_SAMPLE_INTERVAL": "0.2"}
    proc = subprocess.run(worker, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = protocol.read_result(ln.attempt_dir)
    assert result is not None and result.exit_code == 0
    assert result.stdout_tail == "1\n2\n3\n"
    assert max(m.processes for m in result.metrics) >= 3  # task.sh, singularity, bash, sleep
    calls = fake_calls(tmp_path)
    assert [c["prog"] for c in calls] == ["singularity"]  # the profile's container_binary
    assert calls[0]["cwd"] == str(ln.work_dir)
    assert (ln.work_dir / "seq.txt").exists()


# -- local and Slurm sites wrap tasks themselves ---------------------------------------------

def test_local_and_slurm_wrap_when_profile_says_singularity(tmp_path: Path) -> None:
    from akoflow.executors.local import LocalExecutor

    ln = launch(tmp_path)
    sdumont = SlurmExecutor("sdumont", load_site("sdumont"))
    assert sdumont.task_wrapper(ln) == wrapper_argv(sdumont.config, ln)
    assert SlurmExecutor("slurm", load_site("slurm")).task_wrapper(ln) == []
    # The wrapper is the batch base's: every scheduler's jobs run it the same way.
    for batch in (SgeExecutor, PbsExecutor, LsfExecutor, FluxExecutor):
        sif = {"container": "apptainer", "container_binary": "apptainer"}
        assert batch("hpc", sif).task_wrapper(ln) == wrapper_argv(sif, ln), batch.kind
    cfg = {**load_site("local"), "container": "apptainer", "container_binary": "apptainer"}
    assert LocalExecutor("local", cfg).task_wrapper(ln) == wrapper_argv(cfg, ln)
    assert LocalExecutor("local", cfg).task_wrapper(launch(tmp_path, image=None)) == []


@pytest.fixture
def own_jobs(akhome: Path) -> Iterator[None]:
    """Cancel only this test's jobs: the cluster is shared with other tests."""
    yield
    try:
        desc = json.loads(ak("describe", "1", "--json", home=akhome).stdout or "{}")
    except ValueError:
        return
    ids = [a["job_id"] for a in desc.get("activities", []) if a.get("job_id")]
    if ids:
        subprocess.run(["scancel", *ids], check=False, capture_output=True)


def _slurm_workflow(tmp_path: Path) -> tuple[Path, Path]:
    sif = make_sif(tmp_path / "tools.sif")
    wf = _write(tmp_path / "wf.yaml", f"""\
name: onslurm
spec:
  runtime: sdumont
  image: {sif}
  activities:
    - name: produce
      run: seq 1 10 > n.txt
    - name: consume
      dependsOn: [produce]
      run: awk '{{s+=$1}} END {{print s}}' n.txt > sum.txt
""")
    return wf, sif


def _check_slurm_run(akhome: Path, tmp_path: Path, sif: Path) -> None:
    desc = json.loads(ak("describe", "1", "--json", home=akhome, check=True).stdout)
    assert all(a["job_id"].isdigit() for a in desc["activities"])  # real Slurm jobs
    st = _status(akhome, "onslurm")
    assert (Path(st["work_dir"]) / "sum.txt").read_text().strip() == "55"
    calls = fake_calls(tmp_path)
    assert [c["prog"] for c in calls] == ["singularity", "singularity"]
    assert all(c["image"] == str(sif) for c in calls)
    metrics = json.loads(ak("metrics", "1", "--json", home=akhome, check=True).stdout)
    assert {x["activity"] for x in metrics} == {"produce", "consume"}
    files = json.loads(ak("files", "1", "--json", home=akhome, check=True).stdout)
    assert {(f["activity"], f["path"], f["role"], f["observed"]) for f in files} == {
        ("produce", "n.txt", "generated", "trace"), ("consume", "n.txt", "used", "trace"),
        ("consume", "sum.txt", "generated", "trace")}  # traced inside the Slurm jobs


@pytest.mark.infra
def test_sdumont_workflow_on_real_slurm(slurm_cluster: object, akhome: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        own_jobs: None) -> None:
    """Real sbatch jobs; each runs `akoflow worker`, task.sh, then the fake singularity.
    In-process dispatcher; sbatch exports PATH (with the fake) to the jobs."""
    for key, val in fake_env(tmp_path).items():
        monkeypatch.setenv(key, val)
    wf, sif = _slurm_workflow(tmp_path)
    m = service.open_manifest()
    record = service.register(m, service.load_spec(str(wf)))
    assert service.run(m, record.id) == "FINISHED"
    _check_slurm_run(akhome, tmp_path, sif)


@pytest.mark.infra
def test_sdumont_cli_on_real_slurm(slurm_cluster: object, akhome: Path, tmp_path: Path,
                                   own_jobs: None) -> None:
    """The same through the real CLI."""
    wf, sif = _slurm_workflow(tmp_path)
    proc = ak("run", str(wf), "--site", "sdumont", home=akhome, env=fake_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_slurm_run(akhome, tmp_path, sif)
