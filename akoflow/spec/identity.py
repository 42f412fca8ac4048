"""Merkle identities of activities: a hash of what an activity does and of its parents'.

Two activities with the same identity run the same command, in the same image, with the same
environment and resources, on inputs produced by identical upstream activities, so the
outputs of one can stand in for the other (`cache: true`). Also a stable key for "the same
activity in an earlier run" (run-time history).
"""

from __future__ import annotations

import hashlib
import json

from akoflow.spec.dag import Dag
from akoflow.spec.models import WorkflowSpec


def merkle_identities(spec: WorkflowSpec) -> dict[str, str]:
    """Activity name -> hex sha256 identity, computed in topological order."""
    by_name = {a.name: a for a in spec.activities}
    out: dict[str, str] = {}
    for name in Dag.from_spec(spec).topological_order():
        act = by_name[name]
        doc = {
            "run": act.run,
            "image": spec.effective_image(act),
            "env": dict(sorted(act.env.items())),
            "resources": {"cpu": act.resources.cpu, "gpus": act.resources.gpus},
            "parents": sorted(out[p] for p in set(act.depends_on)),
        }
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        out[name] = hashlib.sha256(text.encode()).hexdigest()
    return out
