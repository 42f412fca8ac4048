"""Ingest worker reports into the manifest, and sort snapshot entries into lineage roles."""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import replace
from pathlib import Path

from akoflow.dispatch import declared
from akoflow.manifest import Completion, LiveAttempt, Manifest
from akoflow.port import AttemptOutcome, FileEntry, Reason, protocol, text_path

log = logging.getLogger(__name__)
PRE_EXISTING_LIMIT = 1000


class Lineage:
    """Which activity generated which path, and who descends from whom, for one workflow.

    A file that was already there when a task started is `used` by it when an ancestor
    generated it, and `pre-existing` when no activity of the workflow did (recorded for
    root activities only, the ones that read the workflow's inputs).
    """

    def __init__(self, manifest: Manifest, wf_id: int) -> None:
        self.m = manifest
        self.wf_id = wf_id
        self._producers: dict[str, int] | None = None
        self._parents: dict[int, list[int]] | None = None
        self._declared: dict[int, dict[str, list[str]]] | None = None

    def outputs(self, activity_id: int) -> list[str]:
        """The activity's declared outputs (one query per dispatcher, usually empty)."""
        if self._declared is None:
            self._declared = self.m.declarations(self.wf_id)
        return self._declared.get(activity_id, {}).get("outputs") or []

    def _load(self) -> tuple[dict[str, int], dict[int, list[int]]]:
        if self._producers is None or self._parents is None:
            self._producers = self.m.generated_paths(self.wf_id)
            parents: dict[int, list[int]] = {}
            for child, parent in self.m.edges(self.wf_id):
                parents.setdefault(child, []).append(parent)
            self._parents = parents
        return self._producers, self._parents

    def ancestors(self, activity_id: int) -> set[int]:
        _, parents = self._load()
        seen: set[int] = set()
        queue = deque(parents.get(activity_id, []))
        while queue:
            p = queue.popleft()
            if p not in seen:
                seen.add(p)
                queue.extend(parents.get(p, []))
        return seen

    def classify(self, activity_id: int, files: list[FileEntry],
                 concurrent: bool = False) -> list[FileEntry]:
        """Traced rows are exact: a file used that no activity of the workflow made is
        `pre-existing`. Snapshot rows are guesses and say so (`ambiguous`): a file present
        before the task counts as used when an ancestor made it (a snapshot cannot see
        reads), and what changed is credited to the task even when another task of the
        workflow ran beside it in the same directory (`concurrent`)."""
        producers, parents = self._load()
        out: list[FileEntry] = []
        present = [f for f in files if f.role == "present"]
        for f in files:
            if f.role == "present":
                continue
            if f.observed == "trace":
                if f.role == "used" and f.path not in producers:
                    f = replace(f, role="pre-existing")
                out.append(f)
            else:
                out.append(replace(f, ambiguous=f.ambiguous or concurrent)
                           if f.role == "generated" else f)
        if present:
            is_root = not parents.get(activity_id)
            ancestors = self.ancestors(activity_id) if not is_root else set()
            pre = 0
            for f in present:
                producer = producers.get(f.path)
                if producer is not None and producer in ancestors:
                    out.append(replace(f, role="used", ambiguous=True))
                elif producer is None and is_root and pre < PRE_EXISTING_LIMIT:
                    pre += 1
                    out.append(replace(f, role="pre-existing", ambiguous=True))
        if self._producers is not None:
            for f in out:
                if f.role == "generated":
                    self._producers[f.path] = activity_id
                elif f.role == "invalidated":
                    self._producers.pop(f.path, None)
        return out


def _check_outputs(live: LiveAttempt, outcome: AttemptOutcome, outputs: list[str]) -> None:
    """A task that ended well without a declared output failed after all (MISSING_OUTPUT)."""
    if not outputs:
        return
    work = protocol.read_task(Path(live.attempt_dir)).get("work_dir")
    if not work or not os.path.isdir(work):
        return  # not visible from here (a Kubernetes volume): nothing to check against
    gone = declared.first_missing(work, outputs)
    if gone is not None:
        outcome.reason = Reason.MISSING_OUTPUT.value
        outcome.message = declared.message("output", gone, work)


def _as_text(f: FileEntry) -> FileEntry:
    """Paths are compared and stored as text; a name that is not UTF-8 keeps its bytes."""
    text, raw = text_path(f.path)
    return f if raw is None else replace(f, path=text, raw=raw)


def ingest(
    manifest: Manifest, wf_id: int, live: LiveAttempt, outcome: AttemptOutcome, lineage: Lineage
) -> Completion | None:
    """Apply one attempt's outcome (files sorted into roles); None if it was no longer live."""
    if outcome.succeeded:
        _check_outputs(live, outcome, lineage.outputs(live.activity_id))
    files = [_as_text(f) for f in outcome.files]
    concurrent = any(f.observed == "snapshot" for f in files) and manifest.overlapped(
        wf_id, live.attempt_id, outcome.started_at, outcome.finished_at)
    outcome.files = lineage.classify(live.activity_id, files, concurrent)
    done = manifest.complete_attempt(wf_id, live.attempt_id, outcome)
    if done is not None:
        log.debug("%s attempt %d -> %s", live.activity, live.number, done.status.value)
    return done
