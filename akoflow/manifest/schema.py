"""Numbered schema migrations of the shared manifest. Append, never edit a released step."""

from __future__ import annotations

import sqlite3
from typing import Final

# Table names follow AkôFlow's provenance schema (workflow, activity, metrics, errors, files)
# plus what a stateless dispatcher needs (attempt, activity_dependency, event, outbox, node,
# cache). Times are REAL Unix epoch seconds.
_V1: Final[str] = """
CREATE TABLE workflow (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    namespace TEXT NOT NULL DEFAULT 'akoflow',
    runtime TEXT NOT NULL DEFAULT 'local',
    spec_path TEXT,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    run_dir TEXT NOT NULL,
    work_dir TEXT NOT NULL,
    site TEXT,
    webhooks TEXT NOT NULL DEFAULT '[]',
    owner TEXT,
    dispatcher_job TEXT,
    message TEXT
);
-- The spec texts live apart from the workflow row: updating a row rewrites it whole, and a
-- 100,000-activity spec is tens of megabytes.
CREATE TABLE workflow_spec (
    workflow_id INTEGER PRIMARY KEY REFERENCES workflow(id),
    raw_spec TEXT NOT NULL DEFAULT '',
    spec_json TEXT NOT NULL
);
CREATE TABLE activity (
    id INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL REFERENCES workflow(id),
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    run TEXT NOT NULL,
    image TEXT,
    runtime TEXT NOT NULL,
    resources TEXT NOT NULL,
    env TEXT NOT NULL DEFAULT '{}',
    alpha REAL NOT NULL DEFAULT 0.5,
    retries INTEGER NOT NULL DEFAULT 0,
    retry_memory_factor REAL NOT NULL DEFAULT 1.0,
    status TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    unfinished_parents INTEGER NOT NULL DEFAULT 0,
    node TEXT,
    job_id TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    message TEXT,
    identity TEXT,
    cache INTEGER NOT NULL DEFAULT 0,
    UNIQUE (workflow_id, name)
);
CREATE INDEX activity_wf_status ON activity(workflow_id, status, seq);
CREATE TABLE activity_dependency (
    workflow_id INTEGER NOT NULL,
    activity_id INTEGER NOT NULL,
    parent_id INTEGER NOT NULL,
    PRIMARY KEY (activity_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX dependency_parent ON activity_dependency(parent_id);
CREATE TABLE attempt (
    id INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL,
    activity_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    status TEXT NOT NULL,
    executor TEXT NOT NULL,
    job_name TEXT NOT NULL,
    job_id TEXT,
    node TEXT,
    attempt_dir TEXT NOT NULL,
    resources TEXT NOT NULL,
    exit_code INTEGER,
    reason TEXT,
    submitted_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    cpu_time REAL,
    peak_rss INTEGER,
    image_id TEXT,
    scores TEXT,
    message TEXT,
    UNIQUE (activity_id, number)
);
CREATE INDEX attempt_wf_status ON attempt(workflow_id, status);
CREATE TABLE metrics (
    id INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL,
    activity_id INTEGER NOT NULL,
    attempt_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    cpu_percent REAL,
    rss INTEGER,
    vms INTEGER,
    read_bytes INTEGER,
    write_bytes INTEGER,
    threads INTEGER,
    processes INTEGER
);
CREATE INDEX metrics_activity ON metrics(activity_id);
CREATE INDEX metrics_workflow ON metrics(workflow_id);
CREATE TABLE errors (
    id INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL,
    activity_id INTEGER NOT NULL,
    attempt_id INTEGER NOT NULL UNIQUE,
    stdout_path TEXT,
    stderr_path TEXT,
    stdout_tail TEXT,
    stderr_tail TEXT
);
CREATE INDEX errors_activity ON errors(activity_id);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL,
    activity_id INTEGER NOT NULL,
    attempt_id INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER,
    mtime REAL,
    hash TEXT,
    role TEXT NOT NULL
);
CREATE INDEX files_workflow ON files(workflow_id, role);
CREATE INDEX files_activity ON files(activity_id);
CREATE TABLE event (
    id INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL,
    activity_id INTEGER,
    attempt INTEGER,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    node TEXT,
    message TEXT
);
CREATE INDEX event_wf_ts ON event(workflow_id, ts);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL,
    activity_id INTEGER,
    event_type TEXT NOT NULL,
    url TEXT NOT NULL,
    hook_name TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    next_try_at REAL NOT NULL,
    delivered_at REAL,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox(delivered_at, next_try_at);
CREATE TABLE node (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    snapshot_at REAL NOT NULL,
    cpus REAL,
    cpus_free REAL,
    memory INTEGER,
    memory_free INTEGER,
    features TEXT NOT NULL DEFAULT '[]',
    partitions TEXT NOT NULL DEFAULT '[]',
    state TEXT,
    speed REAL NOT NULL DEFAULT 1.0,
    cost_per_hour REAL,
    UNIQUE (site, name)
);
CREATE TABLE cache (
    identity TEXT PRIMARY KEY,
    workflow_id INTEGER NOT NULL,
    activity_id INTEGER NOT NULL,
    work_dir TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

# V2: container settings per activity (image mount, volumes, storage policy), the workflow's
# placement policy (`spec.schedule`), a declared run-time estimate for placement, and this
# manifest's random instance id (it tells apart the dispatcher jobs of two manifests whose
# workflows have the same id, in one user's queue).
_V2: Final[str] = """
ALTER TABLE activity ADD COLUMN container TEXT NOT NULL DEFAULT '{}';
ALTER TABLE activity ADD COLUMN estimate REAL;
ALTER TABLE workflow ADD COLUMN schedule TEXT;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('instance', lower(hex(randomblob(4))))
"""

# V3: who is dispatching (the last dispatcher's heartbeat, and why the last one died, so a
# reader can say "no dispatcher is alive"); how each file row was obtained (`observed`:
# trace | snapshot | cache) and whether it is certain (`ambiguous`), with the path's bytes
# when they are not UTF-8 (`raw`; `path` then shows them escaped); the `invalidated` role;
# an activity's declared inputs/outputs (checked, never the source of lineage).
_V3: Final[str] = """
ALTER TABLE workflow ADD COLUMN dispatcher_seen_at REAL;
ALTER TABLE workflow ADD COLUMN dispatcher_error TEXT;
ALTER TABLE files ADD COLUMN observed TEXT NOT NULL DEFAULT 'snapshot';
ALTER TABLE files ADD COLUMN ambiguous INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN raw BLOB;
ALTER TABLE activity ADD COLUMN declared TEXT NOT NULL DEFAULT '{}';
CREATE INDEX attempt_wf_finished ON attempt(workflow_id, finished_at)
"""

MIGRATIONS: Final[list[str]] = [_V1, _V2, _V3]


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database up to the newest version; each step is one transaction."""
    current = schema_version(conn)
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"manifest schema version {current} is newer than this akoflow "
            f"(knows {len(MIGRATIONS)}); upgrade akoflow"
        )
    for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check under the write lock: another process may have migrated meanwhile.
            if schema_version(conn) >= number:
                conn.execute("ROLLBACK")
                continue
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
