"""What one attempt asks for, typed: the activity's resources as the manifest stores them
(checked on the way in by `spec.models.Resources`), handed to adapters as fields instead of
string keys into a dict."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Resources:
    """A scheduler-agnostic resource request. Values are kept as the manifest has them, so
    `from_json(x).to_json() == x` for every request it stores (all six keys): task.sh's
    header, the attempt row and the job scripts are byte for byte what they were."""

    cpu: float = 1.0
    memory: int | None = None  # bytes
    time_limit: float | None = None  # seconds
    gpus: int = 0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    # partition/queue/account/qos, and `<scheduler>.<option>` keys passed through as options
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any] | None) -> Resources:
        """From the manifest's `resources` column (its text, or that text parsed); a key it
        lacks takes its default."""
        value: Mapping[str, Any] = (json.loads(data) if isinstance(data, str) else data) or {}
        return cls(
            cpu=value.get("cpu", 1.0), memory=value.get("memory"),
            time_limit=value.get("time_limit"), gpus=value.get("gpus") or 0,
            node_selector=dict(value.get("node_selector") or {}),
            extra=dict(value.get("extra") or {}))

    def to_json(self) -> dict[str, Any]:
        """The form the manifest column and task.sh's header hold (keys in this order)."""
        return {"cpu": self.cpu, "memory": self.memory, "time_limit": self.time_limit,
                "gpus": self.gpus, "node_selector": dict(self.node_selector),
                "extra": dict(self.extra)}

    def with_extra(self, defaults: Mapping[str, str]) -> Resources:
        """`defaults` (a site's partition/account/...) under this request's own `extra`."""
        return replace(self, extra={**defaults, **self.extra})
