"""Host keys checked strictly (unknown and changed keys refused, nothing added silently),
jump hosts, and names that cannot reach the remote shell as commands."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.remote.laptop import TRANSPORTS, Laptop, cluster_workflows, remote_home

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_host_key_refused_then_trusted(laptop: Laptop, transport: str) -> None:
    site = laptop.site("clu", transport)
    laptop.known_hosts.write_text("")
    fp = laptop.cluster.target.fingerprint
    refused = laptop.ak("list", "--site", site)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert fp in lines[0] and f"akoflow remote trust {site}" in lines[0]
    assert laptop.known_hosts.read_text() == ""  # nothing added silently
    wrong = laptop.ak("remote", "trust", site, "--fingerprint", "SHA256:" + "A" * 43)
    assert wrong.returncode == 1 and laptop.known_hosts.read_text() == ""
    no = laptop.ak("remote", "trust", site)  # asked, stdin closed: the answer is no
    assert no.returncode != 0 and laptop.known_hosts.read_text() == ""
    laptop.ak("remote", "trust", site, "--fingerprint", fp, check=True)
    assert laptop.known_hosts.read_text().startswith("[127.0.0.1]:2622 ssh-ed25519 ")
    assert laptop.ak("list", "--site", site).returncode == 0
    again = laptop.ak("remote", "trust", site, "--fingerprint", fp, check=True)
    assert "already known" in again.stdout


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_changed_host_key_refused_loudly(laptop: Laptop, transport: str,
                                         tmp_path: Path) -> None:
    site = laptop.site("clu", transport)
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    before = f"[127.0.0.1]:2622 {kind} {blob}\n"
    laptop.known_hosts.write_text(before)
    refused = laptop.ak("status", f"{site}:1")
    assert refused.returncode == 1
    assert "HAS CHANGED" in refused.stderr and "refusing to connect" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    trust = laptop.ak("remote", "trust", site, "--fingerprint",
                      laptop.cluster.target.fingerprint)
    assert trust.returncode == 1 and "HAS CHANGED" in trust.stderr
    assert laptop.known_hosts.read_text() == before  # never replaced


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_through_a_jump_host(laptop: Laptop, transport: str) -> None:
    c = laptop.cluster
    site = laptop.site("far", transport, jump=f"{c.jump_user}@{c.host}:{c.jump.port}")
    ref = laptop.ak("submit", str(EXAMPLES / "diamond.yaml"), "--site", site,
                    check=True).stdout.strip()
    assert laptop.wait_status(ref)["status"] == "FINISHED"
    before = c.jump.accepted()
    laptop.ak("status", ref, check=True)
    assert c.jump.accepted() == before + 1  # the jump host was used, once
    # the jump host's own key is checked too
    laptop.known_hosts.write_text(c.known_hosts(c.target))
    refused = laptop.ak("status", ref)
    assert refused.returncode == 1, refused.stderr
    assert "[127.0.0.1]:2623" in refused.stderr and c.jump.fingerprint in refused.stderr
    laptop.ak("remote", "trust", site, "--fingerprint", c.jump.fingerprint, check=True)
    laptop.ak("status", ref, check=True)


def test_openssh_honours_an_ssh_config(laptop: Laptop) -> None:
    """A Host alias with ProxyJump in an ssh_config file: the system ssh does the rest."""
    c = laptop.cluster
    config = laptop.root / "ssh_config"
    config.write_text(
        f"Host bastion\n  HostName {c.host}\n  Port {c.jump.port}\n  User {c.jump_user}\n"
        f"  IdentityFile {c.client_key}\n  UserKnownHostsFile {laptop.known_hosts}\n"
        "  StrictHostKeyChecking yes\n"
        f"Host cluster\n  HostName {c.host}\n  Port {c.target.port}\n  User {c.user}\n"
        f"  IdentityFile {c.client_key}\n  UserKnownHostsFile {laptop.known_hosts}\n"
        "  ProxyJump bastion\n")
    laptop.sites.mkdir(parents=True, exist_ok=True)
    (laptop.sites / "alias.yaml").write_text(
        f"name: alias\nextends: local\nssh:\n  host: cluster\n  config: {config}\n"
        f"  remote_home: ~/{remote_home(c).name}\n")
    before = c.jump.accepted()
    rows = laptop.json("list", "--site", "alias")
    assert isinstance(rows, list) and c.jump.accepted() == before + 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hostile_names_run_nothing_remotely(laptop: Laptop, transport: str,
                                            tmp_path: Path) -> None:
    site = laptop.site("clu", transport)
    marker = f"/tmp/akoflow-pwned-{uuid.uuid4().hex}"
    hostile = [f"$(touch {marker})", f"`touch {marker}`", f"x; touch {marker}",
               f"x' ; touch {marker} ; '", f"x\" && touch {marker} #"]
    for name in hostile:
        for args in (["logs", f"{site}:1", "--activity", name],
                     ["status", f"{site}:{name}"],
                     ["explain", f"{site}:1", name],
                     ["files", f"{site}:1", "--activity", name]):
            proc = laptop.ak(*args)
            assert len(proc.stderr.strip().splitlines()) <= 1, proc.stderr
    # a file whose name is a command line travels as data, under its own name
    relative = f"pwned-{uuid.uuid4().hex}"  # would land in the cluster user's home
    weird = tmp_path / f"in; touch {relative} $(touch {relative})"
    weird.write_text("data\n")
    spec = tmp_path / "wf.yaml"
    spec.write_text("name: hostile\nspec:\n  activities:\n    - name: a\n"
                    "      run: ls > listing.txt\n")
    ref = laptop.ak("submit", str(spec), "--site", site, "--upload", str(weird),
                    check=True).stdout.strip()
    final = laptop.wait_status(ref)
    assert final["status"] == "FINISHED"
    assert (Path(final["work_dir"]) / weird.name).read_text() == "data\n"
    assert not Path(marker).exists() and not (laptop.cluster.home / relative).exists()
    # hostile spec names never get that far: refused on the laptop
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: 'x;touch {marker}'\nspec:\n  activities:\n    - name: a\n"
                   "      run: 'true'\n")
    # any text is a workflow name (as in AkôFlow): it is kept as written, and runs nothing
    assert laptop.ak("submit", str(bad), "--site", site).returncode == 0
    assert not Path(marker).exists()
    assert any(n == f"x;touch {marker}" for _, n in cluster_workflows(laptop.cluster))
