"""AkôFlow YAML → `WorkflowSpec`, reporting every problem with file, line and field path.

The document is composed (not constructed) so each value keeps its node and start line; string
fields take the scalar's text as written, as AkôFlow's Go engine does (`cpuLimit: 1` is "1").
"""

from __future__ import annotations

import gc
import logging
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from akoflow.spec import _fields as F
from akoflow.spec.checked import ValidationError
from akoflow.spec.dag import graph_problems
from akoflow.spec.errors import SpecError, SpecIssue, did_you_mean
from akoflow.spec.models import ActivitySpec, Resources, StoragePolicy, WorkflowSpec
from akoflow.spec.typos import near_miss

log = logging.getLogger(__name__)

MAX_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 200
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_TOP_IGNORED = {"id", "status"}  # written by AkôFlow when it exports a workflow
# Top-level keys of a Pegasus WMS 5 workflow (an AkôFlow file has `spec` instead).
PEGASUS_KEYS = {"pegasus", "x-pegasus", "jobs", "jobDependencies", "replicaCatalog",
                "transformationCatalog"}


class _Ctx(F.Ctx):
    """Walks one document, collecting every issue instead of stopping at the first."""

    def __init__(self, source: str | None, strict: bool) -> None:
        self.source = source
        self.strict = strict
        self.errors: list[SpecIssue] = []
        self.warnings: list[SpecIssue] = []
        self._ctor = yaml.constructor.SafeConstructor()
        self._flat: dict[int, list[F.KV]] = {}

    def err(self, where: Node | int | None, path: str, msg: str) -> None:
        line = F.line_of(where) if isinstance(where, Node) else where
        self.errors.append(SpecIssue(self.source, line, path, msg))

    def warn(self, where: Node, path: str, msg: str) -> None:
        """A problem the file may well mean (AkôFlow accepts it): an error only when strict."""
        issue = SpecIssue(self.source, F.line_of(where), path, msg)
        (self.errors if self.strict else self.warnings).append(issue)

    def value(self, node: ScalarNode) -> Any:
        if node.tag == F.STR:
            return node.value
        try:
            return self._ctor.construct_object(node)
        except yaml.YAMLError:  # an unknown tag such as `!foo 1`: keep the text
            return node.value

    def pairs(self, node: Node, path: str, known: set[str] | None, ignored: set[str]) -> F.Pairs:
        """Keys of a mapping (merge keys applied); `known=None` accepts any key, and `x-` keys
        (extensions, as in Pegasus and OpenAPI files) are accepted and ignored everywhere."""
        if not isinstance(node, MappingNode):
            self.err(node, path, f"must be a mapping, not {F.kind(node)}")
            return {}
        out: F.Pairs = {}
        seen: set[str] = set()
        for k, v in self._flatten(node, path, set()):
            if not isinstance(k, ScalarNode):
                self.err(k, path, "mapping keys must be plain strings")
            elif k.value in seen:
                self.err(k, f"{path}.{k.value}".lstrip("."), f"duplicate key {k.value!r}")
            elif known is not None and k.value not in known:
                seen.add(k.value)
                if k.value not in ignored and not k.value.startswith("x-"):
                    self._unknown(k, path, known)
            else:
                seen.add(k.value)
                out[k.value] = (k, v)
        return out

    def _unknown(self, k: ScalarNode, path: str, known: set[str]) -> None:
        """A typo of a known key is an error (its setting would be lost); another unknown key
        is a warning, since AkôFlow files carry keys of their own."""
        msg = f"unknown field {k.value!r}"
        where = f"{path}.{k.value}".lstrip(".")
        typo = near_miss(k.value, known)
        if typo is not None:
            self.err(k, where, f"{msg} (did you mean {typo!r}?)")
            return
        self.warn(k, where, msg + did_you_mean(k.value, known))

    def _flatten(self, node: MappingNode, path: str, busy: set[int]) -> list[F.KV]:
        """Entries with YAML merge keys (`<<: *defaults`) resolved; memoised against alias bombs."""
        if id(node) in self._flat:
            return self._flat[id(node)]
        if id(node) in busy:
            self.err(node, path, "recursive merge key")
            return []
        busy.add(id(node))
        own: list[F.KV] = []
        merged: list[F.KV] = []
        for k, v in node.value:
            if k.tag != _MERGE:
                own.append((k, v))
                continue
            for src in v.value if isinstance(v, SequenceNode) else [v]:
                if isinstance(src, MappingNode):
                    merged.extend(self._flatten(src, path, busy))
                else:
                    self.err(src, path, "merge key '<<' needs a mapping or a list of mappings")
        busy.discard(id(node))
        names = {k.value for k, _ in own if isinstance(k, ScalarNode)}
        for k, v in merged:  # explicit keys win, then the first merged source
            if isinstance(k, ScalarNode) and k.value not in names:
                names.add(k.value)
                own.append((k, v))
        self._flat[id(node)] = own
        return own


