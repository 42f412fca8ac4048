"""What every scheduler module uses to turn a launch into options and a job script.

Pure: values checked before they reach a directive line, the `resources.extra` keys every
scheduler takes (partition/account/qos aliases and `<scheduler>.<option>` passthrough), job
id checks, the script rendering from `templates/<scheduler>.sh.j2`, and the row a queue
listing is parsed into. Each scheduler module says what its aliases become and which
options it keeps for itself (its `Dialect`).
"""

from __future__ import annotations

import logging
import math
import re
import shlex
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2

from akoflow.port import JobState, JobStatus, Resources, SpecError, SubmitError

log = logging.getLogger(__name__)
SAFE: Final = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")  # exactly what shlex.quote leaves bare
ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME: Final = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
MIB: Final = 1024**2

# `akoflow.templates` is the top-level templates/ directory (package-dir mapping), so load it as
# a package of its own: PackageLoader("akoflow", "templates") would look for akoflow/templates/.
TEMPLATES: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("akoflow.templates", "."), autoescape=False,
    undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Request:
    """A launch's `Resources` as batch schedulers count them, checked: whole cores, and what
    Slurm, PBS, LSF and Flux turn into their own options (SGE counts slots its own way)."""

    cpus: int  # whole cores, rounded up
    memory: int | None  # bytes; None: not asked for
    time_limit: float | None  # seconds
    gpus: int

    @classmethod
    def of(cls, resources: Resources) -> Request:
        cpu = _number(resources.cpu, "cpu")
        if not cpu:
            raise SpecError(f"cpu must be positive, got {resources.cpu!r}")
        memory, limit = _number(resources.memory, "memory"), _number(resources.time_limit,
                                                                     "time_limit")
        return cls(cpus=math.ceil(cpu - 1e-9), memory=math.ceil(memory) if memory else None,
                   time_limit=limit or None,
                   gpus=math.ceil(_number(resources.gpus, "gpus") or 0))

    @property
    def memory_mib(self) -> int | None:
        return None if self.memory is None else max(1, math.ceil(self.memory / MIB))


def _number(raw: object, key: str) -> float | None:
    """A resource value as a finite number ≥ 0 (None: not asked for); else a SpecError."""
    if raw is None or raw == "":
        return None
    try:
        value = float(str(raw))
    except (TypeError, ValueError):
        raise SpecError(f"{key} must be a number, got {raw!r}") from None
    if not 0 <= value < math.inf:
        raise SpecError(f"{key} must be a positive number, got {raw!r}")
    return value


def local_time(text: str, form: str = "%Y-%m-%dT%H:%M:%S") -> float | None:
    """A scheduler's local timestamp as epoch seconds; None for N/A, Unknown, None, ..."""
    try:
        return time.mktime(time.strptime(text, form))
    except ValueError:
        return None


def submitted(stdout: str, pattern: re.Pattern[str], command: str) -> re.Match[str]:
    """The newest line of a submit command's output that `pattern` matches (the job id);
    none is a permanent SubmitError: resubmitting would not make the scheduler say more."""
    for line in reversed([ln.strip() for ln in stdout.splitlines() if ln.strip()]):
        if m := pattern.search(line):
            return m
    raise SubmitError(f"{command} printed no job id: {stdout.strip()[:200]!r}",
                      transient=False, stdout=stdout)


def rows(stdout: str, after_name: int, what: str) -> Iterator[tuple[str, str, list[str]]]:
    """(id, name, other fields) of `id|name|f1|...` listing lines with `after_name` fields
    after the name: a name may hold `|`, the other fields cannot. Others are logged."""
    for line in stdout.splitlines():
        job_id, sep, rest = line.strip().partition("|")
        fields = rest.rsplit("|", after_name) if sep else []
        if len(fields) == after_name + 1:
            yield job_id, fields[0], fields[1:]
        elif line.strip():
            log.warning("unparsable %s line %r", what, line)


@dataclass(frozen=True)
class Array:
    """An array job's elements: line N of `tasks` is `<attempt dir><TAB><job name>` of one
    element (the template says whether N counts from 0 or 1)."""

    size: int
    tasks: Path

    @staticmethod
    def name_at(tasks_file: str, line: int) -> str | None:
        """The job name on line `line` (counting from 0) of an array's tasks file."""
        try:
            with open(tasks_file) as fh:
                for i, text in enumerate(fh):
                    if i == line:
                        return text.rstrip("\n").partition("\t")[2] or None
        except OSError:
            return None
        return None


@dataclass(frozen=True)
class QueueEntry:
    """One job of a scheduler's queue listing, as its module parsed it."""

    job_id: str
    name: str
    status: JobStatus
    state_code: str = ""  # the scheduler's own state code, where the adapter needs it


