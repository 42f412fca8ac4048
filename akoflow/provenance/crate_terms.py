"""The vocabulary of akoflow's RO-Crate: profiles claimed, context terms, statuses, times,
licenses, and the spec text as the crate shows it (secrets redacted)."""

from __future__ import annotations

import json
import mimetypes
from datetime import datetime, timezone
from typing import Any, Final

import yaml

from akoflow.manifest import WorkflowRecord
from akoflow.spec.secrets import redact_data, redact_text, secret_values

PROFILES: Final[dict[str, str]] = {
    "https://w3id.org/ro/wfrun/process/0.5": "Process Run Crate",
    "https://w3id.org/ro/wfrun/workflow/0.5": "Workflow Run Crate",
    "https://w3id.org/ro/wfrun/provenance/0.5": "Provenance Run Crate",
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": "Workflow RO-Crate",
}
WFRUN_CONTEXT: Final = "https://w3id.org/ro/terms/workflow-run/context"
# Terms the two published contexts do not define (every property of a compacted graph must
# be a term: RO-Crate 1.1, "Extending RO-Crate"). Neither schema.org nor the Workflow Run
# terms have an exit code; the Unified Cyber Ontology's exitStatus is that, published.
CONTEXT_TERMS: Final[dict[str, str]] = {
    "exitCode": "https://unifiedcyberontology.org/ontology/uco/observable#exitStatus",
}
_SCHEMA: Final = "http://schema.org/"
UNSPECIFIED_LICENSE: Final = "#license-unspecified"


def action_status(status: str) -> str:
    """schema.org action status, as the full IRI string the Workflow Run profiles compare
    with; a crate of a run still going says so rather than guess."""
    if status == "FINISHED":
        return _SCHEMA + "CompletedActionStatus"
    if status in ("FAILED", "CANCELLED", "SKIPPED"):
        return _SCHEMA + "FailedActionStatus"
    if status in ("PENDING", "READY"):
        return _SCHEMA + "PotentialActionStatus"
    return _SCHEMA + "ActiveActionStatus"


def media_type(path: str) -> str:
    """A file's IANA media type from its name (RO-Crate asks every file for one)."""
    guessed = mimetypes.guess_type(path, strict=False)[0]
    return guessed or ("text/plain" if path.endswith((".log", ".out", ".err"))
                       else "application/octet-stream")


def one_or_many(refs: list[dict[str, str]]) -> dict[str, str] | list[dict[str, str]]:
    """JSON-LD as RO-Crate 1.1 prefers it: a single value is not wrapped in a list."""
    return refs[0] if len(refs) == 1 else refs


def iso(ts: float | None) -> str | None:
    """ISO 8601 in UTC, to the millisecond."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def license_entity(value: str | None) -> tuple[str, dict[str, Any]]:
    """The root's license as a contextual entity: an SPDX identifier (`MIT`, `CC-BY-4.0`)
    becomes its spdx.org URL, a URL stays itself; none given is said plainly rather than
    invented (all rights stay with the run's owner)."""
    if not value:
        return UNSPECIFIED_LICENSE, {
            "@type": "CreativeWork", "name": "No license given",
            "description": "The run's owner chose no license for this crate (akoflow crate "
                           "--license, or `license:` in the spec or site profile): all "
                           "rights are reserved until they do."}
    if "://" in value:
        return value, {"@type": "CreativeWork", "name": value}
    return f"https://spdx.org/licenses/{value}", {
        "@type": "CreativeWork", "name": value, "identifier": value,
        "description": f"SPDX license {value}"}


def spec_text(wf: WorkflowRecord) -> tuple[str, set[str]]:
    """The spec as the crate shows it (the user's text, or YAML of a spec built in Python),
    secret fields redacted, and the secret values to scrub from every other text."""
    data = json.loads(wf.spec_json) if wf.spec_json else {}
    secrets = secret_values(data)
    if wf.raw_spec:
        return redact_text(wf.raw_spec), secrets
    # libyaml when present: the pure-Python emitter takes seconds on 10,000 activities.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return str(yaml.dump(redact_data(data), Dumper=dumper, sort_keys=False,
                         allow_unicode=True)), secrets
