"""What a Pegasus job needs from its catalogs: executable, container, environment, resources,
input replicas; read the way Pegasus's planner reads them, within what akoflow can run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

MB = 1024 * 1024
PROFILE_NAMESPACES = ("env", "pegasus", "condor", "globus")
# Pegasus profile keys akoflow maps; others (clustering, data configuration...) are ignored.
MAPPED = {
    "pegasus": {"cores", "memory", "runtime", "maxwalltime", "gpus", "project", "queue"},
    "condor": {"request_cpus", "request_memory", "request_gpus"},
    "globus": {"maxwalltime", "queue", "project"},
}
_CONDOR_MEM = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)I?B?\s*$", re.IGNORECASE)
_CONDOR_UNIT = {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CatalogError(ValueError):
    """A job's catalog entries cannot be used; the message names what is missing or wrong."""


@dataclass
class Profiles:
    """Profiles merged from the workflow, the transformation, its site and the job (later wins,
    as Pegasus ranks them); keys lower-cased for lookups except env's."""

    env: dict[str, str] = field(default_factory=dict)
    other: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignored: set[str] = field(default_factory=set)

    def add(self, profiles: dict[str, Any] | None) -> None:
        for ns, values in (profiles or {}).items():
            if ns.startswith("x-") or not isinstance(values, dict):
                continue
            for key, val in values.items():
                if key.startswith("x-"):
                    continue
                if ns == "env":
                    self.env[key] = _text(val)
                elif key.lower() in MAPPED.get(ns, set()):
                    self.other.setdefault(ns, {})[key.lower()] = val
                else:
                    self.ignored.add(f"{ns}.{key}")

    def get(self, *keys: str) -> tuple[str, Any] | None:
        """The first of `ns.key` that is set, with its name (for messages)."""
        for name in keys:
            ns, _, key = name.partition(".")
            if key in self.other.get(ns, {}):
                return name, self.other[ns][key]
        return None


def _text(val: Any) -> str:
    return str(val).lower() if isinstance(val, bool) else str(val)


def _number(name: str, val: Any, unit: str) -> float:
    try:
        x = float(val)
    except (TypeError, ValueError):
        raise CatalogError(f"profile {name} {val!r} is not a number ({unit})") from None
    if not x > 0 or x != x or x == float("inf"):
        raise CatalogError(f"profile {name} {val!r} must be a number greater than zero")
    return x


def resources(p: Profiles) -> tuple[dict[str, Any], float | None, list[str]]:
    """(Resources fields, expected run time, warnings) from pegasus/condor/globus profiles:
    cores, memory in MB (condor's may carry a unit), runtime in seconds, walltime in minutes."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    if got := p.get("pegasus.cores", "condor.request_cpus"):
        out["cpu"] = _number(*got, "cores")
    if got := p.get("pegasus.memory"):
        out["memory"] = int(_number(*got, "MB") * MB)
    elif got := p.get("condor.request_memory"):
        m = _CONDOR_MEM.match(str(got[1]))
        if m:
            out["memory"] = int(float(m.group(1)) * _CONDOR_UNIT[m.group(2).upper()] * MB)
        else:
            notes.append(f"profile condor.request_memory {got[1]!r} is not a size: ignored")
    if got := p.get("pegasus.maxwalltime", "globus.maxwalltime"):
        out["time_limit"] = _number(*got, "minutes") * 60
    if got := p.get("pegasus.gpus", "condor.request_gpus"):
        out["gpus"] = int(_number(*got, "GPUs"))
    extra = {}
    if got := p.get("pegasus.queue", "globus.queue"):
        extra["queue"] = _text(got[1])
    if got := p.get("pegasus.project", "globus.project"):
        extra["account"] = _text(got[1])
    if extra:
        out["extra"] = extra
    runtime = p.get("pegasus.runtime")
    return out, (_number(*runtime, "seconds") if runtime else None), notes


def find_transformation(catalog: Iterable[dict[str, Any]], job: dict[str, Any]
                        ) -> dict[str, Any]:
    """The catalog entry for a job: same name, and namespace/version when the job gives them."""
    name, ns, version = job["name"], job.get("namespace"), job.get("version")
    found = [t for t in catalog if t.get("name") == name
             and (ns is None or t.get("namespace") == ns)
             and (version is None or str(t.get("version")) == str(version))]
    if not found:
        full = "::".join(filter(None, [ns, name])) + (f":{version}" if version else "")
        raise CatalogError(f"transformation {full!r} is not in the transformation catalog")
    # The most specific entry the job did not rule out: one without namespace/version first.
    found.sort(key=lambda t: (t.get("namespace") is not None, t.get("version") is not None))
    return found[0]


def pick_site(tx: dict[str, Any]) -> dict[str, Any]:
    """The transformation's `local` site entry if any (akoflow runs jobs where it runs), else
    its first."""
    sites: list[dict[str, Any]] = tx["sites"]
    return next((s for s in sites if s.get("name") == "local"), sites[0])


def executable(tx: dict[str, Any], site: dict[str, Any]) -> str:
    """The path to run: an installed PFN as it is, a stageable one when it is a local file."""
    pfn = str(site["pfn"])
    path = local_path(pfn)
    if path is not None:
        return path
    if site.get("type") == "installed":
        return pfn
    raise CatalogError(f"transformation {tx['name']!r}: stageable executable {pfn!r} is not a "
                       "file:// URL or a path; install it and mark the site entry 'installed'")


def local_path(pfn: str) -> str | None:
    """`file:///a/b` or `/a/b` → `/a/b`; None for other URLs (http://, gsiftp://...)."""
    if pfn.startswith("/"):
        return pfn
    url = urlparse(pfn)
    if url.scheme == "file" and url.netloc in ("", "localhost"):
        return unquote(url.path)
    return None


def container_image(containers: dict[str, dict[str, Any]], name: str) -> str:
    """A container entry's image as akoflow's runtimes take it: `docker://x` → `x` (the Docker
    runtime wants a bare name, Singularity reads one as docker://), `file:///a.sif` → `/a.sif`."""
    if name not in containers:
        raise CatalogError(f"container {name!r} is not in the transformation catalog")
    image = str(containers[name]["image"])
    if image.startswith("docker://"):
        return image.removeprefix("docker://")
    return local_path(image) or image


def replica_pfn(replica: dict[str, Any]) -> str | None:
    """The PFN to stage an input from: a local file on site `local` first, then any local file,
    then the first PFN (which the stage-in job reports as not stageable)."""
    pfns: list[dict[str, Any]] = replica.get("pfns") or []
    local = [p for p in pfns if local_path(str(p["pfn"])) is not None]
    best = sorted(local, key=lambda p: p.get("site") != "local") or pfns
    return str(best[0]["pfn"]) if best else None
