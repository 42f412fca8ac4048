"""Definition layer: every front end (YAML, Python, WfFormat) compiles to one `WorkflowSpec`."""

from akoflow.spec.dag import Dag
from akoflow.spec.dump import dump_yaml
from akoflow.spec.errors import SpecError, SpecIssue
from akoflow.spec.loader import load_workflow, parse_workflow_text
from akoflow.spec.models import ActivitySpec, Resources, WorkflowSpec
from akoflow.spec.python_api import Param, Result, RunDir, Workflow
from akoflow.spec.wfformat import import_wfformat

__all__ = [
    "ActivitySpec",
    "Dag",
    "Param",
    "Resources",
    "Result",
    "RunDir",
    "SpecError",
    "SpecIssue",
    "Workflow",
    "WorkflowSpec",
    "dump_yaml",
    "import_wfformat",
    "load_workflow",
    "parse_workflow_text",
]
