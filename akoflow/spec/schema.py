"""The JSON Schema of workflow files (`akoflow schema`), for YAML editors to complete and check.

Built from the loader's own field tables (`_fields.py`: every key it reads, each reader's
accepted values), the models' defaults and the unit parsers' patterns, so the schema cannot
drift from what `akoflow validate` accepts. It is as strict as `validate --strict`: a key the
loader does not know is flagged (the loader only warns about one that is not a typo), except
`x-` keys, which both leave alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from akoflow.port.names import MAX_LABEL_LEN
from akoflow.port.units import _CPU_RE, _DUR_RE, _MEM_SUFFIX
from akoflow.spec import _fields as F
from akoflow.spec.models import ActivitySpec, Resources, StoragePolicy, WorkflowSpec

DRAFT = "http://json-schema.org/draft-07/schema#"
READ_ONLY = "Read-only: written by AkôFlow when it exports a workflow; ignored."
_X = {"^x-": {"description": "An extension key: accepted and ignored."}}

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "top": {
        "name": "Workflow name (AkôFlow's `name`).",
        "spec": "The workflow: where it runs and its activities.",
    },
    "spec": {
        "runtime": "Site profile the activities run on (`akoflow sites list`); default local.",
        "schedule": "Placement policy: akoscore, first-fit, round-robin, cost, or a plugin.",
        "image": "Default container image of every activity.",
        "namespace": "AkôFlow namespace (Kubernetes namespace on Kubernetes sites).",
        "mountPath": "Path of the work directory inside containers.",
        "alpha": "AkôScore weight: alpha * memory fit + (1 - alpha) * speed, from 0 to 1.",
        "volumes": "Extra mounts, `host:container` or a single path.",
        "webhooks": "URLs told when activities and the workflow end.",
        "activities": "The activities (tasks) of the workflow; at least one.",
        "storagePolicy": "How activities share files: one volume per workflow or per activity.",
        "storageClassName": "AkôFlow's flat spelling of storagePolicy.storageClassName.",
        "storageSize": "AkôFlow's flat spelling of storagePolicy.storageSize.",
        "storageAccessModes": "AkôFlow's flat spelling of storagePolicy.accessModes.",
        "storageAkoflowPolicy": "A storage type (`distributed`) or a storage policy mapping.",
        "nfsServer": "AkôFlow's flat spelling of storagePolicy.nfsServer.",
        "sampleInterval": "Seconds between psutil samples of each task (default 15).",
        "license": "License of the run's products (RO-Crate): an SPDX id or a URL.",
        "inputs": "Files and directories (relative to the spec) that `submit --site` to an "
                  "SSH site uploads into the work directory.",
    },
    "activity": {
        "name": "Activity name, unique in the workflow; `dependsOn` refers to it.",
        "run": "Shell script run by bash (`set -eo pipefail`) in the work directory.",
        "dependsOn": "Activities that must finish first (a name or a list of names).",
        "image": "Container image of this activity (overrides spec.image).",
        "runtime": "Site profile of this activity (overrides spec.runtime).",
        "mountPath": "Path of the work directory inside this activity's container.",
        "cpuLimit": "Cores: 1, 0.5 or 500m.",
        "memoryLimit": "Memory: 512Mi, 4Gi, 1024M, 1G or bytes.",
        "timeLimit": "Time limit (TIMEOUT after it): 90s, 30m, 2h, 01:30:00, 1-12:00:00.",
        "estimate": "Expected run time, for placement before any history exists.",
        "gpus": "GPUs to request.",
        "nodeSelector": "Node labels required: a mapping or AkôFlow's `key=value` string.",
        "resources": "Scheduler settings: partition, queue, account, qos, `slurm.constraint`.",
        "keepDisk": "Keep this activity's volume after the workflow.",
        "cache": "Reuse outputs of an earlier identical run (Merkle cache).",
        "alpha": "AkôScore weight for this activity (overrides spec.alpha).",
        "retries": "Attempts after a failure.",
        "retryMemoryFactor": "Memory multiplier per retry, between 1 and 100.",
        "env": "Environment variables of the task.",
        "inputs": "Files it needs (globs relative to the work directory): a missing one "
                  "fails the attempt before it runs (MISSING_INPUT). Lineage is observed "
                  "whether or not files are declared.",
        "outputs": "Files it must leave (globs): a missing one fails the attempt after it "
                   "ran (MISSING_OUTPUT).",
    },
    "storagePolicy": {
        "type": "default/distributed: one volume per workflow; standalone: one per activity.",
        "storageClassName": "Kubernetes storage class of the volumes.",
        "storageSize": "Size of each volume: 1Gi, 500Mi.",
        "accessModes": "Kubernetes access modes of the volumes.",
        "storageAccessModes": "Same as accessModes.",
        "akoflowPolicy": "AkôFlow storage policy name, kept as written.",
        "storageAkoflowPolicy": "A storage type (`distributed`) or a storage policy mapping.",
        "nfsServer": "NFS server of the volumes.",
    },
    "webhook": {
        "name": "Name of this webhook.",
        "url": "http(s) URL that receives the events.",
        "secret": "Key of the X-Akoflow-Signature HMAC.",
    },
}


def workflow_schema() -> dict[str, Any]:
    """The schema of an AkôFlow workflow file with akoflow's extensions (draft-07)."""
    name = {"type": ["string", "number"], "minLength": 1, "maxLength": MAX_LABEL_LEN}
    top = _object("top", {"name": name, "spec": {"$ref": "#/$defs/spec"}},
                  ["name", "spec"], {"id", "status"})
    spec_fields = {k: F.JSON_OF[r] for k, (_, r) in F.SPEC_FIELDS.items()}
    spec_fields |= {k: F.JSON_OF[F.POLICY_FIELDS[k][1]] for k in sorted(F.FLAT_POLICY)}
    spec_fields["activities"] = {"type": "array", "minItems": 1,
                                 "items": {"$ref": "#/$defs/activity"}}
    spec_fields["storagePolicy"] = {"$ref": "#/$defs/storagePolicy"}
    act_fields = {"name": name, "run": F.JSON_OF[F.read_str],
                  "dependsOn": {"anyOf": [{"type": "string"},
                                          {"type": "array", "items": {"type": "string"}}]}}
    act_fields |= {k: F.JSON_OF[r] for k, (_, r) in F.ACT_FIELDS.items()}
    return {
        "$schema": DRAFT,
        "title": "AkôFlow workflow (akoflow)",
        "description": "AkôFlow YAML as the AkôFlow engine reads it, with akoflow's extensions.",
        **top,
        "$defs": {
            "spec": _defaults(_object("spec", spec_fields, ["activities"], F.SPEC_IGNORED),
                              F.SPEC_FIELDS, WorkflowSpec),
            "activity": _defaults(_object("activity", act_fields, ["name", "run"],
                                          F.ACT_IGNORED), F.ACT_FIELDS, ActivitySpec),
            "storagePolicy": _defaults(_object("storagePolicy", {
                k: F.JSON_OF[r] for k, (_, r) in F.POLICY_FIELDS.items()}, [], set()),
                F.POLICY_FIELDS, StoragePolicy),
            "webhook": _object("webhook", {"name": name, "url": {
                "type": "string", "pattern": "^https?://"}, "secret": {"type": "string"}},
                ["name", "url"], set()),
            **units(),
        },
    }


