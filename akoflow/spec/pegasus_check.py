"""Pegasus WMS 5 documents: constructed as Pegasus reads them, checked with Pegasus's own schema.

The schema (`pegasus_schema/`, vendored from Pegasus with its licence) is the authority on what
a Pegasus 5.0 workflow or catalog is, so akoflow checks a file against it before reading any
field, and reports each problem with the file, the line and the field path, like the AkôFlow
loader does. jsonschema is imported only when a Pegasus file is read: every other command would
pay ~0.1 s for it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, SequenceNode

from akoflow.spec.errors import SpecError, SpecIssue

SCHEMA_FILES = ("wf-5.0.yml", "common.yml", "rc-5.0.yml", "tc-5.0.yml", "sc-5.0.yml")
MAX_REPORTED = 20  # a broken generator repeats one mistake per job: the first ones say it all
MAX_VALUES = 5_000_000  # YAML aliases may expand a small file into an unbounded tree
MAX_MESSAGE = 200


class _Constructor(SafeConstructor):
    """Pegasus's reading of YAML (Pegasus.yaml): only true/false are booleans (`yes`, `on`
    stay strings) and timestamps stay strings."""

    def construct_pegasus_bool(self, node: Node) -> Any:
        text = str(self.construct_scalar(node))  # type: ignore[arg-type]
        return {"true": True, "false": False}.get(text.lower(), text)


_Constructor.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:bool", _Constructor.construct_pegasus_bool)
_Constructor.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)


def construct(root: Node, source: str | None) -> Any:
    """Plain data of a composed document, refusing alias bombs before building them."""
    if _expanded_size(root, {}) > MAX_VALUES:
        msg = f"the document expands to more than {MAX_VALUES:,} values (YAML aliases)"
        raise SpecError([SpecIssue(source, None, "", msg)])
    try:
        return _Constructor().construct_document(root)
    except yaml.MarkedYAMLError as e:  # an unhashable key, an unknown tag...
        line = int(e.problem_mark.line) + 1 if e.problem_mark else None
        raise SpecError([SpecIssue(source, line, "", f"YAML error: {e.problem}")]) from None


def _expanded_size(node: Node, seen: dict[int, int]) -> int:
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = 1  # a recursive alias counts once instead of looping
    size = 1
    if isinstance(node, SequenceNode):
        size += sum(_expanded_size(n, seen) for n in node.value)
    elif isinstance(node, MappingNode):
        size += sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in node.value)
    seen[id(node)] = size
    return size


@functools.cache
def _validators() -> dict[str, Any]:
    """Draft-07 validators for each schema file, with references between the files resolved."""
    try:
        import jsonschema
        import referencing
        from referencing.jsonschema import DRAFT7
    except ImportError:  # a core dependency, so only a broken environment gets here
        raise SpecError([SpecIssue(None, None, "", "reading Pegasus workflows needs jsonschema: "
                                   "pip install 'jsonschema>=4.18'")]) from None
    folder = resources.files("akoflow.spec") / "pegasus_schema"
    docs = {name: yaml.safe_load((folder / name).read_text("utf-8")) for name in SCHEMA_FILES}
    registry: Any = referencing.Registry().with_resources(
        (name, DRAFT7.create_resource(doc)) for name, doc in docs.items())
    return {name: jsonschema.Draft7Validator(doc, registry=registry)
            for name, doc in docs.items()}


def validate(doc: Any, root: Node, source: str | None, schema: str = "wf-5.0.yml",
             prefix: str = "") -> None:
    """Raise SpecError with one issue per schema violation (the first MAX_REPORTED)."""
    from jsonschema.exceptions import best_match

    errors = sorted(_validators()[schema].iter_errors(doc), key=lambda e: _path(e.absolute_path))
    if not errors:
        return
    issues = []
    for error in errors[:MAX_REPORTED]:
        best = _explain(error, best_match)
        path = _path(best.absolute_path)
        message = " ".join(str(best.message).split())
        if best.validator in ("anyOf", "oneOf"):  # its message repeats the whole instance
            message = "matches none of the forms the schema allows here"
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        where = f"{prefix}.{path}" if prefix and path else prefix or path
        issues.append(SpecIssue(source, line_at(root, best.absolute_path), where,
                                f"{message} (Pegasus 5.0 schema)"))
    if len(errors) > MAX_REPORTED:
        issues.append(SpecIssue(source, None, "", f"... and {len(errors) - MAX_REPORTED} more "
                                "problems with the Pegasus schema"))
    raise SpecError(issues)


def _explain(error: Any, best_match: Any) -> Any:
    """The error that says what is wrong: in an anyOf/oneOf (a job is a `job`, a
    `pegasusWorkflow` or a `condorWorkflow`), the branch whose `type` the instance has."""
    while error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[Any]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        chosen = [errs for errs in branches.values()
                  if not any(e.validator in ("const", "enum") and list(e.relative_path) == ["type"]
                             for e in errs)]
        if len(chosen) != 1:
            break
        error = best_match(chosen[0])
    return error


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out.lstrip(".")


def path_of(parts: Sequence[Any]) -> str:
    """`("jobs", 3, "uses")` → `jobs[3].uses`, the loader's way of naming a field."""
    return _path(parts)


def line_at(root: Node, parts: Iterable[Any]) -> int:
    """The line of the deepest node on `parts` that exists (its key's line for mappings)."""
    node, line = root, int(root.start_mark.line) + 1
    for p in parts:
        child: Node | None = None
        if isinstance(node, SequenceNode) and isinstance(p, int) and p < len(node.value):
            child = node.value[p]
            line = int(child.start_mark.line) + 1
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                if getattr(k, "value", None) == p:
                    child, line = v, int(k.start_mark.line) + 1
                    break
        if child is None:
            break
        node = child
    return line
