"""One finished (or running) workflow read once from the manifest, shaped for provenance.

PROV export and the lineage graph need the same joins: attempts by (activity, number), the
final attempt of each activity, the DAG's parents, and which attempts claim to have
generated each file *version*. Loading them here once keeps both builders to a handful of
manifest reads (one per table) whatever the workflow's size.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from akoflow.manifest import ActivityRecord, AttemptRecord, Manifest, WorkflowRecord
from akoflow.manifest.queries import FileRow

AttemptKey = tuple[str, int]  # (activity name, attempt number)


@dataclass(frozen=True)
class FileVersion:
    """A file as one snapshot saw it. The hash is left out of the key on purpose.

    Hashing is opt-in, so one observation of a version may carry a hash and another not;
    (path, size, mtime) is what every observation has.
    """

    path: str
    size: int
    mtime: float


@dataclass
class RunData:
    workflow: WorkflowRecord
    activities: list[ActivityRecord]
    attempts: list[AttemptRecord]
    edges: list[tuple[int, int]]  # (child activity id, parent activity id)
    files: list[FileRow]
    by_id: dict[int, ActivityRecord] = field(default_factory=dict)
    attempt_of: dict[AttemptKey, AttemptRecord] = field(default_factory=dict)
    final: dict[int, AttemptRecord] = field(default_factory=dict)  # activity id -> last
    hashes: dict[FileVersion, str] = field(default_factory=dict)
    generators: dict[FileVersion, list[AttemptKey]] = field(default_factory=dict)
    flagged: set[FileVersion] = field(default_factory=set)  # rows marked ambiguous

    def __post_init__(self) -> None:
        self.by_id = {a.id: a for a in self.activities}
        for t in self.attempts:
            name = self.by_id[t.activity_id].name
            self.attempt_of[(name, t.number)] = t
            last = self.final.get(t.activity_id)
            if last is None or t.number > last.number:
                self.final[t.activity_id] = t
        gens: dict[FileVersion, list[AttemptKey]] = defaultdict(list)
        for row in self.files:
            v = version(row)
            if row.entry.hash:
                self.hashes[v] = row.entry.hash
            if row.entry.ambiguous:
                self.flagged.add(v)
            if row.entry.role == "generated":
                key = (row.activity, row.attempt)
                if key not in gens[v]:
                    gens[v].append(key)
        self.generators = dict(gens)

    def parents(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for child, parent in self.edges:
            out[child].append(parent)
        return out

    def ambiguous(self, v: FileVersion) -> bool:
        """A row of this version says it may be wrongly attributed, or more than one attempt
        claims it.

        Snapshots of a shared work directory cannot tell which of two tasks running at the
        same time wrote a file (both see it appear), nor whether a task read a file at all:
        such rows are flagged when they are ingested. Traced rows are exact. Rather than
        pick one claim silently, the exporters keep every claim and flag the version.
        """
        return v in self.flagged or len(self.generators.get(v, ())) > 1


def version(row: FileRow) -> FileVersion:
    e = row.entry
    return FileVersion(e.path, int(e.size or 0), float(e.mtime or 0.0))


def load_run(m: Manifest, wf_id: int) -> RunData:
    """Read everything provenance needs about one workflow (one query per table)."""
    return RunData(
        workflow=m.get_workflow(wf_id),
        activities=m.activities(wf_id),
        attempts=m.attempts(wf_id),
        edges=m.edges(wf_id),
        files=m.files(wf_id),
    )