def _object(scope: str, fields: dict[str, dict[str, Any]], required: list[str],
            read_only: set[str]) -> dict[str, Any]:
    """A mapping with these fields (each with its description), read-only ones, x- keys."""
    words = DESCRIPTIONS[scope]
    props = {k: {**frag, "description": words[k]} for k, frag in fields.items()}
    props |= {k: {"description": READ_ONLY} for k in sorted(read_only)}
    return {"type": "object", "properties": props, "required": required,
            "patternProperties": _X, "additionalProperties": False}


def _defaults(obj: dict[str, Any], table: dict[str, tuple[str, F.Reader]],
              model: type[Any]) -> dict[str, Any]:
    """Each field's default from its model (Resources for `res.*`), where it is a plain value."""
    plain = {f.name: f.default for f in dataclasses.fields(model)}
    plain |= {f"res.{f.name}": f.default for f in dataclasses.fields(Resources)}
    for key, (field_name, _) in table.items():
        default = plain.get(field_name)
        if isinstance(default, (str, int, float, bool)) and key in obj["properties"]:
            obj["properties"][key]["default"] = default
    return obj


def units() -> dict[str, Any]:
    """cpu, memory and duration: a number, or a string in the forms `units.py` parses."""
    suffixes = "|".join(sorted(filter(None, _MEM_SUFFIX), key=len, reverse=True))
    clock = r"^\s*([0-9]+-)?[0-9]+(:[0-9]+){0,2}\s*$"
    return {
        "cpu": {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                          {"type": "string", "pattern": _CPU_RE.pattern}]},
        "memory": {"anyOf": [{"type": "number", "minimum": 0}, {
            "type": "string", "pattern": rf"^\s*[0-9]+(\.[0-9]+)?\s*({suffixes})?\s*$"}]},
        "duration": {"anyOf": [{"type": "number", "exclusiveMinimum": 0},
                               {"type": "string", "pattern": _DUR_RE.pattern},
                               {"type": "string", "pattern": clock}]},
    }
