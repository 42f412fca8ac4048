"""Site profiles: what a cluster (or this machine) needs, merged from packaged and user YAML.

Search order, later wins: packaged `site-configs/`, `$AKOFLOW_HOME/sites/` (profiles sent
with remote submissions), `~/.config/akoflow/sites/`,
`./site-configs/`, then `$AKOFLOW_SITES` (a directory). A profile may `extends:` another.
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from akoflow.port import Executor, ExecutorError, akoflow_home, executor_class
from akoflow.site_keys import executor_keys, problems

MAX_EXTENDS_DEPTH = 10
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Parsed profiles by file, reused while the file is unchanged: every `akoflow` command
# looks a site up at least twice (check, then the resolver), and parsing all the packaged
# profiles each time cost tens of milliseconds per command.
_parsed: dict[Path, tuple[tuple[int, int], Any]] = {}


class SiteError(Exception):
    """Unknown site, or a profile that cannot be read."""


def _search_dirs() -> list[Path]:
    dirs: list[Path] = []
    packaged = resources.files("akoflow.site_configs")
    dirs.append(Path(str(packaged)))
    # Profiles laptops sent with their submissions (akoflow.remote), on the cluster's side.
    dirs.append(akoflow_home() / "sites")
    dirs.append(Path.home() / ".config" / "akoflow" / "sites")
    dirs.append(Path.cwd() / "site-configs")
    env = os.environ.get("AKOFLOW_SITES")
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    return dirs


def _raw_profiles() -> dict[str, tuple[dict[str, Any], Path]]:
    found: dict[str, tuple[dict[str, Any], Path]] = {}
    for d in _search_dirs():
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.yaml")):
            data = _parse(f)
            if not isinstance(data, dict):
                raise SiteError(f"{f}: a site profile must be a mapping")
            name = str(data.get("name") or f.stem)
            found[name] = (data, f)
    return found


def _parse(f: Path) -> Any:
    try:
        st = f.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        hit = _parsed.get(f)
        if hit is not None and hit[0] == stamp:
            return copy.deepcopy(hit[1])  # callers may change what they get
        data = yaml.load(f.read_text(), Loader=_Loader)
    except (OSError, yaml.YAMLError) as exc:
        raise SiteError(f"{f}: cannot read site profile: {exc}") from None
    _parsed[f] = (stamp, copy.deepcopy(data))
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_site(name: str) -> dict[str, Any]:
    """The merged profile of site `name` (with `extends` resolved)."""
    raw = _raw_profiles()
    chain: list[str] = []
    current = name
    while True:
        if current not in raw:
            known = ", ".join(sorted(raw)) or "none"
            where = f" (extended by {chain[-1]})" if chain else ""
            raise SiteError(f"unknown site {current!r}{where}; known sites: {known}")
        if current in chain or len(chain) > MAX_EXTENDS_DEPTH:
            raise SiteError(f"site {name!r}: `extends` loops through {' -> '.join(chain)}")
        chain.append(current)
        parent = raw[current][0].get("extends")
        if not parent:
            break
        current = str(parent)
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for n in reversed(chain):
        merged = _merge(merged, raw[n][0])
        for path, src in _origins(raw[n][0], str(raw[n][1])).items():
            parts = path.split(".")
            for i in range(1, len(parts)):  # an empty mapping filled in by a later file
                sources.pop(".".join(parts[:i]), None)
            for old in [k for k in sources if k.startswith(path + ".")]:
                del sources[old]  # a mapping replaced by a plain value
            sources[path] = src
    merged["name"] = name
    merged.pop("extends", None)
    merged["_source"] = str(raw[name][1])
    if "executor" not in merged:
        raise SiteError(f"site {name!r} ({merged['_source']}) names no executor")
    _check([raw[n] for n in chain], str(merged["executor"]))
    merged["_sources"] = sources
    return merged


def _origins(data: dict[str, Any], source: str, prefix: str = "") -> dict[str, str]:
    """Which file set each value: `key` or `block.key` for mappings merged key by key."""
    out: dict[str, str] = {}
    for k, v in data.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_origins(v, source, f"{path}."))
        else:
            out[path] = source
    return out


def _check(files: list[tuple[dict[str, Any], Path]], executor: str) -> None:
    """Unknown keys and ill-typed core values of every file in an `extends` chain are one
    error naming file, line and key. An executor that cannot be loaded is left to the
    resolver, which says so."""
    try:
        extra = executor_keys(executor_class(executor))
    except (ExecutorError, ImportError):
        return
    issues = [i for data, path in files for i in problems(data, path, extra)]
    if issues:
        raise SiteError("\n".join(str(i) for i in issues))


def profile_sources(profile: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(dotted key, value, file it came from) for every leaf of a merged profile, as
    `akoflow sites show` prints them (the `extends` chain itself left out)."""
    rows = []
    for key, source in (profile.get("_sources") or {}).items():
        if key == "extends":
            continue
        value: Any = profile
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        rows.append((key, value, source))
    return rows


def list_sites() -> list[dict[str, Any]]:
    return [load_site(n) for n in sorted(_raw_profiles())]


class SiteResolver:
    """Maps an activity's runtime (a site name) to a configured executor, once per name."""

    def __init__(self, overrides: dict[str, dict[str, Any]] | None = None) -> None:
        self.overrides = overrides or {}
        self._cache: dict[str, Executor] = {}

    def __call__(self, runtime: str) -> Executor:
        ex = self._cache.get(runtime)
        if ex is None:
            profile = load_site(runtime)
            profile = _merge(profile, self.overrides.get(runtime, {}))
            profile = _merge(profile, self.overrides.get("*", {}))
            # `packing:` runs the site's activities inside allocations (dispatch/packing.py)
            kind = "pilot" if profile.get("packing") else str(profile["executor"])
            ex = executor_class(kind)(runtime, profile)
            self._cache[runtime] = ex
        return ex

    def check(self, runtime: str) -> None:
        """Raise SiteError early (at submit time, before anything is registered) for an
        unknown site or executor, or an executor whose optional packages are missing."""
        problem = site_problem(runtime)
        if problem:
            raise SiteError(problem)


def site_problem(runtime: str) -> str | None:
    """Why site `runtime` cannot run here (unknown, or its executor cannot load or lacks a
    package), or None. Raises SiteError for an unreadable profile."""
    profile = load_site(runtime)
    try:
        cls = executor_class(str(profile["executor"]))
    except ExecutorError as exc:
        return f"site {runtime!r}: {exc}"
    missing = cls.missing()
    return f"site {runtime!r}: {missing}" if missing else None
