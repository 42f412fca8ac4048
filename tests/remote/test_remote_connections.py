"""Exactly one SSH connection per command (counted in sshd's own log), and the OpenSSH
master: `require_master` never prompts and says what to run; `remote login` opens one that
later commands reuse without connecting again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import EXAMPLES
from tests.remote.laptop import TRANSPORTS, Laptop

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_connection_per_command(laptop: Laptop, transport: str) -> None:
    site = laptop.site("clu", transport)
    target = laptop.cluster.target
    before = target.accepted()
    ref = laptop.ak("submit", str(EXAMPLES / "diamond.yaml"), "--site", site,
                    check=True).stdout.strip()
    assert target.accepted() == before + 1
    laptop.wait_status(ref)
    out = laptop.root / "out"
    commands = [
        ["list", "--site", site], ["status", ref], ["describe", ref], ["logs", ref],
        ["logs", ref, "--follow"], ["logs", ref, "--activity", "join", "--status", "FINISHED"],
        ["metrics", ref], ["metrics", ref, "--samples"], ["files", ref, "--generated"],
        ["explain", ref, "join"], ["prov", ref, "--format", "prov-n"],
        ["lineage", ref, "--format", "dot"], ["report", ref, "-o", str(out / "r.html")],
        ["crate", ref, "-o", str(out / "c.zip")], ["cancel", ref],
        ["retry", ref, "--no-start"], ["pull", ref],
    ]
    out.mkdir()
    for args in commands:
        n = target.accepted()
        laptop.ak(*args, check=True)
        assert target.accepted() == n + 1, args


@pytest.fixture
def master(laptop: Laptop) -> Iterator[str]:
    site = laptop.site("mfa", "openssh", require_master=True)
    yield site
    laptop.ak("remote", "logout", site)  # never leave an ssh master behind


def test_require_master_never_prompts_and_login_opens_one(laptop: Laptop,
                                                          master: str) -> None:
    refused = laptop.ak("list", "--site", master)
    assert refused.returncode == 1
    assert f"run `akoflow remote login {master}`" in refused.stderr
    login = laptop.ak("remote", "login", master, check=True)
    assert "master connection open" in login.stdout
    target = laptop.cluster.target
    n = target.accepted()
    for _ in range(3):
        laptop.ak("list", "--site", master, check=True)
    assert target.accepted() == n  # through the master: no new connection at all
    assert laptop.ak("remote", "login", laptop.site("pk", "paramiko")).returncode == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_paramiko_missing_is_said_before_anything(laptop: Laptop, transport: str) -> None:
    """Without the `ssh` extra, a paramiko site says what to install; auto falls back to
    the system ssh."""
    site = laptop.site("clu", transport if transport == "paramiko" else "auto")
    hide = laptop.root / "hide"
    hide.mkdir()
    # what an uninstalled package looks like to find_spec and import
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['paramiko'] = None\n")
    proc = laptop.ak("list", "--site", site, env={"PYTHONPATH": str(hide)})
    if transport == "paramiko":
        assert proc.returncode == 1 and "pip install 'akoflow[ssh]'" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
