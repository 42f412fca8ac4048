"""A small pipeline written with akoflow's Python API: `akoflow run examples/pipeline.py`.

Each decorated function runs once, when the workflow is compiled, and returns the bash text
of its activity. `Result("x")` adds a dependency on job `x`; `RunDir` is the working
directory; parameters come from `-p name=value` on the command line.
"""

from typing import Annotated

from akoflow.spec import Param, Result, RunDir, Workflow

wf = Workflow("wordcount")


@wf.job(cpu=1, memory="64Mi")
def make_text(lines: Annotated[int, Param(default=200)]) -> str:
    return f"for i in $(seq 1 {lines}); do echo \"line $i of the input\"; done > input.txt"


@wf.job(memory="64Mi")
def count_words(src: Annotated[str, Result("make_text")]) -> str:
    return f"wc -w < {src}/input.txt > words.txt"


@wf.job(memory="64Mi")
def count_lines(src: Annotated[str, Result("make_text")]) -> str:
    return f"wc -l < {src}/input.txt > lines.txt"


@wf.job()
def report(
    words: Annotated[str, Result("count_words")],
    lines: Annotated[str, Result("count_lines")],
    out: Annotated[str, RunDir],
) -> str:
    summary = f'"$(cat {lines}/lines.txt) lines, $(cat {words}/words.txt) words"'
    return f"echo {summary} > {out}/report.txt"
