from __future__ import annotations

from typing import Annotated

import pytest

from akoflow.spec import Dag, Param, Result, RunDir, SpecError, Workflow, dump_yaml
from akoflow.spec import parse_workflow_text as parse
from akoflow.spec.python_api import RESULT_DIR, RUN_DIR


def build() -> Workflow:
    wf = Workflow("align", runtime="slurm", image="bwa.sif", alpha=0.7)

    @wf.job(cpu=4, memory="8Gi", time="1h", retries=2, env={"OMP": "4"})
    def index(ref: Annotated[str, Param(default="hg38.fa", help="reference")]) -> str:
        return f"bwa index {ref}"

    @wf.job(memory="2Gi")
    def trim(reads: str = "r.fq", threads: int = 2) -> str:
        return f"trim --threads {threads} {reads}"

    @wf.job(after=["trim"], resources={"partition": "long"})
    def align(
        idx: Annotated[str, Result("index")],
        wd: Annotated[str, RunDir],
        threads: Annotated[int, Param(default=8)],
        fast: Annotated[bool, Param(default=False)],
    ) -> str:
        return f"bwa mem -t {threads} {'-f ' if fast else ''}{idx}/ref > {wd}/out.sam"

    return wf


def test_compiles_to_spec() -> None:
    spec = build().to_spec()
    assert (spec.name, spec.runtime, spec.image, spec.alpha) == ("align", "slurm", "bwa.sif", 0.7)
    index, trim, align = spec.activities
    assert index.run == "bwa index hg38.fa"
    r = index.resources
    assert (r.cpu, r.memory, r.time_limit) == (4.0, 8 * 1024**3, 3600.0)
    assert (index.retries, index.env) == (2, {"OMP": "4"})
    assert trim.run == "trim --threads 2 r.fq"
    assert align.depends_on == ["trim", "index"]
    assert align.resources.extra == {"partition": "long"}
    assert align.run == f"bwa mem -t 8 {RESULT_DIR}/ref > {RUN_DIR}/out.sam"
    assert RUN_DIR == "${AKOFLOW_WORKDIR}"
    assert Dag.from_spec(spec).topological_order() == ["index", "trim", "align"]
    assert parse(dump_yaml(spec)).model_dump() == spec.model_dump()


def test_params_override_and_cli_strings_convert() -> None:
    spec = build().to_spec(ref="chm13.fa", threads="16", fast="yes")
    index, trim, align = spec.activities
    assert index.run == "bwa index chm13.fa"
    assert trim.run == "trim --threads 16 r.fq"  # one parameter feeds every job naming it
    assert align.run.startswith("bwa mem -t 16 -f ")


def test_parameters_listed() -> None:
    params = build().parameters()
    assert set(params) == {"ref", "reads", "threads", "fast"}
    assert params["ref"] == Param("hg38.fa", "reference")
    assert params["reads"].default == "r.fq"


def test_errors_are_spec_errors() -> None:
    wf = build()
    with pytest.raises(SpecError, match=r"params.nope: unknown parameter"):
        wf.to_spec(nope=1)
    with pytest.raises(SpecError, match=r"params.threads: parameter 'threads': 'many' is not int"):
        wf.to_spec(threads="many")

    wf2 = Workflow("w2")

    @wf2.job(after=["prepar"])
    def run(n: int) -> str:
        return f"echo {n}"

    @wf2.job(memory="12XB")
    def prepare() -> str:
        return "echo"

    with pytest.raises(SpecError) as info:
        wf2.to_spec()
    text = str(info.value)
    assert "jobs.run: unknown activity 'prepar' in dependsOn; did you mean 'prepare'?" in text
    assert "params.n: missing value for parameter" in text
    assert "jobs.prepare: memory '12XB' is not a size" in text
    assert "test_spec_python_api.py:" in text  # points at the job function


def test_cycle_and_bad_return() -> None:
    wf = Workflow("cyc")

    @wf.job()
    def a(x: Annotated[str, Result("b")]) -> str:
        return "echo a"

    @wf.job()
    def b(y: Annotated[str, Result("a")]) -> str:
        return "echo b"

    @wf.job(name="bad")
    def c() -> str:
        return ""

    with pytest.raises(SpecError) as info:
        wf.to_spec()
    text = str(info.value)
    assert "cycle: a -> b -> a" in text
    assert "jobs.bad: the job function must return the bash text to run" in text


def test_rundir_forms_and_bad_names() -> None:
    wf = Workflow("forms")

    @wf.job()
    def one(wd: RunDir, other: str = RunDir()) -> str:  # type: ignore[assignment]
        return f"cd {wd} && ls {other}"

    assert wf.to_spec().activities[0].run == f"cd {RUN_DIR} && ls {RUN_DIR}"
    with pytest.raises(SpecError, match="name is empty"):
        Workflow("  ")
    assert Workflow("a;rm -rf /").name == "a;rm -rf /"  # any text; paths use names.ident
    wf.job(name="x" * 1001)(lambda: "echo")
    with pytest.raises(SpecError, match="longer than 1000"):
        wf.to_spec()


def test_workflow_level_validation() -> None:
    wf = Workflow("w", alpha=1.5)
    wf.job(name="x")(lambda: "echo")
    with pytest.raises(SpecError, match="alpha: alpha must be between 0 and 1"):
        wf.to_spec()
    with pytest.raises(SpecError, match="jobs: the workflow has no jobs"):
        Workflow("empty").to_spec()
