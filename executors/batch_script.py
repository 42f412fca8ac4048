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
from typing import Any, Final

import jinja2

from akoflow.port import JobState, JobStatus, Resources, SpecError

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
        cpu, memory, limit = resources.cpu, resources.memory, resources.time_limit
        if float(cpu) <= 0:
            raise SpecError(f"cpu must be positive, got {cpu!r}")
        if memory and int(memory) < 0:
            raise SpecError(f"memory must be positive, got {memory!r}")
        if limit and float(limit) < 0:
            raise SpecError(f"time_limit must be positive, got {limit!r}")
        return cls(cpus=math.ceil(float(cpu) - 1e-9),
                   memory=int(memory) if memory else None,
                   time_limit=float(limit) if limit else None,
                   gpus=int(resources.gpus or 0))

    @property
    def memory_mib(self) -> int | None:
        return None if self.memory is None else max(1, math.ceil(self.memory / MIB))


def local_time(text: str, form: str = "%Y-%m-%dT%H:%M:%S") -> float | None:
    """A scheduler's local timestamp as epoch seconds; None for N/A, Unknown, None, ..."""
    try:
        return time.mktime(time.strptime(text, form))
    except ValueError:
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

    def job_ids(self, job_ids: Sequence[str], pattern: re.Pattern[str], form: str) -> list[str]:
        """Job ids for an argv, each checked against the scheduler's id syntax."""
        if not job_ids:
            raise ValueError("no job ids given")
        for jid in job_ids:
            if not pattern.match(jid):
                raise ValueError(f"{jid!r} is not {form}")
        return list(job_ids)

    def render(self, template: str, *, modules: Sequence[str], env: Mapping[str, str],
               worker: Sequence[str], **fields: Any) -> str:
        """A job script from `templates/<template>`: modules and exported variables quoted
        for the shell, the worker's argv joined as one command line."""
        for key in env:
            if not ENV_NAME.match(key):
                raise SpecError(f"environment variable name {key!r} is not valid in a shell")
        return TEMPLATES.get_template(template).render(
            modules=[shlex.quote(self.check(m, "module")) for m in modules],
            env=[(k, shlex.quote(v)) for k, v in env.items()], worker=shlex.join(worker),
            **fields)
