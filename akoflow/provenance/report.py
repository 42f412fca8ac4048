"""A self-contained HTML report of one workflow run, for people (`akoflow report`).

    from akoflow.provenance.report import write_report
    write_report(manifest, wf_id, Path("run.html"))

One file, no network: inline CSS, SVG drawn here from the manifest's numbers, and no script at
all. Reports get mailed, attached to tickets and opened on air-gapped clusters, so nothing may
be fetched; and they show text the workflow produced (activity names, stderr, paths), so a
Content-Security-Policy forbids scripts and remote loads outright — escaping is the first
defence, the policy the second.

Sections (each an element id): summary, dag, timeline, resources, slowest, memory, failures,
files. Big workflows stay small: the DAG is grouped past 300 activities, the resource charts
show the top 20 activities, the files table stops at 2,000 rows (Montage, 619 activities and
26,000 file records, renders to well under 1 MB).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from akoflow.manifest import Manifest
from akoflow.provenance.report_base import attrs, esc, fmt_time, state_css
from akoflow.provenance.report_charts import render_resources, render_timeline
from akoflow.provenance.report_dag import render_dag
from akoflow.provenance.report_data import ReportData, load_report_data
from akoflow.provenance.report_tables import (
    render_attempts,
    render_failures,
    render_files,
    render_memory,
    render_slowest,
    render_summary,
)

__all__ = ["SECTIONS", "render_html", "render_report", "write_report"]

SECTIONS = (
    ("summary", "Summary", render_summary),
    ("dag", "DAG", render_dag),
    ("timeline", "Timeline", render_timeline),
    ("attempts", "Every attempt", render_attempts),
    ("resources", "CPU & memory", render_resources),
    ("slowest", "Slowest activities", render_slowest),
    ("memory", "Most memory", render_memory),
    ("failures", "Failures", render_failures),
    ("files", "Files", render_files),
)

# No script may run and nothing may load from anywhere: only inline styles and data: images.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none';"
       " form-action 'none'")

CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:#1d232b;background:#f4f6f9}
header{background:#1f2a3a;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px;font-weight:600}
header .sub{opacity:.75;font-size:13px}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #dde2ea;
padding:6px 24px;display:flex;flex-wrap:wrap;gap:4px 16px}
nav a{color:#2a5db0;text-decoration:none;font-size:13px}
main{max-width:1320px;margin:0 auto;padding:8px 24px 40px}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;margin:16px 0;
padding:12px 18px}
h2{font-size:17px;margin:4px 0 10px}
h3{font-size:14px;margin:6px 0}
.note{color:#5a6472;font-size:13px;margin:4px 0 8px}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:8px 18px;
margin:0 0 12px}
.facts dt{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:#6b7584}
.facts dd{margin:0;font-weight:600;overflow-wrap:anywhere}
.counts,.legend{list-style:none;padding:0;margin:6px 0;display:flex;flex-wrap:wrap;gap:6px 14px}
.chip{background:#f0f2f6;border-radius:12px;padding:2px 10px}
.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;
vertical-align:-1px}
.legend{font-size:12px;color:#5a6472}
.scroll{overflow:auto;border:1px solid #eef0f4;border-radius:6px;background:#fcfcfd}
.dag-box{max-height:640px}.fit{max-width:100%;height:auto;display:block}.gantt-box{max-height:720px}
svg text{font-size:11px;fill:#2b3340}
svg .axis{font-size:10px;fill:#6b7584}
.node text,.group text{font-size:11.5px}
.node text{fill:#fff}.node.light text{fill:#222}
.group .box{fill:#eef3fb;stroke:#9db4d8}
.edge{fill:none;stroke:#9aa6b8;stroke-width:1.2;marker-end:url(#arrow)}
.arrowhead{fill:#9aa6b8}
.grid{stroke:#e6e9ef;stroke-width:1}
.queue{fill:#d7dce4}
.frame{fill:#fbfcfd;stroke:#e1e5ec}
.series{fill:none;stroke-width:1.5}
.minis{display:grid;grid-template-columns:repeat(auto-fill,minmax(310px,1fr));gap:10px}
.mini{margin:0;border:1px solid #eef0f4;border-radius:6px;padding:4px}
.mini figcaption{font-size:12px;font-weight:600;overflow-wrap:anywhere}
.mini figcaption span{font-weight:400;color:#6b7584}
table.data{border-collapse:collapse;width:100%;font-size:13px}
table.data th{text-align:left;font-weight:600;color:#4a5462;border-bottom:2px solid #dde2ea;
padding:4px 8px;position:sticky;top:0;background:#fff}
table.data td{border-bottom:1px solid #eef0f4;padding:3px 8px;vertical-align:top}
table.data .num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name,td.path{overflow-wrap:anywhere}
td.path{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
.tag{border-radius:9px;padding:0 7px;font-size:11px;color:#fff}
.tag.s-SKIPPED,.tag.s-PENDING,.tag.s-READY,.tag.s-QUEUED,.tag.s-SUBMITTING{color:#222}
.failure{border-left:4px solid #d64545;padding:2px 12px;margin:10px 0;background:#fdf7f7}
.failure .path{font-size:12px;color:#6b7584;margin:2px 0;overflow-wrap:anywhere}
pre{background:#1f2430;color:#e8e8e8;padding:8px 10px;border-radius:6px;overflow:auto;
max-height:320px;font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;white-space:pre-wrap;
overflow-wrap:anywhere}
.files-box{max-height:600px}
.message{color:#9a3b3b}
footer{color:#8a93a0;font-size:12px;text-align:center;padding:12px}
"""


def render_html(d: ReportData) -> str:
    """The page for already-loaded data (pure: no manifest access)."""
    w = d.workflow
    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in SECTIONS)
    sections = []
    for sid, title, render in SECTIONS:
        sections.append(f'<section{attrs(id=sid)}><h2>{esc(title)}</h2>{render(d)}</section>')
    title = f"akoflow report: {w.name} #{w.id}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}{state_css()}</style></head>"
        f'<body{attrs(data_workflow=w.name, data_workflow_id=w.id, data_status=w.status)}>'
        f'<header><h1>{esc(w.name)} <span class="sub">#{w.id} · {esc(w.status)}</span></h1>'
        f'<div class="sub">akoflow run report · generated {esc(fmt_time(d.now))}</div>'
        f"</header><nav>{nav}</nav><main>{''.join(sections)}</main>"
        "<footer>Self-contained: no scripts, no network. Times are relative to the workflow's "
        "start unless shown as dates.</footer></body></html>\n"
    )


def render_report(m: Manifest, wf_id: int) -> str:
    """The report of workflow `wf_id` as one HTML string."""
    return render_html(load_report_data(m, wf_id))


def write_report(m: Manifest, wf_id: int, out: Path) -> Path:
    """Write the report to `out` (atomically: a reader never sees half a page); returns it.

    `out` may be a directory, in which case the file is `<workflow>-<id>.html` inside it.
    """
    text = render_report(m, wf_id)
    out = Path(out)
    if out.is_dir():
        wf = m.get_workflow(wf_id)
        out = out / f"{wf.name}-{wf.id}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
