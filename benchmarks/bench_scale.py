"""Scale figures: a 100,000-activity workflow's dispatch cycle, and its registration.

A dispatch cycle here is one `Dispatcher.cycle()` of the real dispatcher on the real local
executor (in `detached` mode, as `akoflow dispatch` runs it): 1,000 ready roots, each the head
of a chain of 100, so 99,000 activities wait. The figure covers ingest, reconcile, claiming
1,000 intents, writing 1,000 attempt directories and handing them to the executor.
Usage: python benchmarks/bench_scale.py
"""

from __future__ import annotations

import os
import resource
import time

from _common import cleanup, figure, fresh_home


def main() -> None:
    home = fresh_home("scale")
    os.environ["AKOFLOW_HOME"] = str(home)
    from akoflow import service
    from akoflow.dispatch.cycle import Dispatcher
    from akoflow.sites import SiteResolver
    from akoflow.spec.models import ActivitySpec, WorkflowSpec

    acts = []
    for c in range(1000):
        for i in range(100):
            acts.append(ActivitySpec(name=f"c{c}-{i}", run="true",
                                     depends_on=[f"c{c}-{i - 1}"] if i else []))
    spec = WorkflowSpec(name="scale", activities=acts)
    m = service.open_manifest()
    start = time.perf_counter()
    wf = m.register_workflow(spec, run_root=str(home / "runs"))
    figure("register_100000_s", time.perf_counter() - start)
    resolver = SiteResolver(overrides={"*": {"detached": True}})
    d = Dispatcher(m, wf.id, resolver, service.dispatch_config())
    start = time.perf_counter()
    report = d.cycle(force_poll=True)
    figure("dispatch_cycle_100000_with_1000_ready_s", time.perf_counter() - start)
    assert report.submitted == 1000, report.submitted
    start = time.perf_counter()
    d.cycle(force_poll=True)
    figure("dispatch_cycle_100000_second_cycle_s", time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figure("dispatcher_peak_rss", peak, "MB")
    service.cancel(m, wf.id)
    cleanup(home)


if __name__ == "__main__":
    main()
