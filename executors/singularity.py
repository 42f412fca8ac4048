"""Singularity/Apptainer: the argv that runs a task's command inside a container image.

A container wraps the command rather than replacing the executor: `wrapper_argv` is the prefix
task.sh puts before `bash -eo pipefail -c SCRIPT`, whether task.sh runs under the local
executor or inside a Slurm job (where `akoflow worker` samples the container's processes as
its own children). `SingularityExecutor` is the local executor with every task wrapped.

From spython come the `exec` action (`Client._init_command`; spython hard-codes the binary
`singularity`, so argv[0] is replaced), the `--bind` pairs (`Client._generate_bind_list`) and
URI splitting (`spython.utils.split_uri`). `Client.execute` cannot hand back an argv without
running it (it runs `singularity --version`, then the command), so the binary is found here
with `shutil.which` and the flags follow the order `execute` uses: `--nv`, binds, options.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from akoflow.port import SpecError, TaskLaunch

from .local import LocalExecutor

RUNTIMES = frozenset({"singularity", "apptainer"})
BINARIES = ("apptainer", "singularity")  # looked up on PATH in this order
REGISTRY_SCHEMES = frozenset({"docker", "library", "oras", "shub"})
URL_SCHEMES = frozenset({"http", "https"})
IMAGE_SUFFIXES = (".sif", ".simg", ".img")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# [registry[:port]/]path/components[:tag][@sha256:digest], as docker and apptainer read it
_REF = re.compile(
    rf"^(?:[A-Za-z0-9.-]+(?::[0-9]{{1,5}})?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
_BINARY = re.compile(r"^[A-Za-z0-9_./+-]{1,4096}$")


def is_container_runtime(config: Mapping[str, Any]) -> bool:
    """True when a site profile says its tasks run in Singularity/Apptainer."""
    return str(config.get("container") or "").lower() in RUNTIMES


def container_binary(config: Mapping[str, Any]) -> str:
    """The site's `container_binary:`, else apptainer or singularity, whichever is on PATH.

    A batch site whose login node lacks the binary (a `module load` provides it on the
    compute nodes) must name it in its profile: it is not looked up then.
    """
    chosen = config.get("container_binary")
    if chosen:
        name = str(chosen)
        if not _BINARY.match(name):
            raise SpecError(f"container_binary {name!r} is not a command name or path")
        return name
    for name in BINARIES:
        if shutil.which(name):
            return name
    raise SpecError(f"site {config.get('name', '?')}: neither apptainer nor singularity is on "
                    "PATH; install one or set container_binary: in the site profile")


def image_ref(image: str) -> str:
    """The image as apptainer takes it; a bare `name:tag` means `docker://name:tag` (so one
    workflow runs under Docker, Kubernetes and Apptainer alike). Raises SpecError."""
    text = image.strip()
    if not text or any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise SpecError(f"image {image!r} is empty or contains whitespace")
    from spython.utils import split_uri  # type: ignore[import-untyped]

    scheme, rest = split_uri(text)
    if scheme:
        return _uri(text, scheme, rest)
    if text.startswith(("/", "./", "../", "~")) or text.endswith(IMAGE_SUFFIXES):
        return _image_path(text)
    if _REF.match(text):
        return f"docker://{text}"
    raise SpecError(f"image {image!r} is neither an image file path, a docker://, library://, "
                    "oras://, shub:// or http(s):// reference, nor a name like ubuntu:22.04")


def _uri(text: str, scheme: str, rest: str) -> str:
    if scheme in URL_SCHEMES:
        parts = urlsplit(text)
        if not parts.netloc or not parts.path.strip("/"):
            raise SpecError(f"image URL {text!r} has no host or no path")
        return text
    if scheme not in REGISTRY_SCHEMES:
        known = ", ".join(f"{s}://" for s in sorted(REGISTRY_SCHEMES | URL_SCHEMES))
        raise SpecError(f"image {text!r}: unknown scheme {scheme}://; known: {known}")
    ref = rest.lstrip("/") if scheme == "library" else rest
    if not _REF.match(ref):
        raise SpecError(f"image {text!r}: {ref!r} is not a valid {scheme} reference "
                        "(lowercase name[:tag][@sha256:digest])")
    return text


def _image_path(text: str) -> str:
    if not text.startswith("/"):
        raise SpecError(f"image path {text!r} must be absolute (tasks start in their work "
                        "directory, and batch jobs on another host)")
    if not os.path.exists(text):
        raise SpecError(f"image file {text} does not exist")
    if not (os.path.isfile(text) or os.path.isdir(text)):  # a .sif file or a sandbox dir
        raise SpecError(f"image {text} is neither a file nor a sandbox directory")
    return text


def _path(text: str, what: str) -> str:
    """An absolute path apptainer's `src:dst[:opts]` syntax can carry."""
    if not text.startswith("/") or ":" in text or "," in text or "\n" in text:
        raise SpecError(f"{what} {text!r} must be an absolute path without ':' or ','")
    return str(PurePosixPath(text))


