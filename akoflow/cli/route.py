"""Where an inspection or control command gets its answer: this machine's manifest, or a
cluster over SSH when the workflow is named `SITE:ID` (or `--site SITE` names an SSH site).
Either way the answer is the same JSON-able data, rendered by the same code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import click


def split(ref: str | None, site: str | None) -> tuple[str | None, str | None]:
    """(the SSH site to ask, or None for this machine; the workflow reference there)."""
    if ref is not None and ":" in ref:
        prefix, _, rest = ref.partition(":")
        if site is not None and site != prefix:
            raise click.UsageError(f"{ref!r} names site {prefix!r} but --site says {site!r}")
        site, ref = prefix, rest
        if not ref:
            raise click.UsageError(f"{prefix}: is missing the workflow id (SITE:ID)")
    if site is None:
        return None, ref
    from akoflow.remote.config import ssh_config

    ssh_config(site)  # an unknown site, or one without an `ssh:` block, is one clear error
    return site, ref


def ask(op: str, ref: str | None, site: str | None, **args: Any) -> Any:
    """The answer of query `op` (see `akoflow.views.QUERIES`) for workflow `ref`."""
    remote, wf_ref = split(ref, site)
    if wf_ref is not None:
        args["ref"] = wf_ref
    if remote is not None:
        from akoflow.remote.client import call

        return call(remote, op, args)
    from akoflow import service, views

    fn: Callable[..., Any] = views.QUERIES[op]
    return fn(service.open_manifest(), **args)


def act(op: str, ref: str, site: str | None, **args: Any) -> Any:
    """A control command (`cancel`, `retry`): the service here, or the cluster's."""
    remote, wf_ref = split(ref, site)
    if remote is not None:
        from akoflow.remote.client import call

        return call(remote, op, {"ref": wf_ref, **args})
    from akoflow import service

    fn: Callable[..., Any] = {"cancel": service.cancel_command,
                              "retry": service.retry_command}[op]
    return fn(service.open_manifest(), str(wf_ref), **args)


def follow(ref: str, site: str | None, **args: Any) -> Iterator[dict[str, Any]]:
    """Run-log batches until the workflow ends (`logs --follow`), from wherever it runs."""
    remote, wf_ref = split(ref, site)
    if remote is not None:
        from akoflow.remote.client import stream

        yield from stream(remote, "follow", {"ref": wf_ref, **args})
        return
    from akoflow import service
    from akoflow.views import follow_events

    yield from follow_events(service.open_manifest(), str(wf_ref), **args)


def artifact(op: str, ref: str, site: str | None, **args: Any) -> bytes | None:
    """A file a cluster makes (`report`, `crate`), as bytes; None for a local workflow."""
    remote, wf_ref = split(ref, site)
    if remote is None:
        return None
    from akoflow.remote.client import fetch

    return fetch(remote, op, {"ref": wf_ref, **args})
