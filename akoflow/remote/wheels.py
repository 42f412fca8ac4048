"""The wheels `akoflow remote setup` installs on a cluster that may have no route to any
package index: this akoflow, packed from the installed package, and every core dependency.

A dependency is repacked from its installed files (its RECORD and WHEEL tags, as pip left
them) when the cluster can run that build: a pure-Python one always, a compiled one when the
cluster's Python (implementation, version), platform and glibc fit its tags. Otherwise its
wheel for the cluster's platform is downloaded here with `pip download` (the laptop has an
index; the cluster needs none). pip itself travels as a wheel too, so the venv needs no
ensurepip. Wheels are built deterministically, so an unchanged set has the same digests and
a second setup sends nothing.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata as md
import io
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

from akoflow import __version__
from akoflow.remote.config import RemoteError

_STAMP = (2020, 1, 1, 0, 0, 0)
_SKIP_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
_PACKAGES = {"akoflow": None, "akoflow.executors": "executors",
             "akoflow.templates": "templates", "akoflow.site_configs": "site_configs"}
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}

try:  # a laptop's venv has pip (and with it packaging) even when packaging is not installed
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
except ImportError:  # pragma: no cover
    from pip._vendor.packaging.markers import default_environment  # type: ignore
    from pip._vendor.packaging.requirements import Requirement  # type: ignore


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _zip(files: dict[str, bytes], info_dir: str) -> bytes:
    """A wheel archive with a fresh RECORD, byte-identical for identical files."""
    record = []
    for arc, data in sorted(files.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{arc},sha256={digest.decode()},{len(data)}")
    record.append(f"{info_dir}/RECORD,,")
    files = {**files, f"{info_dir}/RECORD": ("\n".join(record) + "\n").encode()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, data in sorted(files.items()):
            info = zipfile.ZipInfo(arc, _STAMP)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def akoflow_wheel() -> tuple[str, bytes]:
    """This akoflow as a pure-Python wheel, from the package as imported (a regular or an
    editable install alike)."""
    dist = md.distribution("akoflow")
    info = f"akoflow-{__version__}.dist-info"
    files: dict[str, bytes] = {}
    roots = {name: Path(str(importlib.import_module(name).__file__)).parent
             for name in _PACKAGES}
    nested = {roots[n].resolve() for n in _PACKAGES if n != "akoflow"}
    for name, root in roots.items():
        prefix = "akoflow" if name == "akoflow" else f"akoflow/{_PACKAGES[name]}"
        for path in sorted(root.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                continue
            if name == "akoflow" and any(p in nested for p in path.resolve().parents):
                continue
            files[f"{prefix}/{path.relative_to(root).as_posix()}"] = path.read_bytes()
    meta = dist.read_text("METADATA") or str(dist.metadata)
    files[f"{info}/METADATA"] = meta.encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: akoflow\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{info}/entry_points.txt"] = (dist.read_text("entry_points.txt") or "").encode()
    return f"akoflow-{__version__}-py3-none-any.whl", _zip(files, info)


def _tags(dist: md.Distribution) -> list[str]:
    text = dist.read_text("WHEEL") or ""
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("Tag:")] or ["py3-none-any"]


def _fits(tags: list[str], probe: dict[str, Any]) -> bool:
    """Whether the cluster can run this build of a dependency."""
    if all(t.endswith("-none-any") for t in tags):
        return True
    same = (tuple(probe["version_info"]) == sys.version_info[:2]
            and probe["platform"] == sysconfig.get_platform()
            and probe["implementation"] == sys.implementation.name)
    if not same:
        return False
    libc = probe.get("libc") or ["", ""]
    if libc[0] != "glibc":
        return not any("linux" in t for t in tags)
    have = tuple(int(x) for x in str(libc[1]).split(".")[:2])
    needs = []
    for t in tags:
        plat = t.split("-")[-1]
        m = re.match(r"manylinux_(\d+)_(\d+)_", plat)
        if m:
            needs.append((int(m.group(1)), int(m.group(2))))
        elif plat.split("_")[0] in _LEGACY:
            needs.append(_LEGACY[plat.split("_")[0]])
    return not needs or min(needs) <= have


def repack(dist: md.Distribution) -> tuple[str, bytes]:
    """An installed distribution back into its wheel (installed files, RECORD-listed)."""
    name, version = dist.metadata["Name"], dist.version
    files: dict[str, bytes] = {}
    info = ""
    for f in dist.files or []:
        arc = f.as_posix()
        if arc.startswith("..") or "__pycache__" in arc or arc.endswith((".pyc", ".pyo")):
            continue
        if ".dist-info/" in arc:
            info = arc.split("/", 1)[0]
            if arc.split("/", 1)[1] in _SKIP_INFO:
                continue
        path = Path(str(dist.locate_file(f)))
        if path.is_file():
            files[arc] = path.read_bytes()
    if not info:
        raise RemoteError(f"cannot pack {name} {version} for the cluster (not installed "
                          "from a wheel)")
    tags = [t.split("-") for t in _tags(dist)]
    parts = [".".join(dict.fromkeys(t[i] for t in tags)) for i in range(3)]
    return f"{_norm(name)}-{version}-{'-'.join(parts)}.whl", _zip(files, info)


def _closure(probe: dict[str, Any]) -> list[md.Distribution]:
    """akoflow's core dependencies, recursively, markers judged for the cluster's Python."""
    env = default_environment()
    vi = probe["version_info"]
    env.update({"python_version": f"{vi[0]}.{vi[1]}", "python_full_version": probe["python"],
                "platform_machine": probe["machine"], "platform_system": probe["system"],
                "sys_platform": "linux" if probe["system"] == "Linux" else env["sys_platform"],
                "implementation_name": probe["implementation"]})
    found: dict[str, md.Distribution] = {}
    todo: list[tuple[Any, frozenset[str]]] = [
        (Requirement(r), frozenset()) for r in md.requires("akoflow") or []]
    while todo:
        req, extras = todo.pop()
        if req.marker is not None and not any(
                req.marker.evaluate({**env, "extra": e}) for e in (extras or {""})):
            continue
        key = _norm(req.name)
        if key in found:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            raise RemoteError(f"{req.name} (needed by akoflow) is not installed here; "
                              "reinstall akoflow") from None
        found[key] = dist
        todo.extend((Requirement(r), frozenset(req.extras)) for r in dist.requires or [])
    return [found[k] for k in sorted(found)]


def _download(dist: md.Distribution, probe: dict[str, Any], cache: Path) -> tuple[str, bytes]:
    """The cluster's build of `dist`, fetched here (the cluster may have no index)."""
    name, version = dist.metadata["Name"], dist.version
    vi = probe["version_info"]
    machine = probe["machine"]
    platforms = [f"manylinux_2_{n}_{machine}" for n in (28, 17, 12, 5)] + [f"linux_{machine}"]
    dest = cache / f"cp{vi[0]}{vi[1]}-{machine}"
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--python-version", f"{vi[0]}.{vi[1]}",
            "--implementation", "cp", *[a for p in platforms for a in ("--platform", p)],
            "-d", str(dest), f"{name}=={version}"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    hits = sorted(dest.glob(f"{_norm(name)}-{version}-*.whl")) if dest.exists() else []
    if proc.returncode != 0 or not hits:
        raise RemoteError(f"{name} {version} built here does not run on the cluster "
                          f"(Python {probe['python']}, {probe['platform']}) and its wheel for "
                          f"there could not be downloaded: {proc.stderr.strip()[-200:]}")
    return hits[-1].name, hits[-1].read_bytes()


def wheel_set(probe: dict[str, Any], cache: Path) -> tuple[tuple[str, bytes], list[
        tuple[str, bytes]]]:
    """(pip's wheel, [akoflow's and its dependencies' wheels]) for this cluster."""
    wheels = [akoflow_wheel()]
    for dist in _closure(probe):
        fits = _fits(_tags(dist), probe)
        wheels.append(repack(dist) if fits else _download(dist, probe, cache))
    pip = md.distribution("pip")
    return repack(pip), wheels