def _site_binds(config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The profile's `binds:` (`src[:dst[:ro|rw]]`), bound into every container."""
    out = []
    for entry in config.get("binds") or []:
        src, _, tail = str(entry).partition(":")
        dst, _, mode = tail.partition(":")
        if mode not in ("", "ro", "rw"):
            raise SpecError(f"site bind {entry!r}: mode must be ro or rw")
        out.append((_path(src, "site bind source"), _path(dst or src, "site bind target"), mode))
    return out


def bind_specs(config: Mapping[str, Any], launch: TaskLaunch, mount: str) -> list[str]:
    """`src:dst[:mode]` for the work dir (at `mount`), the site's binds and the volumes."""
    work = _path(str(launch.work_dir), "work directory")
    specs = [f"{work}:{mount}"]
    seen = {mount: work}
    entries = _site_binds(config) + [
        (_path(h, "volume host path"), _path(c, "volume container path"), "")
        for h, c in launch.volumes]
    for src, dst, mode in entries:
        if dst == mount:  # the work dir already occupies its mount path
            continue
        if dst in seen:
            if seen[dst] == src:
                continue
            raise SpecError(f"activity {launch.activity}: {seen[dst]} and {src} are both "
                            f"mounted at {dst}")
        if not os.path.exists(src):
            raise SpecError(f"activity {launch.activity}: volume source {src} does not exist")
        seen[dst] = src
        specs.append(f"{src}:{dst}:{mode}" if mode else f"{src}:{dst}")
    return specs


def wrapper_argv(config: Mapping[str, Any], launch: TaskLaunch) -> list[str]:
    """`apptainer exec [--nv] --bind W:M ... --pwd M IMAGE`; task.sh appends the command.

    The work directory is bound at the launch's mount path (default: its host path) and is
    created here, since the bind source must exist. The host environment passes through
    (no --cleanenv): task.sh exports AKOFLOW_* and the activity's env before this runs.
    """
    if not launch.image:
        raise SpecError(f"activity {launch.activity} has no image to run in")
    image = image_ref(launch.image)
    binary = container_binary(config)
    mount = _path(launch.mount_path or str(launch.work_dir), "mount path")
    binds = bind_specs(config, launch, mount)
    launch.work_dir.mkdir(parents=True, exist_ok=True)
    from spython.main import Client  # type: ignore[import-untyped]

    cmd: list[str] = [str(a) for a in Client._init_command("exec")]
    cmd[0] = binary
    if int(launch.resources.gpus or 0) > 0:
        cmd.append("--nv")
    try:
        cmd += [str(a) for a in Client._generate_bind_list(binds)]
    except SystemExit:  # spython exits when a source vanished after our check
        raise SpecError(f"activity {launch.activity}: a bind source is missing: "
                        f"{' '.join(binds)}") from None
    cmd += ["--pwd", mount]
    if mount != str(PurePosixPath(str(launch.work_dir))):
        cmd += ["--env", f"AKOFLOW_WORKDIR={mount}"]  # the host path means nothing inside
    cmd.append(image)
    return cmd


class SingularityExecutor(LocalExecutor):
    """The local executor whose every task runs in its activity's container."""

    kind = "singularity"

    def __init__(self, site: str, config: Mapping[str, Any]) -> None:
        super().__init__(site, config)
        self._refused: dict[str, str] = {}  # attempt dir -> why its wrapper was refused

    def task_wrapper(self, launch: TaskLaunch) -> list[str]:
        # The dispatcher asks for the wrapper before its per-batch error handling; a refusal
        # is raised from `submit`, where it fails only this batch with SPEC_ERROR.
        try:
            if not launch.image:
                raise SpecError(f"activity {launch.activity} has no image: site {self.site} "
                                "runs every task in a container (set spec.image or image:)")
            return wrapper_argv(self.config, launch)
        except SpecError as exc:
            self._refused[str(launch.attempt_dir)] = str(exc)
            return []

    def submit(self, launches: Sequence[TaskLaunch]) -> list[str]:
        refused = [self._refused.pop(str(ln.attempt_dir), None) for ln in launches]
        reasons = list(dict.fromkeys(r for r in refused if r))
        if reasons:
            raise SpecError("; ".join(reasons))
        return super().submit(launches)
