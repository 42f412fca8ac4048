"""A real dockerd on this host, and a local busybox image built without any registry.

``ensure_docker()`` installs Debian's ``docker.io`` if ``dockerd`` is missing, starts
``dockerd`` if it does not answer (first with its defaults; if it dies at start, again with
``--bridge=none --iptables=false --ip6tables=false``: the tests' containers need no network),
and builds ``akoflow-busybox:test`` by ``docker import`` of a tarball holding Debian's
``busybox-static`` and its applet links, so no registry is ever contacted. Idempotent: a
running daemon and an existing image are reused.

Run ``python -m tests.infra.docker`` (as root) to bring it up by hand.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.infra._common import (
    LOG_DIR,
    InfraError,
    apt_install,
    file_lock,
    missing_commands,
    run,
    tail,
    wait_for,
)

IMAGE = "akoflow-busybox:test"
BUSYBOX = Path("/bin/busybox")
DOCKERD_LOG = LOG_DIR / "dockerd.out"
FALLBACK_FLAGS = ("--bridge=none", "--iptables=false", "--ip6tables=false")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class DockerHost:
    """What the tests need to know about the daemon and the test image."""

    cli: str
    server_version: str
    ncpu: int
    mem_total: int
    image: str
    image_id: str
    flags: tuple[str, ...]
    startup_seconds: float

    def docker(self, *args: str, check: bool = True, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
        return run([self.cli, *args], check=check, timeout=timeout)

    def containers(self, *labels: str) -> list[str]:
        """Names of containers (any state) carrying all of ``labels`` (``k`` or ``k=v``)."""
        argv = ["ps", "-a", "--format", "{{.Names}}"]
        for label in labels:
            argv += ["--filter", f"label={label}"]
        return [n for n in self.docker(*argv).stdout.split() if n]

    def inspect(self, name: str) -> dict[str, object]:
        data = json.loads(self.docker("inspect", name).stdout)
        return dict(data[0])

    def remove(self, *labels: str) -> None:
        names = self.containers(*labels)
        if names:
            self.docker("rm", "-f", *names, check=False)


def _cli() -> str:
    found = shutil.which("docker")
    if found is None:
        raise InfraError("no `docker` command on PATH after installing docker.io")
    return found


def daemon_up() -> bool:
    cli = shutil.which("docker")
    if cli is None:
        return False
    proc = run([cli, "version", "--format", "{{.Server.Version}}"], check=False, timeout=20)
    return proc.returncode == 0 and bool(proc.stdout.strip())


def _start_dockerd(flags: tuple[str, ...], timeout: float) -> bool:
    """Start dockerd (it stays in the foreground: no double fork); True once it answers."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with DOCKERD_LOG.open("ab") as fh:
        fh.write(f"\n=== {time.strftime('%F %T')} dockerd {' '.join(flags)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(["dockerd", *flags], stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon_up():
            return True
        if proc.poll() is not None:
            return False  # died at start: the caller may retry with other flags
        time.sleep(0.25)
    raise InfraError(f"dockerd did not answer within {timeout:.0f}s\n{tail(DOCKERD_LOG)}")


def _install() -> None:
    if missing_commands(["dockerd", "docker", "containerd", "runc"]):
        apt_install(["docker.io"])
    if not _static_busybox():
        apt_install(["busybox-static"])
    still = missing_commands(["dockerd", "docker", "containerd", "runc"])
    if still or not _static_busybox():
        raise InfraError(f"after installing docker.io and busybox-static, still missing: "
                         f"{still or [str(BUSYBOX) + ' (static)']}")


def _static_busybox() -> bool:
    """Debian's busybox-static: a binary that runs in an empty root file system."""
    if not BUSYBOX.exists():
        return False
    out = run(["dpkg-query", "-W", "-f", "${Status}", "busybox-static"], check=False)
    return "install ok installed" in out.stdout


def _rootfs_tar() -> bytes:
    """bin/busybox plus one link per applet, /tmp, and a minimal /etc/passwd."""
    applets = run([str(BUSYBOX), "--list"]).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777)):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for name in sorted(set(applets) - {"busybox"}):
            info = tarfile.TarInfo(f"bin/{name}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size, info.mode = len(passwd), 0o644
        tar.addfile(info, io.BytesIO(passwd))
    return buf.getvalue()


def image_id(cli: str, image: str = IMAGE) -> str | None:
    proc = run([cli, "image", "inspect", "--format", "{{.Id}}", image], check=False)
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def build_image(cli: str, image: str = IMAGE) -> str:
    """`docker import` the busybox root file system as ``image``; returns its id."""
    with tempfile.TemporaryDirectory(prefix="akoflow-busybox-") as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        tar_path.write_bytes(_rootfs_tar())
        run([cli, "import", "--change", f"ENV PATH={IMAGE_PATH}", "--change", 'CMD ["sh"]',
             str(tar_path), image], timeout=120)
    found = image_id(cli, image)
    if found is None:
        raise InfraError(f"`docker import` reported success but {image} is not there")
    return found


def _info(cli: str) -> dict[str, object]:
    out = run([cli, "info", "--format", "{{json .}}"]).stdout
    data: dict[str, object] = json.loads(out)
    return data


def ensure_docker(timeout: float = 90) -> DockerHost:
    """Install, start and provision dockerd as needed; return a handle on it (root only)."""
    if os.geteuid() != 0:
        raise InfraError("ensure_docker() must run as root (it installs docker.io and starts "
                         "dockerd)")
    t0 = time.monotonic()
    flags: tuple[str, ...] = ()
    with file_lock("docker"):
        _install()
        if not daemon_up() and not _start_dockerd((), timeout):
            flags = FALLBACK_FLAGS
            if not _start_dockerd(flags, timeout):
                raise InfraError(f"dockerd exits at start, even with {' '.join(flags)}\n"
                                 f"{tail(DOCKERD_LOG)}")
        cli = _cli()
        wait_for(daemon_up, timeout=timeout, what="dockerd to answer",
                 details=lambda: tail(DOCKERD_LOG))
        found = image_id(cli) or build_image(cli)
        info = _info(cli)
    return DockerHost(
        cli=cli, server_version=str(info.get("ServerVersion")), ncpu=int(str(info["NCPU"])),
        mem_total=int(str(info["MemTotal"])), image=IMAGE, image_id=found, flags=flags,
        startup_seconds=time.monotonic() - t0,
    )


def main() -> None:
    host = ensure_docker()
    out = host.docker("run", "--rm", "--network", "none", host.image, "sh", "-c",
                      "echo busybox $(busybox | head -1 | cut -d' ' -f2) in a container")
    print(f"dockerd {host.server_version} ({host.ncpu} cpus, {host.mem_total} bytes), image "
          f"{host.image} {host.image_id[:19]}, flags {list(host.flags)}, up in "
          f"{host.startup_seconds:.2f}s: {out.stdout.strip()}")


if __name__ == "__main__":
    main()
