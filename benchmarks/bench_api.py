"""The HTTP service under load: `python benchmarks/bench_api.py`.

Against one real `akoflow serve` on loopback (uvicorn, one process), on this machine:
1. 50 concurrent clients (keep-alive connections, each asking again as soon as it has an
   answer) polling a workflow's status for `--seconds`: p50/p99 latency and requests/s, for
   WES `runs/{id}/status` and for `akoflow-api/workflows/{id}/status/` (counts, failures,
   waiting reasons); baseline: the same load on the health check (framework + auth floor).
   Targets: p99 <= 100 ms and >= 500 requests/s.
2. Submissions: POST /akoflow-api/workflows/ of a 4-activity diamond, median of 20;
   baseline: `akoflow submit` of the same file, median of 5. Target: <= 150 ms.
3. Event stream: the time from a state change's run-log timestamp (taken in the committing
   transaction, so an upper bound of the time since commit) to its arrival on the global
   SSE stream, over every state change of 10 workflows. Target: <= 1 s (the hub polls every
   0.2 s).
4. Memory: the server's peak RSS (VmHWM) after 100 workflows of 1,000 activities are in the
   manifest and it has served listings, a 1,000-activity workflow, its tasks and its DAG;
   baseline: its RSS idle on an empty manifest. Target: <= 150 MB.
The clients run in this process on the same 2 cores as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import cleanup, fresh_home, precompile  # noqa: E402

from tests.service.served import Served, server_env, start_server  # noqa: E402

DIAMOND = (ROOT / "examples" / "diamond.yaml").read_text()


async def _client(port: int, path: str, token: str, stop: float, lat: list[float],
                  every: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(every * (len(lat) % 50) / 50)  # spread paced clients over a period
    req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
           "\r\n").encode()
    try:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"error: {path} answered {head[:40]!r}")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if every:
                await asyncio.sleep(max(0.0, t0 + every - time.perf_counter()))
    finally:
        writer.close()


def poll(srv: Served, path: str, clients: int, seconds: float, every: float = 0.0
         ) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, requests/s) of `clients` keep-alive clients polling `path`, each
    as soon as it has an answer (`every` 0: saturation) or once per `every` seconds."""
    lat: list[float] = []

    async def main() -> None:
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(_client(srv.port, path, srv.token, stop, lat, every)
                               for _ in range(clients)))

    t0 = time.perf_counter()
    asyncio.run(main())
    wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100)
    return q[49] * 1000, q[98] * 1000, len(lat) / wall


def submissions(srv: Served, n: int) -> list[float]:
    body = {"workflow": base64.b64encode(DIAMOND.encode()).decode()}
    c = srv.client()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = c.post("/akoflow-api/workflows/", json=body)
        out.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text
        time.sleep(0.3)  # let its dispatcher start, as a user's next click would
    return out


def cli_submits(home: Path, n: int) -> list[float]:
    path = home.parent / f"{home.name}-diamond.yaml"
    path.write_text(DIAMOND)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "akoflow", "submit", str(path)], check=True,
                       env=server_env(home), capture_output=True)
        out.append(time.perf_counter() - t0)
        time.sleep(0.3)
    return out


def event_latency(srv: Served, workflows: int) -> list[float]:
    delays: list[float] = []
    done = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {srv.token}"}
        with httpx.Client(trust_env=False, timeout=120) as c, \
                c.stream("GET", f"{srv.url}/akoflow-api/events/", headers=headers) as r:
            ended = 0
            for line in r.iter_lines():
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                    if "ts" in data and data.get("kind") in ("STATE", "WORKFLOW"):
                        delays.append(time.time() - data["ts"])
                    if data.get("kind") == "WORKFLOW" and data.get("to_status") in (
                            "FINISHED", "FAILED"):
                        ended += 1
                        if ended == workflows:
                            done.set()
                            return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(1.0)
    for _ in range(workflows):
        srv.submit_yaml(DIAMOND)
        time.sleep(0.5)
    done.wait(120)
    return delays


def vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def big_manifest(home: Path, workflows: int, size: int) -> None:
    """Register (not start) `workflows` workflows of `size` activities, in layers of 50."""
    import os

    os.environ["AKOFLOW_HOME"] = str(home)
    from akoflow import service
    from akoflow.spec.models import ActivitySpec, WorkflowSpec

    m = service.open_manifest()
    for w in range(workflows):
        acts = [ActivitySpec(name=f"t{i:04d}", run="true",
                             depends_on=[f"t{i - 50:04d}"] if i >= 50 else [])
                for i in range(size)]
        service.register(m, WorkflowSpec(name=f"big{w:03d}", activities=acts))
    m.close()


def memory(args: argparse.Namespace) -> None:
    home = fresh_home("api-mem")
    srv = start_server(home / "home")
    try:
        idle = vm(srv.proc.pid, "VmRSS")
        big_manifest(home / "home", args.workflows, args.activities)
        c = srv.client()
        for path in ("/akoflow-api/workflows/",
                     "/akoflow-api/workflows/?activities=false&limit=100",
                     "/akoflow-api/workflows/1/", "/akoflow-api/workflows/1/status/",
                     "/ga4gh/wes/v1/runs?page_size=100",
                     "/ga4gh/wes/v1/runs/1/tasks?page_size=1000",
                     "/akoflow-api/workflows/1/view/dag",
                     "/akoflow-api/workflows/50/activities/"):
            assert c.get(path).status_code == 200, path
        peak, now = vm(srv.proc.pid, "VmHWM"), vm(srv.proc.pid, "VmRSS")
    finally:
        srv.stop()
        cleanup(home)
    print(f"server RSS idle on an empty manifest (baseline) {idle:.1f} MB")
    print(f"server peak RSS with {args.workflows} workflows x {args.activities} activities "
          f"{peak:.1f} MB (now {now:.1f} MB; target <= 150 MB; {peak / idle:.2f}x idle)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=625.0,
                    help="offered requests/s of the paced runs (all clients together)")
    ap.add_argument("--workflows", type=int, default=100)
    ap.add_argument("--activities", type=int, default=1000)
    args = ap.parse_args()
    precompile()
    home = fresh_home("api")
    srv = start_server(home / "home")
    try:
        wf_id = srv.submit_yaml(DIAMOND)
        srv.wait_status(wf_id)
        base = poll(srv, "/akoflow-server/check-service/", args.clients, args.seconds)
        print(f"health check, {args.clients} clients (baseline): p50 {base[0]:.1f} ms, "
              f"p99 {base[1]:.1f} ms, {base[2]:.0f} req/s")
        every = args.clients / args.rate
        for name, path in (("WES status", f"/ga4gh/wes/v1/runs/{wf_id}/status"),
                           ("akoflow status", f"/akoflow-api/workflows/{wf_id}/status/")):
            for mode, pace in (("flat out", 0.0), (f"each every {every * 1000:.0f} ms", every)):
                p50, p99, rps = poll(srv, path, args.clients, args.seconds, pace)
                print(f"{name}, {args.clients} clients {mode}: p50 {p50:.1f} ms, p99 "
                      f"{p99:.1f} ms (target <= 100), {rps:.0f} req/s (target >= 500); "
                      f"{rps / base[2]:.2f}x the health check's flat-out rate")
        api = statistics.median(submissions(srv, 20))
        cli = statistics.median(cli_submits(home / "home", 5))
        print(f"submission over HTTP: median {api * 1000:.0f} ms (target <= 150); "
              f"`akoflow submit` (baseline) {cli * 1000:.0f} ms; {api / cli:.2f}x")
        delays = event_latency(srv, 10)
        q = statistics.quantiles(delays, n=100)
        print(f"event stream, {len(delays)} state changes: p50 {q[49] * 1000:.0f} ms, "
              f"p99 {q[98] * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms after the "
              f"commit's timestamp (target <= 1000; the hub polls every 200 ms)")
    finally:
        srv.stop()
        cleanup(home)
    memory(args)


if __name__ == "__main__":
    main()
