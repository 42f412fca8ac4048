"""`akoflow serve`: the HTTP API, GA4GH WES, live events and the web view (akoflow.server)."""

from __future__ import annotations

import click

from akoflow import service


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback by default).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False),
              help="TLS certificate (PEM); with --keyfile, serve https.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False),
              help="TLS private key (PEM).")
@click.option("--cors-origin", "cors", multiple=True, metavar="ORIGIN",
              help="Allow browser pages of this origin (repeatable; CORS is off without).")
@click.option("--max-body-mb", default=16, show_default=True, type=click.IntRange(1, 4096),
              help="Largest request body accepted (submissions and attachments).")
@click.option("--print-token", is_flag=True,
              help="Print the full-access token (made on first use) and exit.")
@click.option("--new-readonly-token", is_flag=True,
              help="Make a read-only token (GET only), print it and exit.")
def serve(host: str, port: int, certfile: str | None, keyfile: str | None,
          cors: tuple[str, ...], max_body_mb: int, print_token: bool,
          new_readonly_token: bool) -> None:
    """Serve AkôFlow's HTTP API, GA4GH WES, live events and a web view (token required)."""
    from akoflow import server
    from akoflow.server import tokens

    if print_token or new_readonly_token:
        home = service.home()
        click.echo(tokens.new_readonly_token(home) if new_readonly_token
                   else tokens.admin_token(home))
        return
    problem = server.missing()
    if problem:
        raise click.ClickException(problem)
    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile and --keyfile go together")
    from akoflow.server.app import ServeConfig
    from akoflow.server.run import serve as run_server

    run_server(ServeConfig(host=host, port=port, cors_origins=list(cors),
                           max_body=max_body_mb << 20, certfile=certfile, keyfile=keyfile))


COMMANDS = [serve]
