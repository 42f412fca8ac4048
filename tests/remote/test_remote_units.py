"""The pure pieces of remote use: the `ssh:` block, quoting for the remote shell, SITE:ID."""

from __future__ import annotations

import shlex
import subprocess

import click
import pytest

from akoflow import views
from akoflow.cli import route
from akoflow.remote import serve
from akoflow.remote.client import remote_path, serve_command
from akoflow.remote.config import from_profile, parse_hop
from akoflow.sites import SiteError


def _cfg(**ssh: object) -> object:
    return from_profile("c", {"executor": "local", "ssh": {"host": "login", **ssh}})


def test_query_names_agree() -> None:
    assert set(serve.QUERIES) == set(views.QUERIES)


def test_ssh_block_is_checked() -> None:
    with pytest.raises(SiteError, match=r"unknown key ssh\.hots"):
        _cfg(hots="x")
    with pytest.raises(SiteError, match="transport must be one of"):
        _cfg(transport="telnet")
    with pytest.raises(SiteError, match="no `ssh:` block"):
        from_profile("c", {"executor": "local"})
    cfg = from_profile("c", {"executor": "slurm", "_source": "x", "ssh": {
        "host": "alice@login:2200", "jump": "bob@bastion:22,gw"}})
    assert (cfg.target.user, cfg.target.host, cfg.target.port) == ("alice", "login", 2200)
    assert [h.spec for h in cfg.jumps] == ["bob@bastion:22", "gw:22"]
    assert cfg.profile == {"executor": "slurm"}  # what travels: no ssh block, no _source
    assert parse_hop("[::1]:2222").known_hosts_name == "[::1]:2222"


@pytest.mark.parametrize("home", ["~/.akoflow", "~/a b/$(touch x)", "/abs/'q'/;rm -rf"])
def test_remote_command_is_quoted(home: str, tmp_path: object) -> None:
    cmd = serve_command(_cfg(remote_home=home))  # type: ignore[arg-type]
    # what a POSIX shell makes of it: exactly these words, nothing run
    words = subprocess.run(["sh", "-c", f"HOME=/h; printf '%s\\n' {cmd}"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    expected_home = home.replace("~", "/h", 1) if home.startswith("~/") else home
    assert words == [f"{expected_home}/venv/bin/python", "-I", "-m",
                     "akoflow.remote.serve", "--home", home]
    assert remote_path("~") == '"$HOME"' and shlex.split(remote_path("/x y")) == ["/x y"]


def test_site_id_references() -> None:
    assert route.split("12", None) == (None, "12")
    with pytest.raises(click.UsageError, match="missing the workflow id"):
        route.split("c:", None)
    with pytest.raises(click.UsageError, match="--site says"):
        route.split("a:1", "b")
