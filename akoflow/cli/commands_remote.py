"""Remote commands: `remote setup|trust|login` for an SSH site, and `pull SITE:ID`."""

from __future__ import annotations

import click

from akoflow.cli import render


@click.group()
def remote() -> None:
    """SSH sites: install akoflow on the cluster, trust its host key, open a master."""


@remote.command(name="setup")
@click.argument("site")
@click.option("--force", is_flag=True, help="Install again even when up to date.")
@click.option("--json", "as_json", is_flag=True)
def remote_setup(site: str, force: bool, as_json: bool) -> None:
    """Install this akoflow version in a venv on SITE's cluster, from uploaded wheels."""
    from akoflow.remote.setup import setup

    data = setup(site, force)
    if as_json:
        render.emit_json(data)
        return
    click.echo(f"{site}: akoflow {data['akoflow']} {data['action']} in {data['venv']} "
               f"({data['wheels']} wheels, {data['bytes_sent']} bytes sent, "
               f"transport {data['transport']})")
    click.echo(f"  python {data['python']} ({data['interpreter']}, {data['platform']})")
    click.echo(f"  {data['home']}: writable, {data['free_bytes'] / 2**30:.1f} GiB free")
    found = ", ".join(sorted(data["commands"])) or "none"
    click.echo(f"  scheduler and container commands on PATH: {found}")


@remote.command(name="trust")
@click.argument("site")
@click.option("--fingerprint", help="Accept only this key (SHA256:…), without asking.")
def remote_trust(site: str, fingerprint: str | None) -> None:
    """Add SITE's host key (and its jump hosts') to known_hosts after you compared it."""
    from akoflow.remote.config import ssh_config
    from akoflow.remote.transport import known_hosts_file
    from akoflow.remote.trust import HostKey, trust

    cfg = ssh_config(site)

    def confirm(key: HostKey) -> bool:
        click.echo(f"{key.hop.known_hosts_name} offers {key.kind} {key.fingerprint}", err=True)
        return click.confirm("Is this the fingerprint the cluster publishes?", default=False,
                             err=True)

    for key, what in trust(cfg, confirm, fingerprint):
        click.echo(f"{key.hop.known_hosts_name}: {key.kind} {key.fingerprint} "
                   f"{'already known' if what == 'known' else 'added to'} "
                   f"{known_hosts_file(cfg) if what != 'known' else ''}".rstrip())


@remote.command(name="login")
@click.argument("site")
@click.option("--persist", default="4h", show_default=True,
              help="How long the master stays after its last use (ssh ControlPersist).")
def remote_login(site: str, persist: str) -> None:
    """Open an OpenSSH master connection to SITE interactively (answer MFA once)."""
    from akoflow.remote.config import RemoteError, ssh_config
    from akoflow.remote.openssh import login
    from akoflow.remote.transport import choose

    cfg = ssh_config(site)
    if cfg.transport == "paramiko" or choose(cfg) != "openssh":
        raise RemoteError(f"site {site} uses transport paramiko, which connects per command "
                          "with keys or the agent; set ssh.transport: openssh to use a master")
    code = login(cfg, persist)
    if code != 0:
        raise RemoteError(f"ssh could not open a master connection to {site} (exit {code})")
    click.echo(f"{site}: master connection open (for {persist} after its last use)")


@remote.command(name="logout")
@click.argument("site")
def remote_logout(site: str) -> None:
    """Close the master connection `remote login` opened to SITE."""
    from akoflow.remote.config import ssh_config
    from akoflow.remote.openssh import logout

    closed = logout(ssh_config(site))
    click.echo(f"{site}: {'master connection closed' if closed else 'no master connection'}")


@click.command()
@click.argument("ref", metavar="SITE:ID")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="Where outputs and task logs go (default $AKOFLOW_HOME/pulled/SITE-ID).")
@click.option("--outputs", "pattern", metavar="GLOB", help="Only outputs matching GLOB.")
@click.option("--no-files", is_flag=True, help="Provenance only, no outputs or logs.")
@click.option("--json", "as_json", is_flag=True)
def pull(ref: str, out_dir: str | None, pattern: str | None, no_files: bool,
         as_json: bool) -> None:
    """Bring a remote run's provenance into this manifest, and its outputs here."""
    from akoflow import service
    from akoflow.cli import route
    from akoflow.remote.pull import pull as do_pull

    site, wf_ref = route.split(ref, None)
    if site is None or wf_ref is None:
        raise click.UsageError(f"{ref!r}: name the run as SITE:ID")
    data = do_pull(service.open_manifest(), site, wf_ref, out_dir, pattern, not no_files)
    if as_json:
        render.emit_json(data)
        return
    click.echo(f"{data['origin']} ({data['name']}, {data['status']}) is workflow "
               f"{data['id']} here: {data['rows']} rows; {data['files_fetched']} files "
               f"({data['bytes_received']} bytes) into {data['dir']}")


COMMANDS = [remote, pull]
