"""Validated workflow model: what every front end (YAML, Python API, importers) compiles to.

Field names are snake_case in Python and camelCase in YAML (AkôFlow's style). Plain dataclasses
whose fields are converted and checked on construction (`checked.py`). Units are normalised here
(cpu as float cores, memory and storage as bytes, time as seconds) so nothing downstream parses
strings again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from akoflow.port.names import check_label
from akoflow.port.units import parse_cpu, parse_duration, parse_memory
from akoflow.spec.checked import (
    Checked,
    Conv,
    nested,
    nested_list,
    one_of,
    optional,
    str_dict,
    str_list,
    to_bool,
    to_float,
    to_int,
    to_str,
)

NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_NAME_LEN = 100
MAX_RETRIES = 1000
MAX_GPUS = 1024


def check_name(value: str, what: str) -> str:
    """Site and namespace names: they are looked up and passed on as they are, so they must
    be safe themselves (workflow and activity names may be anything: `names.ident`)."""
    if not value:
        raise ValueError(f"{what} name is empty")
    if len(value) > MAX_NAME_LEN:
        raise ValueError(f"{what} name is longer than {MAX_NAME_LEN} characters")
    if not NAME_RE.match(value):
        raise ValueError(
            f"{what} name {value!r} may only contain letters, digits, '.', '_' and '-'"
        )
    if value.startswith((".", "-")):
        raise ValueError(f"{what} name {value!r} must not start with '.' or '-'")
    return value


def _check_values(values: dict[str, str], what: str) -> dict[str, str]:
    """Values that end up in batch directives must be single, printable lines."""
    for key, val in values.items():
        if any(ord(ch) < 32 for ch in f"{key}{val}"):
            raise ValueError(f"{what} {key!r} contains a newline or control character")
    return values


def _name_of(what: str) -> Conv:
    return lambda v: check_name(to_str(v), what)


def _label_of(what: str) -> Conv:
    return lambda v: check_label(to_str(v), what)


def _globs(v: Any) -> list[str]:
    """Declared files: relative globs that stay inside the work directory."""
    out = str_list(v)
    for g in out:
        if not g or g.startswith("/") or ".." in g.split("/"):
            raise ValueError(f"{g!r} must be a path or glob relative to the work directory, "
                             "without '..'")
    return out


def _unit_interval(v: Any) -> float:
    x = to_float(v)
    if not 0.0 <= x <= 1.0:
        raise ValueError("alpha must be between 0 and 1")
    return x


def _at_most(most: int, what: str) -> Conv:
    def conv(v: Any) -> int:
        n = to_int(v)
        if not 0 <= n <= most:
            raise ValueError(f"{what} must be between 0 and {most}")
        return n

    return conv


def _single_lines(v: Any) -> dict[str, str]:
    return _check_values(str_dict(v), "resource")


_opt_str = optional(to_str)


@dataclass(kw_only=True)
class Resources(Checked):
    """Scheduler-agnostic resource request of one activity."""

    cpu: float = 1.0
    memory: int | None = None  # bytes
    time_limit: float | None = None  # seconds
    gpus: int = 0
    node_selector: dict[str, str] = field(default_factory=dict)
    # partition/queue/account/qos and namespaced passthrough keys (`slurm.constraint`).
    extra: dict[str, str] = field(default_factory=dict)

    _conv: ClassVar[dict[str, Conv]] = {
        "cpu": to_float, "memory": optional(to_int), "time_limit": optional(to_float),
        "gpus": _at_most(MAX_GPUS, "gpus"), "node_selector": _single_lines,
        "extra": _single_lines,
    }


@dataclass(kw_only=True)
class Volume(Checked):
    host: str
    container: str

    _conv: ClassVar[dict[str, Conv]] = {"host": to_str, "container": to_str}

    @classmethod
    def parse(cls, text: str) -> Volume:
        """`host:container`, or a single path mounted at the same place."""
        host, sep, container = text.partition(":")
        container = container.split(":", 1)[0]  # `host:container:ro` — the mode is dropped
        if not host or (sep and not container):
            raise ValueError(f"volume {text!r} is not 'host:container' or a single path")
        return cls(host=host.rstrip("/") or "/", container=(container or host).rstrip("/") or "/")


@dataclass(kw_only=True)
class StoragePolicy(Checked):
    type: str = "default"  # default | distributed | standalone
    storage_class_name: str | None = None
    storage_size: int | None = None  # bytes
    access_modes: list[str] = field(default_factory=list)
    akoflow_policy: str | None = None
    nfs_server: str | None = None

    _conv: ClassVar[dict[str, Conv]] = {
        "type": one_of("default", "distributed", "standalone"),
        "storage_class_name": _opt_str, "storage_size": optional(to_int),
        "access_modes": str_list, "akoflow_policy": _opt_str, "nfs_server": _opt_str,
    }


def check_url(url: str) -> str | None:
    """Why `url` cannot be a webhook target, or None: http(s), a host, a valid port. Checked
    when the spec is loaded, so a bad URL is a spec error rather than a failure of every
    later delivery."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"unsupported URL scheme {parts.scheme or url.split(':', 1)[0]!r} (http or https)"
    if not parts.hostname:
        return "the URL has no host"
    if port == 0:
        return "the URL's port is 0"
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "the URL contains whitespace or a control character"
    return None