@dataclass(frozen=True)
class Dialect:
    """How one scheduler spells and checks what goes into its job scripts."""

    name: str  # "Slurm"
    where: str  # "a Slurm directive": the end of "has characters not allowed in ..."
    prefix: str  # "slurm.": `resources.extra` keys passed through as options
    aliases: Mapping[str, str]  # scheduler-agnostic key -> what the scheduler makes of it
    reserved: frozenset[str]  # options akoflow sets itself (name, logs, arrays, deps, ...)
    option: re.Pattern[str]  # what a passed-through option may be called
    value: re.Pattern[str]  # what its value may hold
    hint: str  # "slurm.<sbatch-option>": how the error message names passthrough keys
    dash: str = "-"  # "--" where options are long ones, for messages
    flags: bool = True  # "true"/"yes"/"" makes a bare flag, "false"/"no" leaves it out

    def state(self, table: Mapping[str, JobState], code: str) -> JobState:
        """A state code through the scheduler's table; an unknown code is UNKNOWN, logged: a
        misread must make the dispatcher wait, never fail or succeed a task."""
        state = table.get(code)
        if state is None:
            log.warning("unknown %s job state %r; treating it as UNKNOWN", self.name, code)
            return JobState.UNKNOWN
        return state

    def check(self, value: str, what: str, pattern: re.Pattern[str] = SAFE) -> str:
        """Refuse values that could break out of a directive line or need quoting there."""
        if not value or not pattern.match(value):
            raise SpecError(f"{what} {value!r} has characters not allowed in {self.where}")
        return value

    def extra(self, extra: Mapping[str, Any]) -> Iterator[tuple[str, str, str | None]]:
        """`resources.extra`, in order, as (key, option, value): an alias with its raw value
        (the scheduler checks it as the option needs), or a passed-through option with its
        checked value (None: a bare flag). Unknown or reserved keys are SpecErrors."""
        for key, raw in extra.items():
            value = str(raw)
            if key in self.aliases:
                yield key, self.aliases[key], value
                continue
            name = key[len(self.prefix):]
            if not key.startswith(self.prefix) or not self.option.match(name):
                valid = ", ".join([*sorted(self.aliases), self.hint])
                raise SpecError(f"unknown {self.name} resource key {key!r}; valid keys: {valid}")
            if name in self.reserved:
                raise SpecError(f"resource {key!r}: akoflow sets {self.dash}{name} itself")
            if self.flags and value.lower() in ("true", "yes", ""):
                yield key, name, None
            elif not (self.flags and value.lower() in ("false", "no")):
                yield key, name, self.check(value, f"resource {key!r}", self.value)

    def choose(self, extra: Mapping[str, Any], *, feature: str = "",
               pattern: re.Pattern[str] = SAFE, split: bool = True,
               ) -> tuple[dict[str, str | None], list[str]]:
        """The resource-option loop every scheduler shares: `resources.extra` as (options,
        features). Options come in the order given, each alias as its target with its value
        checked, each passed-through option as `extra` yields it (None: a bare flag); an alias
        whose target is `feature` adds feature terms instead (split at commas when `split`),
        each checked against `pattern`."""
        options: dict[str, str | None] = {}
        features: list[str] = []
        for key, option, value in self.extra(extra):
            if key in self.aliases and option == feature:
                terms = str(value).split(",") if split else [str(value)]
                features += [self.check(t, f"resource {key!r}", pattern) for t in terms if t]
            elif key in self.aliases:
                options[option] = self.check(str(value), f"resource {key!r}")
            else:
                options[option] = value
        return options, features

    def selected(self, resources: Resources, pattern: re.Pattern[str] = SAFE) -> list[str]:
        """`node_selector` values as feature terms, checked, in key order."""
        return [self.check(str(v), f"node_selector {k!r}", pattern)
                for k, v in sorted(resources.node_selector.items())]

    def job_ids(self, job_ids: Sequence[str], pattern: re.Pattern[str], form: str) -> list[str]:
        """Job ids for an argv, each checked against the scheduler's id syntax."""
        if not job_ids:
            raise ValueError("no job ids given")
        for jid in job_ids:
            if not pattern.match(jid):
                raise ValueError(f"{jid!r} is not {form}")
        return list(job_ids)

    def render(self, template: str, *, modules: Sequence[str], env: Mapping[str, str],
               worker: Sequence[str], array_size: int | None = None,
               tasks_file: str | None = None, **fields: Any) -> str:
        """A job script from `templates/<template>`: modules, exported variables and an
        array's tasks file quoted for the shell, the worker's argv as one command line."""
        if array_size and not tasks_file:
            raise SpecError("an array script needs the tasks file its elements read")
        for key in env:
            if not ENV_NAME.match(key):
                raise SpecError(f"environment variable name {key!r} is not valid in a shell")
        return TEMPLATES.get_template(template).render(
            modules=[shlex.quote(self.check(m, "module")) for m in modules],
            env=[(k, shlex.quote(v)) for k, v in env.items()], worker=shlex.join(worker),
            array_size=array_size, tasks_file=shlex.quote(tasks_file) if tasks_file else "",
            **fields)
