"""Reflow-style Python front end: decorated functions that return bash text compile to a spec.

    wf = Workflow("align")

    @wf.job(cpu=4, memory="8Gi", time="1h")
    def index(ref: Annotated[str, Param(default="hg38.fa")]) -> str:
        return f"bwa index {ref}"

    @wf.job(after=["index"])
    def align(idx: Annotated[str, Result("index")], wd: Annotated[str, RunDir]) -> str:
        return f"bwa mem {idx}/ref reads.fq > {wd}/out.sam"

    spec = wf.to_spec(ref="chm13.fa")

Functions run once, at compile time; what they return is the activity's `run` text. Nothing
downstream knows the spec came from Python.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args, get_origin

from akoflow.port.names import check_label
from akoflow.spec.checked import ValidationError
from akoflow.spec.dag import graph_problems
from akoflow.spec.errors import SpecError, SpecIssue
from akoflow.spec.models import ActivitySpec, WorkflowSpec, resources_from_fields

F = TypeVar("F", bound=Callable[..., str])

# Shell expressions expanded in the task script (port/protocol.py exports AKOFLOW_WORKDIR).
# Activities of a workflow share one working directory (AkôFlow's shared volume, `mountPath`),
# so an upstream job's working directory is that same directory.
RUN_DIR = "${AKOFLOW_WORKDIR}"
RESULT_DIR = RUN_DIR

_MISSING: Any = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """A workflow parameter (a CLI flag later); its value is passed to every job that names it."""

    default: Any = _MISSING
    help: str = ""


@dataclass(frozen=True)
class Result:
    """Data dependency on another job: adds a dependsOn edge and passes its working dir."""

    job: str


class RunDir:
    """Marker: inject this activity's working directory (`Annotated[str, RunDir]`)."""


@dataclass
class _Job:
    name: str
    func: Callable[..., str]
    fields: dict[str, Any]
    after: list[str]
    env: dict[str, str] = field(default_factory=dict)


def _marker(param: inspect.Parameter, hint: Any) -> tuple[Any, Any]:
    """(marker, base type) from `Annotated[...]`, a bare `RunDir` hint or a marker default."""
    base = hint
    if get_origin(hint) is Annotated:
        base, *meta = get_args(hint)
        for m in meta:
            if isinstance(m, (Param, Result, RunDir)) or m is RunDir:
                return m, base
    if hint is RunDir:
        return RunDir, str
    d = param.default
    if isinstance(d, (Param, Result, RunDir)) or d is RunDir:
        return d, base
    return None, base


def _convert(value: Any, base: Any, name: str) -> Any:
    """Coerce CLI strings to the declared scalar type (int, float, bool)."""
    if not isinstance(value, str) or base not in (int, float, bool):
        return value
    if base is bool:
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"parameter {name!r}: {value!r} is not true or false")
    try:
        return base(value)
    except ValueError:
        raise ValueError(f"parameter {name!r}: {value!r} is not {base.__name__}") from None


