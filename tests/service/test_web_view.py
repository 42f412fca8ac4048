"""The live web view in a real headless Chromium: while a workflow runs, its page shows the
activities' states change without a reload; no console errors; no request leaves the
machine (every request goes to the service on loopback)."""

from __future__ import annotations

import time

import pytest

from tests.infra.chromium import live_page
from tests.service.served import Served

pytestmark = pytest.mark.infra

STEPS = """name: live-view
spec:
  activities:
    - {name: first, run: 'sleep 2; echo one > one.txt'}
    - {name: second, run: 'sleep 2; cat one.txt > two.txt', dependsOn: [first]}
    - {name: third, run: 'sleep 1; echo boom >&2; exit 4', dependsOn: [second]}
"""
DAG = "Object.fromEntries([...document.querySelectorAll('#dag g.node')]" \
      ".map(g => [g.dataset.activity, g.dataset.state]))"


def test_workflow_page_changes_states_live(served: Served) -> None:
    wf_id = served.submit_yaml(STEPS)
    url = f"{served.url}/#token={served.token}&go=workflow/{wf_id}"
    seen: list[dict[str, str]] = []
    with live_page(url) as (page, result):
        deadline = time.monotonic() + 60
        while not page.evaluate("!!document.querySelector('#dag g.node')"):
            assert time.monotonic() < deadline, "the DAG never appeared"
            time.sleep(0.1)
        page.evaluate("window.__sameDocument = 'yes'")  # a reload would erase it
        assert "token" not in page.evaluate("location.href")  # the fragment is dropped
        while time.monotonic() < deadline:
            dag = page.evaluate(DAG)
            if not seen or seen[-1] != dag:
                seen.append(dag)
            if page.evaluate("document.body.dataset.status") == "FAILED" and \
                    dag.get("third") == "FAILED":
                break
            time.sleep(0.1)
        assert page.evaluate("window.__sameDocument") == "yes"
        log = page.evaluate("window.__akoflow.stateLog")
        page.evaluate("document.querySelector('#log-activity').value = 'third';"
                      "document.querySelector('#log-stream').value = 'stderr';"
                      "document.querySelector('#log-activity').dispatchEvent("
                      "new Event('change'))")
        time.sleep(1.0)
        stderr = page.evaluate("document.querySelector('#log-text').textContent")
        failures = page.evaluate("document.querySelector('#failures').innerText")
        page.evaluate("window.__akoflow")
    states = {name: [s[name] for s in seen] for name in ("first", "second", "third")}
    # Each activity was seen in more than one state on the same page: states changed live.
    assert "RUNNING" in states["second"] and states["second"][-1] == "FINISHED", states
    assert states["third"][0] in ("PENDING", "READY") and states["third"][-1] == "FAILED"
    assert [e[1] for e in log if e[0] == "second"][-1] == "FINISHED"
    assert all(e[3] for e in log)  # every event found its node in the DAG
    assert "boom" in stderr and "third" in failures and "boom" in failures
    assert result.errors() == [], result.errors()
    foreign = [u for u in result.requests if not u.startswith((served.url + "/", "data:"))]
    assert foreign == [], foreign
    assert any(u.startswith(f"{served.url}/akoflow-api/workflows/{wf_id}/events/")
               for u in result.requests)
