"""The cluster side of every remote command: `python -I -m akoflow.remote.serve --home H`.

It answers the laptop's requests with the same data the local commands render
(`akoflow.views`), runs control commands through `akoflow.service`, registers submissions
(once per idempotency key), and hands out a run's rows and files for `akoflow pull`.
Imports stay lazy: a `status` must not pay for what a `submit` needs.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

from akoflow import __version__
from akoflow.remote.agent import Agent, Channel, OpError

# akoflow.views.QUERIES by name (a test checks they agree), known without importing it.
QUERIES = ("workflows", "status", "describe", "events", "metrics", "files", "explain", "prov",
           "lineage")


class Server(Agent):
    """The bootstrap agent's store and setup operations, plus akoflow's own."""

    def __init__(self, home: str, channel: Channel) -> None:
        super().__init__(home, channel, __version__)
        os.environ["AKOFLOW_HOME"] = self.home  # what every process started from here sees
        self._manifest: Any = None
        # The hello goes out before akoflow.views (and the manifest) is imported: a laptop
        # that sent its query at once gets the answer as soon as that import is done.
        for name in QUERIES:
            self.ops[name] = self._query(name)
        self.ops.update({
            "cancel": self.op_cancel, "retry": self.op_retry, "submit": self.op_submit,
            "report": self.op_report, "crate": self.op_crate, "export": self.op_export,
            "listing": self.op_listing,
        })
        self.streams: dict[str, Callable[..., Iterator[tuple[Any, bytes]]]] = {
            "follow": self.stream_follow, "send": self.stream_send}

    @property
    def manifest(self) -> Any:
        if self._manifest is None:
            from akoflow.service import open_manifest

            self._manifest = open_manifest()
        return self._manifest

    def _query(self, name: str) -> Callable[..., Any]:
        def run(**args: Any) -> Any:
            from akoflow import views

            return _user_errors(views.QUERIES[name], self.manifest, **args)

        return run

    def answer(self, op: str, args: dict[str, Any]) -> None:
        stream = self.streams.get(op)
        if stream is None:
            super().answer(op, args)
            return
        try:
            for item, payload in stream(**args):
                self.channel.send({"item": item}, payload, flush=not payload)
        except OpError as exc:
            self.channel.send({"ok": False, "error": str(exc)})
            return
        self.channel.send({"ok": True})

    # -- control ------------------------------------------------------------------------

    def op_cancel(self, ref: str, names: list[str] | None = None) -> Any:
        from akoflow import service

        return _user_errors(service.cancel_command, self.manifest, ref, names)

    def op_retry(self, ref: str, names: list[str] | None = None,
                 start_dispatcher: bool = True) -> Any:
        from akoflow import service

        return _user_errors(service.retry_command, self.manifest, ref, names,
                            start_dispatcher)

    def op_submit(self, **args: Any) -> Any:
        from akoflow.remote.receive import submit

        return _user_errors(submit, self, **args)

    def stream_follow(self, ref: str, **filters: Any) -> Iterator[tuple[Any, bytes]]:
        from akoflow.views import follow_events

        batches = _user_errors(follow_events, self.manifest, ref, **filters)
        try:
            for batch in batches:
                yield batch, b""
        except Exception as exc:
            raise _as_op_error(exc) from None

    # -- products -----------------------------------------------------------------------

    def op_report(self, ref: str) -> bytes:
        from akoflow.provenance.report import write_report

        return self._made_file(write_report, ref, "report.html")

    def op_crate(self, ref: str, license: str | None = None,
                 limits: dict[str, int] | None = None) -> bytes:
        from dataclasses import replace

        from akoflow import service
        from akoflow.provenance.crate_payload import Limits

        sizes = replace(Limits(), **{k: int(v) for k, v in (limits or {}).items()
                                     if k in ("max_file_bytes", "max_data_bytes",
                                              "max_log_bytes")})

        def write(m: Any, wf_id: int, out: Any) -> Any:
            return service.write_crate(m, wf_id, out, license=license, limits=sizes).path

        return self._made_file(write, ref, "run.crate.zip")

    def _made_file(self, writer: Any, ref: str, name: str) -> bytes:
        import tempfile
        from pathlib import Path

        m = self.manifest
        wf = _user_errors(m.find_workflow, ref)
        with tempfile.TemporaryDirectory(prefix="akoflow-remote-") as tmp:
            path = Path(writer(m, wf.id, Path(tmp) / name))
            return path.read_bytes()

    # -- pull ---------------------------------------------------------------------------

    def op_export(self, ref: str) -> dict[str, Any]:
        m = self.manifest
        wf = _user_errors(m.find_workflow, ref)
        return {"id": wf.id, "name": wf.name, "status": wf.status, "run_dir": wf.run_dir,
                "work_dir": wf.work_dir, "tables": m.export_workflow(wf.id)}

    def op_listing(self, ref: str, pattern: str | None = None) -> Any:
        from akoflow.remote.receive import listing

        return _user_errors(listing, self.manifest, ref, pattern)

    def stream_send(self, ref: str, files: list[list[Any]]) -> Iterator[tuple[Any, bytes]]:
        from akoflow.remote.receive import send_files

        yield from send_files(self.manifest, ref, files)


def _as_op_error(exc: BaseException) -> OpError:
    from akoflow.manifest import ManifestError
    from akoflow.sites import SiteError
    from akoflow.spec.errors import SpecError

    if isinstance(exc, SpecError):
        return OpError("; ".join(str(i) for i in exc.issues))
    if isinstance(exc, (ManifestError, SiteError, OpError)):
        return OpError(str(exc))
    raise exc


def _user_errors(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Errors a user can cause become one line for the laptop; bugs stay bugs."""
    try:
        return fn(*args, **kwargs)
    except OSError:
        raise
    except Exception as exc:
        raise _as_op_error(exc) from None


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="akoflow.remote.serve")
    parser.add_argument("--home", default="~/.akoflow")
    args = parser.parse_args(argv)
    # A laptop that goes away mid-request must not stop a submission half-way: finish it,
    # then find the channel closed.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    Server(args.home, Channel(sys.stdin.buffer, sys.stdout.buffer)).serve()


if __name__ == "__main__":
    main()