def _read(path: Path) -> str:
    """The file's text, refusing huge, binary and non-regular files before YAML sees them."""
    src = str(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise SpecError([SpecIssue(src, None, "", "not a regular file")])
        if st.st_size > MAX_BYTES:
            raise SpecError([SpecIssue(src, None, "", "file is larger than 5 MB")])
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        msg = f"cannot read file: {e.strerror or e}"
        raise SpecError([SpecIssue(src, None, "", msg)]) from None
    if len(data) > MAX_BYTES:
        raise SpecError([SpecIssue(src, None, "", "file is larger than 5 MB")])
    if b"\x00" in data:
        raise SpecError([SpecIssue(src, None, "", "not a text file (binary content)")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SpecError([SpecIssue(src, line, "", "not a text file (not valid UTF-8)")]) from None


read_text = _read


def is_pegasus(root: Node) -> bool:
    """A Pegasus workflow, told from AkôFlow YAML by its top-level keys."""
    if not isinstance(root, MappingNode):
        return False
    keys = {k.value for k, _ in root.value if isinstance(k, ScalarNode)}
    return "spec" not in keys and bool(keys & PEGASUS_KEYS)


def compose_text(text: str, source: str | None) -> MappingNode:
    """The document as nodes (lines kept) after the loader's size, depth and syntax checks."""
    ctx = _Ctx(source, strict=False)
    root = _compose(ctx, text.removeprefix("\ufeff"))
    if root is None:
        raise SpecError(ctx.errors)
    return root


def load_workflow(
    path: str | Path, *, strict: bool = False, warnings: list[SpecIssue] | None = None
) -> WorkflowSpec:
    """Load and fully validate an AkôFlow YAML (or Pegasus 5) file; raises SpecError listing
    every issue.

    Warnings (unknown fields when not strict) are logged and, if given, appended to `warnings`.
    """
    p = Path(path)
    return parse_workflow_text(_read(p), source=str(p), strict=strict, warnings=warnings)


def parse_workflow_text(
    text: str,
    *,
    source: str | None = None,
    strict: bool = False,
    warnings: list[SpecIssue] | None = None,
) -> WorkflowSpec:
    """Validate YAML text; unknown fields are errors when strict, logged warnings otherwise.
    A Pegasus WMS 5 workflow (detected by its top-level keys) is imported from Pegasus."""
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SpecError([SpecIssue(source, None, "", "file is larger than 5 MB")])
    if "\x00" in text:
        raise SpecError([SpecIssue(source, None, "", "not a text file (binary content)")])
    ctx = _Ctx(source, strict)
    # Composing builds ~10 objects per YAML value; the cyclic GC rescanning them all repeatedly
    # costs more than the parse itself (2.4 s vs 0.5 s on the 6,448-activity Montage).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        root = _compose(ctx, text.removeprefix("\ufeff"))
        if root is not None and is_pegasus(root):
            from akoflow.spec.pegasus import from_document

            return from_document(root, text, source=source, strict=strict, warnings=warnings)
        spec = _build(ctx, root, text) if root is not None else None
    finally:
        if gc_was_enabled:
            gc.enable()
    for w in ctx.warnings:
        log.warning("%s", w)
    if warnings is not None:
        warnings.extend(ctx.warnings)
    if ctx.errors or spec is None:
        issues = sorted(ctx.errors, key=lambda i: i.line or 0)
        raise SpecError(issues or [SpecIssue(source, None, "", "invalid workflow")])
    return spec


def _compose(ctx: _Ctx, text: str) -> MappingNode | None:
    try:
        # libyaml's composer recurses in C and crashes the interpreter on very deep nesting, so
        # measure the depth first with the (iterative) event parser when the text could be deep.
        if sum(text.count(c) for c in "[{-?\n") > MAX_DEPTH:
            depth = 0
            for ev in yaml.parse(text, Loader=_Loader):
                if isinstance(ev, yaml.CollectionStartEvent):
                    depth += 1
                    if depth > MAX_DEPTH:
                        ctx.err(F.line_of(ev), "", f"YAML nesting is deeper than {MAX_DEPTH}")
                        return None
                elif isinstance(ev, yaml.CollectionEndEvent):
                    depth -= 1
        root: Node | None = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = " ".join(str(x) for x in (e.problem, e.context and f"({e.context})") if x)
        ctx.err(int(mark.line) + 1 if mark else None, "", f"YAML syntax error: {what}")
        return None
    except yaml.YAMLError as e:
        ctx.err(None, "", f"YAML error: {e}")
        return None
    if root is None or (isinstance(root, ScalarNode) and root.tag == F.NULL):
        ctx.err(None, "", "file is empty")
        return None
    if not isinstance(root, MappingNode):
        ctx.err(root, "", f"the document must be a mapping with name and spec, not {F.kind(root)}")
        return None
    return root


def _build(ctx: _Ctx, root: MappingNode, text: str) -> WorkflowSpec | None:
    top = ctx.pairs(root, "", {"name", "spec"}, _TOP_IGNORED)
    name = F.read_name(ctx, top.get("name"), "name", "workflow", root)
    if "spec" not in top:
        ctx.err(root, "spec", "is required")
        return None
    kspec, vspec = top["spec"]
    known = set(F.SPEC_FIELDS) | F.FLAT_POLICY | {"activities", "storagePolicy"}
    spec = ctx.pairs(vspec, "spec", known, F.SPEC_IGNORED)
    if not isinstance(vspec, MappingNode):
        return None
    kw = F.read_fields(ctx, spec, F.SPEC_FIELDS, "spec")
    flat = {k: v for k, v in spec.items() if k in F.FLAT_POLICY}
    policy = F.read_policy(ctx, flat, "spec")
    if "storagePolicy" in spec:
        pol = spec["storagePolicy"][1]
        nested = ctx.pairs(pol, "spec.storagePolicy", set(F.POLICY_FIELDS), set())
        policy.update(F.read_policy(ctx, nested, "spec.storagePolicy"))
    acts = _activities(ctx, spec.get("activities"), kspec)
    if ctx.errors or name is None or acts is None:
        return None
    try:
        return WorkflowSpec(
            name=name,
            activities=acts,
            storage_policy=StoragePolicy(**policy),
            raw=text,
            source=ctx.source,
            **kw,
        )
    except ValidationError as e:
        for err in e.errors():
            ctx.err(vspec, "spec." + ".".join(str(p) for p in err["loc"]), err["msg"])
        return None


def _activities(ctx: _Ctx, kv: F.KV | None, at: Node) -> list[ActivitySpec] | None:
    if kv is None:
        ctx.err(at, "spec.activities", "is required")
        return None
    k, v = kv
    if not isinstance(v, SequenceNode) or not v.value:
        why = ("is empty: a workflow needs at least one activity" if isinstance(v, SequenceNode)
               else f"must be a list of activities, not {F.kind(v)}")
        ctx.err(k, "spec.activities", why)
        return None
    built = [_activity(ctx, item, f"spec.activities[{i}]") for i, item in enumerate(v.value)]
    # An activity with a missing/invalid name still takes part (by its raw text) so its
    # dependants are not reported as "unknown" on top of the name error.
    names = [a.pop("_graph_name", None) or f"\x00{i}" for i, a in enumerate(built)]
    deps: list[list[tuple[str, int]]] = [a.pop("_deps", []) for a in built]
    for p in graph_problems(names, [[d for d, _ in dl] for dl in deps]):
        path = f"spec.activities[{p.index}]"
        line: int | None = F.line_of(v.value[p.index])
        if p.dep_index is not None:
            path, line = f"{path}.dependsOn[{p.dep_index}]", deps[p.index][p.dep_index][1]
        ctx.err(line, f"{path}.name" if p.kind == "duplicate" else path, p.message)
    if ctx.errors:
        return None
    out: list[ActivitySpec] = []
    for i, act in enumerate(built):
        act["depends_on"] = list(dict.fromkeys(d for d, _ in deps[i]))
        try:
            out.append(ActivitySpec(**act))
        except ValidationError as e:
            for err in e.errors():
                loc = ".".join(str(p) for p in err["loc"])
                ctx.err(v.value[i], f"spec.activities[{i}].{loc}", err["msg"])
    return out


def _activity(ctx: _Ctx, node: Node, path: str) -> dict[str, Any]:
    f = ctx.pairs(node, path, F.ACT_KNOWN, F.ACT_IGNORED)
    if not isinstance(node, MappingNode):
        return {}
    a: dict[str, Any] = {"line": F.line_of(node)}
    if "name" in f and isinstance(f["name"][1], ScalarNode):
        a["_graph_name"] = str(f["name"][1].value)
    a["name"] = F.read_name(ctx, f.get("name"), f"{path}.name", "activity", node)
    run = F.read_str(ctx, f["run"], f"{path}.run") if "run" in f else None
    if "run" not in f:
        ctx.err(node, f"{path}.run", "is required (the command to run)")
    elif (not run or not run.strip()) and isinstance(f["run"][1], ScalarNode):
        ctx.warn(f["run"][0], f"{path}.run", "is empty: the activity does nothing")
        run = ""
    a["run"] = run
    if "dependsOn" in f:
        a["_deps"] = F.str_list(ctx, f["dependsOn"], f"{path}.dependsOn") or []
    vals = F.read_fields(ctx, f, F.ACT_FIELDS, path)
    try:
        a["resources"] = Resources(**{k[4:]: v for k, v in vals.items() if k.startswith("res.")})
    except ValidationError as e:
        for err in e.errors():
            ctx.err(node, f"{path}.{'.'.join(str(p) for p in err['loc'])}", err["msg"])
    a.update((k, v) for k, v in vals.items() if not k.startswith("res."))
    return {k: v for k, v in a.items() if v is not None}
