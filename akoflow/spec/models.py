"""Validated workflow model: what every front end (YAML, Python API, importers) compiles to.

Field names are snake_case in Python and camelCase in YAML (AkôFlow's style), through aliases.
Units are normalised here (cpu as float cores, memory and storage as bytes, time as seconds) so
nothing downstream parses strings again.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from akoflow.spec.units import parse_cpu, parse_duration, parse_memory

NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_NAME_LEN = 100


def check_name(value: str, what: str) -> str:
    """Reject names that could escape a path, a job name or a shell line."""
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


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )


class Resources(_Model):
    """Scheduler-agnostic resource request of one activity."""

    cpu: float = 1.0
    memory: int | None = None  # bytes
    time_limit: float | None = None  # seconds
    gpus: int = 0
    node_selector: dict[str, str] = Field(default_factory=dict)
    # partition/queue/account/qos and namespaced passthrough keys (`slurm.constraint`).
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator("node_selector", "extra")
    @classmethod
    def _single_line(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_values(v, "resource")


class Volume(_Model):
    host: str
    container: str

    @classmethod
    def parse(cls, text: str) -> Volume:
        """`host:container`, or a single path mounted at the same place."""
        host, sep, container = text.partition(":")
        container = container.split(":", 1)[0]  # `host:container:ro` — the mode is dropped
        if not host or (sep and not container):
            raise ValueError(f"volume {text!r} is not 'host:container' or a single path")
        return cls(host=host.rstrip("/") or "/", container=(container or host).rstrip("/") or "/")


class StoragePolicy(_Model):
    type: Literal["default", "distributed", "standalone"] = "default"
    storage_class_name: str | None = None
    storage_size: int | None = None  # bytes
    access_modes: list[str] = Field(default_factory=list)
    akoflow_policy: str | None = None
    nfs_server: str | None = None


class Webhook(_Model):
    name: str
    url: str
    secret: str | None = None


class ActivitySpec(_Model):
    name: str
    run: str
    image: str | None = None
    runtime: str | None = None
    resources: Resources = Field(default_factory=Resources)
    depends_on: list[str] = Field(default_factory=list)
    keep_disk: bool = False
    mount_path: str | None = None
    alpha: float | None = None
    retries: int = 0
    retry_memory_factor: float = 1.0
    env: dict[str, str] = Field(default_factory=dict)
    cache: bool = False
    estimate: float | None = None  # declared run time (seconds) for placement, before history
    # Line in the source file, for error messages after loading (None for Python-built specs).
    line: int | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "activity")

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 <= v <= 1.0:
            raise ValueError("alpha must be between 0 and 1")
        return v

    @field_validator("retries")
    @classmethod
    def _retries(cls, v: int) -> int:
        if v < 0:
            raise ValueError("retries must be >= 0")
        return v


class WorkflowSpec(_Model):
    name: str
    runtime: str = "local"
    schedule: str | None = None
    image: str | None = None
    namespace: str = "akoflow"
    mount_path: str | None = None
    volumes: list[Volume] = Field(default_factory=list)
    storage_policy: StoragePolicy = Field(default_factory=StoragePolicy)
    webhooks: list[Webhook] = Field(default_factory=list)
    alpha: float = 0.5
    activities: list[ActivitySpec] = Field(min_length=1)
    # The original text the spec came from (YAML), kept for provenance and webhooks.
    raw: str = Field(default="", exclude=True)
    source: str | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "workflow")

    @field_validator("runtime", "namespace")
    @classmethod
    def _safe(cls, v: str) -> str:
        return check_name(v, "runtime/namespace")

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("alpha must be between 0 and 1")
        return v

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