class Workflow:
    """A workflow being declared in Python; `to_spec()` compiles it to a `WorkflowSpec`."""

    def __init__(
        self, name: str, *, runtime: str = "local", image: str | None = None, alpha: float = 0.5
    ) -> None:
        try:
            check_label(name, "workflow")
        except ValueError as e:
            raise SpecError([SpecIssue(None, None, "name", str(e))]) from None
        self.name = name
        self.runtime = runtime
        self.image = image
        self.alpha = alpha
        self._jobs: list[_Job] = []

    def job(
        self,
        *,
        name: str | None = None,
        cpu: float | str = 1,
        memory: int | str | None = None,
        time: float | str | None = None,
        gpus: int = 0,
        retries: int = 0,
        after: Sequence[str] = (),
        image: str | None = None,
        runtime: str | None = None,
        env: Mapping[str, str] | None = None,
        resources: Mapping[str, str] | None = None,
    ) -> Callable[[F], F]:
        """Register a function returning the bash text of one activity (function unchanged)."""

        def register(func: F) -> F:
            fields = {
                "cpu": cpu,
                "memory": memory,
                "time": time,
                "gpus": gpus,
                "retries": retries,
                "image": image,
                "runtime": runtime,
                "resources": dict(resources or {}),
            }
            job_name = name or func.__name__
            self._jobs.append(_Job(job_name, func, fields, list(after), dict(env or {})))
            return func

        return register

    def parameters(self) -> dict[str, Param]:
        """Every parameter the jobs declare, with its default (for building CLI flags)."""
        out: dict[str, Param] = {}
        for job in self._jobs:
            sig = inspect.signature(job.func)
            hints = _hints(job.func)
            for pname, p in sig.parameters.items():
                marker, _ = _marker(p, hints.get(pname))
                if isinstance(marker, Param):
                    default = marker.default if marker.default is not _MISSING else p.default
                    out.setdefault(pname, Param(default, marker.help))
                elif marker is None:
                    out.setdefault(pname, Param(p.default))
        return out

    def to_spec(self, **params: Any) -> WorkflowSpec:
        """Call every job with resolved parameters and build the validated spec."""
        issues: list[SpecIssue] = []
        for unused in sorted(set(params) - set(self.parameters())):
            issues.append(SpecIssue(None, None, f"params.{unused}", "unknown parameter"))
        if not self._jobs:
            issues.append(SpecIssue(None, None, "jobs", "the workflow has no jobs"))
        compiled = [self._compile(job, params, issues) for job in self._jobs]
        names = [job.name for job in self._jobs]
        for p in graph_problems(names, [deps for _, deps in compiled]):
            issues.append(_issue(self._jobs[p.index], f"jobs.{names[p.index]}", p.message))
        acts = [act for act, _ in compiled if act is not None]
        if issues or len(acts) != len(self._jobs):
            raise SpecError(issues)
        try:
            return WorkflowSpec(
                name=self.name,
                runtime=self.runtime,
                image=self.image,
                alpha=self.alpha,
                activities=acts,
            )
        except ValidationError as e:
            raise SpecError(
                SpecIssue(None, None, ".".join(map(str, err["loc"])), err["msg"])
                for err in e.errors()
            ) from None

    def _compile(
        self, job: _Job, params: Mapping[str, Any], issues: list[SpecIssue]
    ) -> tuple[ActivitySpec | None, list[str]]:
        """The job's activity (None after recording issues) and its dependencies."""
        path = f"jobs.{job.name}"
        kwargs: dict[str, Any] = {}
        deps = list(job.after)
        hints = _hints(job.func)
        sig = inspect.signature(job.func)
        for pname, p in sig.parameters.items():
            marker, base = _marker(p, hints.get(pname))
            if isinstance(marker, Result):
                kwargs[pname] = RESULT_DIR
                deps.append(marker.job)
                continue
            if marker is RunDir or isinstance(marker, RunDir):
                kwargs[pname] = RUN_DIR
                continue
            default = p.default
            if isinstance(marker, Param) and marker.default is not _MISSING:
                default = marker.default
            value = params.get(pname, default)
            if value is _MISSING or isinstance(value, Param):
                issues.append(_issue(job, f"params.{pname}", "missing value for parameter"))
                continue
            try:
                kwargs[pname] = _convert(value, base, pname)
            except ValueError as e:
                issues.append(_issue(job, f"params.{pname}", str(e)))
        deps = list(dict.fromkeys(deps))
        try:
            check_label(job.name, "activity")
        except ValueError as e:
            issues.append(_issue(job, path, str(e)))
            return None, deps
        if len(kwargs) < len(sig.parameters):
            return None, deps
        run = job.func(**kwargs)
        if not isinstance(run, str) or not run.strip():
            issues.append(_issue(job, path, "the job function must return the bash text to run"))
            return None, deps
        f = job.fields
        try:
            res = resources_from_fields(
                cpu=f["cpu"],
                memory=f["memory"],
                time_limit=f["time"],
                gpus=f["gpus"],
                extra=f["resources"],
            )
            act = ActivitySpec(
                name=job.name,
                run=run,
                image=f["image"],
                runtime=f["runtime"],
                resources=res,
                depends_on=deps,
                retries=f["retries"],
                env=job.env,
            )
        except ValidationError as e:
            for err in e.errors():
                loc = ".".join(str(x) for x in err["loc"])
                issues.append(_issue(job, f"{path}.{loc}", err["msg"]))
            return None, deps
        except ValueError as e:  # unit errors from resources_from_fields
            issues.append(_issue(job, path, str(e)))
            return None, deps
        return act, deps


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except (NameError, TypeError):  # unresolvable forward references: fall back to raw hints
        return dict(getattr(func, "__annotations__", {}))


def _issue(job: _Job | None, path: str, msg: str) -> SpecIssue:
    """Point at the job function's definition so the message leads to the code."""
    if job is None:
        return SpecIssue(None, None, path, msg)
    code = getattr(job.func, "__code__", None)
    file = code.co_filename if code else None
    return SpecIssue(file, code.co_firstlineno if code else None, path, msg)


def load_python(path: str | Path, params: Mapping[str, str] | None = None) -> WorkflowSpec:
    """Run a Python workflow file and compile the `Workflow` it defines.

    The file must define exactly one `Workflow` at module level (or one named `wf`).
    """
    import runpy

    source = str(path)
    try:
        namespace = runpy.run_path(source, run_name="__akoflow__")
    except FileNotFoundError:
        raise SpecError([SpecIssue(source, None, "", "no such file")]) from None
    except SpecError:
        raise
    except Exception as exc:  # the user's module failed: say where, in one line
        raise SpecError([SpecIssue(source, None, "",
                                   f"running the file failed: {type(exc).__name__}: {exc}")]
                        ) from None
    found = [v for v in namespace.values() if isinstance(v, Workflow)]
    if len(found) > 1 and isinstance(namespace.get("wf"), Workflow):
        found = [namespace["wf"]]
    if len(found) != 1:
        raise SpecError([SpecIssue(source, None, "", f"defines {len(found)} Workflow objects;"
                                   " define exactly one (or name it `wf`)")])
    spec = found[0].to_spec(**dict(params or {}))
    spec.source = source
    return spec
