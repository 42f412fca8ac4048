"""Provenance of runs: W3C PROV export, the lineage graph, and Workflow Run RO-Crates.

    from akoflow.provenance import export, to_mermaid, write_crate
    from akoflow.provenance.lineage import lineage

Names are imported on first use: the PROV and RO-Crate libraries are heavy, and the lineage
graph or the CLI should not pay for (or need) them. The `lineage()` function is not
re-exported here on purpose: the package attribute `lineage` is the submodule, and making it
sometimes the function (depending on import order) would break `import ... as`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from akoflow.provenance.crate import write_crate
    from akoflow.provenance.lineage import (
        LineageEdge,
        LineageGraph,
        LineageNode,
        build_graph,
        to_dot,
        to_json,
        to_mermaid,
    )
    from akoflow.provenance.prov import (
        FORMATS,
        build_document,
        export,
        parse,
        relation_counts,
        serialize,
    )

_WHERE = {
    "write_crate": "crate",
    "LineageEdge": "lineage", "LineageGraph": "lineage", "LineageNode": "lineage",
    "build_graph": "lineage", "to_dot": "lineage", "to_json": "lineage",
    "to_mermaid": "lineage",
    "FORMATS": "prov", "build_document": "prov", "export": "prov", "parse": "prov",
    "relation_counts": "prov", "serialize": "prov",
}
__all__ = [
    "FORMATS",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "build_document",
    "build_graph",
    "export",
    "parse",
    "relation_counts",
    "serialize",
    "to_dot",
    "to_json",
    "to_mermaid",
    "write_crate",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