def _webhook_url(v: Any) -> str:
    url = to_str(v)
    problem = check_url(url)
    if problem:
        raise ValueError(f"webhook url {url!r}: {problem}")
    return url


@dataclass(kw_only=True)
class Webhook(Checked):
    name: str
    url: str
    secret: str | None = None

    _conv: ClassVar[dict[str, Conv]] = {"name": to_str, "url": _webhook_url,
                                        "secret": _opt_str}


@dataclass(kw_only=True)
class ActivitySpec(Checked):
    name: str
    run: str
    image: str | None = None
    runtime: str | None = None
    resources: Resources = field(default_factory=Resources)
    depends_on: list[str] = field(default_factory=list)
    keep_disk: bool = False
    mount_path: str | None = None
    alpha: float | None = None
    retries: int = 0
    retry_memory_factor: float = 1.0
    env: dict[str, str] = field(default_factory=dict)
    cache: bool = False
    estimate: float | None = None  # declared run time (seconds) for placement, before history
    # Declared files, globs relative to the work directory: a missing input fails the
    # attempt before it runs (MISSING_INPUT), a missing output after (MISSING_OUTPUT).
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # Line in the source file, for error messages after loading (None for Python-built specs).
    line: int | None = None

    _hidden: ClassVar[frozenset[str]] = frozenset({"line"})
    _conv: ClassVar[dict[str, Conv]] = {
        "name": _label_of("activity"), "run": to_str, "image": _opt_str, "runtime": _opt_str,
        "resources": nested(Resources), "depends_on": str_list, "keep_disk": to_bool,
        "mount_path": _opt_str, "alpha": optional(_unit_interval),
        "retries": _at_most(MAX_RETRIES, "retries"), "retry_memory_factor": to_float,
        "env": str_dict, "cache": to_bool,
        "estimate": optional(to_float), "line": optional(to_int),
        "inputs": _globs, "outputs": _globs,
    }


@dataclass(kw_only=True)
class WorkflowSpec(Checked):
    name: str
    runtime: str = "local"
    schedule: str | None = None
    image: str | None = None
    namespace: str = "akoflow"
    mount_path: str | None = None
    volumes: list[Volume] = field(default_factory=list)
    storage_policy: StoragePolicy = field(default_factory=StoragePolicy)
    webhooks: list[Webhook] = field(default_factory=list)
    alpha: float = 0.5
    activities: list[ActivitySpec]
    sample_interval: float | None = None  # seconds between psutil samples of each task
    license: str | None = None  # of the run's products (RO-Crate): SPDX id or URL
    # Files and directories (relative to the spec) that `submit --site SSH-SITE` uploads into
    # the work directory, at the same relative paths.
    inputs: list[str] = field(default_factory=list)
    # The original text the spec came from (YAML), kept for provenance and webhooks.
    raw: str = ""
    source: str | None = None

    _hidden: ClassVar[frozenset[str]] = frozenset({"raw", "source"})
    _conv: ClassVar[dict[str, Conv]] = {
        "name": _label_of("workflow"), "activities": nested_list(ActivitySpec, min_length=1),
        "runtime": _name_of("runtime/namespace"), "schedule": _opt_str, "image": _opt_str,
        "namespace": _name_of("runtime/namespace"), "mount_path": _opt_str,
        "volumes": nested_list(Volume), "storage_policy": nested(StoragePolicy),
        "webhooks": nested_list(Webhook), "alpha": _unit_interval, "raw": to_str,
        "source": _opt_str, "sample_interval": optional(to_float), "license": _opt_str,
        "inputs": str_list,
    }

    def activity(self, name: str) -> ActivitySpec:
        for a in self.activities:
            if a.name == name:
                return a
        raise KeyError(name)

    def effective_image(self, act: ActivitySpec) -> str | None:
        return act.image or self.image

    def effective_runtime(self, act: ActivitySpec) -> str:
        return act.runtime or self.runtime

    def effective_alpha(self, act: ActivitySpec) -> float:
        return self.alpha if act.alpha is None else act.alpha


def resources_from_fields(
    cpu: Any = None,
    memory: Any = None,
    time_limit: Any = None,
    gpus: Any = None,
    node_selector: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> Resources:
    """Build `Resources` from user-facing unit strings (`500m`, `4Gi`, `1:30:00`)."""
    return Resources(
        cpu=1.0 if cpu is None else parse_cpu(cpu),
        memory=None if memory is None else parse_memory(memory),
        time_limit=None if time_limit is None else parse_duration(time_limit),
        gpus=0 if gpus is None else int(gpus),
        node_selector=dict(node_selector or {}),
        extra=dict(extra or {}),
    )
