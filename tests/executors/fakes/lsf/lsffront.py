"""Fake LSF clients (bsub, bjobs, bkill) on the fakesched engine (tests/executors/fakes/pbs).

Honoured: options on the command line only (as with LSB_BSUB_PARSE_SCRIPT=N), -J with arrays
`name[1-N]%k` (LSB_JOBINDEX 1-based), -o/-e with %J/%I, -W [HH:]MM enforced (one "minute" is
$FAKE_LSF_MINUTE seconds, default 60, so tests can hit a run limit quickly), -w with done() /
ended() / exit() / started() joined by && or ||, -b [[[YYYY:]MM:]DD:]HH:MM, -n -q -P -R -M
-m -gpu -U -x recorded. Jobs inherit the submission environment and directory, as in LSF.
A dependency that can never hold leaves its job pending, as LSF does. bjobs: -a -u -J -noheader
-o "fields [delimiter='c']" -json; finished jobs are listed with -a.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pbs"))
import fakesched as fs

WITH_ARG = {"-J", "-o", "-e", "-q", "-P", "-n", "-R", "-M", "-W", "-w", "-b", "-m", "-gpu",
            "-U", "-app", "-G", "-sla", "-cwd", "-env", "-g", "-oo", "-eo"}
FLAGS = {"-x", "-K", "-r", "-rn", "-B", "-N"}
KINDS = {"done": "ok", "ended": "any", "exit": "notok", "started": "started"}
KEEP = "keep"


def fail(msg: str, code: int = 255) -> None:
    print(msg, file=sys.stderr)
    sys.exit(code)


def minutes(text: str) -> int:
    m = re.match(r"^(?:(\d+):)?(\d+)$", text)
    if not m:
        fail(f"{text}: Bad RUNLIMIT specification. Job not submitted.")
    return int(m.group(1) or 0) * 60 + int(m.group(2))


def begin(text: str) -> float:
    parts = [int(p) for p in text.split(":")]
    now = time.localtime()
    year, month, day = now.tm_year, now.tm_mon, now.tm_mday
    if len(parts) < 2 or len(parts) > 5:
        fail(f"{text}: Bad time specification. Job not submitted.")
    hour, minute = parts[-2:]
    head = parts[:-2]
    if head:
        day = head[-1]
    if len(head) >= 2:
        month = head[-2]
    if len(head) == 3:
        year = head[0]
    return time.mktime((year, month, day, hour, minute, 0, 0, 0, -1))


def resolve(state: fs.State, ref: str) -> str:
    """A dependency operand: a job id, `id[index]`, or a job name (its latest job)."""
    if re.match(r"^\d+(\[\d+\])?$", ref):
        if fs.target_units(state, ref) is None:
            fail(f"{ref}: No matching job found. Job not submitted.")
        return ref
    named = [j for j in state["jobs"].values() if j["name"] == ref]
    if not named:
        fail(f"{ref}: No matching job found. Job not submitted.")
    return max(named, key=lambda j: int(j["id"]))["id"]


def dependency(expr: str, state: fs.State) -> dict[str, Any]:
    has_and, has_or = "&&" in expr, "||" in expr
    if has_and and has_or:
        fail("Mixed && and || are not supported by this fake. Job not submitted.")
    terms = []
    for part in re.split(r"&&|\|\|", expr):
        m = re.match(r"^\s*(done|ended|exit|started)\(\s*([^()\s]+)\s*\)\s*$", part)
        if not m:
            fail(f"{expr}: Dependency condition syntax error. Job not submitted.")
        terms.append((KINDS[m.group(1)], resolve(state, m.group(2))))
    return {"op": "or" if has_or else "and", "terms": terms}


def parse_name(text: str) -> tuple[str, list[int], int | None]:
    m = re.match(r"^([^\[\]]+)(?:\[([0-9,\-:]+)\](?:%(\d+))?)?$", text)
    if not m:
        fail(f"{text}: Bad job name. Job not submitted.")
    indices: list[int] = []
    for part in (m.group(2) or "").split(",") if m.group(2) else []:
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or int(lo) < 1:
            fail(f"{text}: Bad job array index list. Job not submitted.")
        indices += list(range(int(lo), int(hi or lo) + 1))
    return m.group(1), indices, int(m.group(3)) if m.group(3) else None


def bsub(argv: list[str]) -> None:
    opts: dict[str, Any] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in FLAGS:
            opts[argv[i]] = True
        elif argv[i] in WITH_ARG and i + 1 < len(argv):
            opts.setdefault(argv[i], []).append(argv[i + 1])
            i += 1
        else:
            fail(f"bsub: illegal option -- {argv[i]}")
        i += 1
    command = argv[i:]
    if not command:
        fail("bsub: no command given (stdin is not supported by this fake)")
    name, indices, throttle = parse_name(opts.get("-J", [Path(command[0]).name])[-1])
    scale = float(os.environ.get("FAKE_LSF_MINUTE", "60"))
    cwd = opts.get("-cwd", [os.getcwd()])[-1]
    queue = opts.get("-q", ["normal"])[-1]
    with fs.locked() as state:
        fs.tick(state, fs.NEVER_POLICIES[KEEP])
        jid = fs.new_id(state)
        units = {}
        for idx in [str(n) for n in indices] or [""]:
            env = dict(os.environ) | {
                "LSB_JOBID": jid, "LSB_JOBINDEX": idx or "0", "LSB_QUEUE": queue,
                "LSB_JOBNAME": f"{name}[{idx}]" if idx else name, "LSB_HOSTS": fs.HOST,
                "LSB_MCPU_HOSTS": f"{fs.HOST} 1"}

            def path(flag: str, kind: str, idx: str = idx) -> str:
                given = (opts.get(flag) or opts.get(flag + "o") or [None])[-1]
                text = given or f"{cwd}/lsf.{kind}.%J" + (".%I" if idx else "")
                return text.replace("%J", jid).replace("%I", idx or "0")
            units[idx] = {"state": "queued", "uid": f"{jid}[{idx}]" if idx else jid,
                          "argv": ["/bin/sh", "-c", shlex.join(command)], "env": env,
                          "cwd": cwd, "out": path("-o", "out"), "err": path("-e", "err")}
        state["jobs"][jid] = {
            "id": jid, "name": name, "owner": getpass.getuser(), "queue": queue,
            "project": opts.get("-P", ["default"])[-1], "submit": time.time(),
            "walltime": minutes(opts["-W"][-1]) * scale if "-W" in opts else None,
            "after": begin(opts["-b"][-1]) if "-b" in opts else None,
            "deps": dependency(opts["-w"][-1], state) if "-w" in opts else None,
            "throttle": throttle, "units": units, "array": bool(indices),
            "options": {k: v for k, v in opts.items() if k not in ("-w",)}}
        fs.tick(state, fs.NEVER_POLICIES[KEEP])
    fs.ensure_server(KEEP)
    where = f"queue <{queue}>" if "-q" in opts else f"default queue <{queue}>"
    print(f"Job <{jid}> is submitted to {where}.")


# -- bjobs ---------------------------------------------------------------------------------------

def _stat(job: dict[str, Any], unit: dict[str, Any]) -> str:
    if unit["state"] == "running":
        return "RUN"
    if unit["state"] == "queued":
        return "PEND"
    return "DONE" if unit.get("code") == 0 and not unit.get("reason") else "EXIT"


def _fields(job: dict[str, Any], idx: str, unit: dict[str, Any]) -> dict[str, str]:
    stat = _stat(job, unit)
    code, reason = "-", "-"
    if stat == "EXIT":
        why = unit.get("reason")
        sig = unit.get("signal")
        code = str(unit["code"]) if unit.get("code") is not None else str(128 + (sig or 15))
        if why == "walltime" and not unit.get("deleting"):
            reason = "TERM_RUNLIMIT: job killed after reaching LSF run time limit"
        elif why in ("deleted", "walltime"):
            reason = "TERM_OWNER: job killed by owner"
        elif why == "lost":
            reason = "TERM_UNKNOWN: LSF cannot determine a termination reason"
    pend = "-"
    if stat == "PEND":
        pend = ("Dependency condition invalid or never satisfied"
                if job.get("dep_state") == "no" else
                "Job dependency condition not satisfied" if job.get("dep_state") == "wait"
                else "The job has a specified start time" if (job.get("after") or 0) > time.time()
                else "New job is waiting for scheduling")
    start = time.strftime("%b %d %H:%M", time.localtime(unit["start"])) \
        if unit.get("start") else "-"
    return {"jobid": job["id"], "jobindex": idx or "0", "stat": stat, "user": job["owner"],
            "queue": job["queue"], "proj_name": job["project"],
            "job_name": f"{job['name']}[{idx}]" if idx else job["name"],
            "exit_code": code, "exit_reason": reason, "pend_reason": pend,
            "exec_host": unit.get("host", "-") if unit.get("start") else "-",
            "from_host": fs.HOST, "start_time": start,
            "submit_time": time.strftime("%b %d %H:%M", time.localtime(job["submit"]))}


def bjobs(argv: list[str]) -> None:
    fmt = "jobid user stat queue from_host exec_host job_name submit_time"
    opts: dict[str, Any] = {}
    ids: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("-o", "-u", "-J"):
            opts[tok] = argv[i + 1]
            i += 1
        elif tok in ("-a", "-json", "-noheader", "-d", "-r", "-p", "-w"):
            opts[tok] = True
        elif tok.startswith("-"):
            fail(f"bjobs: illegal option -- {tok}")
        else:
            ids.append(tok)
        i += 1
    spec = opts.get("-o", fmt)
    delim = " "
    m = re.search(r"\s*delimiter='(.)'\s*$", spec)
    if m:
        delim, spec = m.group(1), spec[:m.start()]
    fields = [f.split(":")[0].lower() for f in spec.split()]
    pattern = opts.get("-J")
    with fs.locked() as state:
        fs.tick(state, fs.NEVER_POLICIES[KEEP])
        rows = []
        for job in sorted(state["jobs"].values(), key=lambda j: int(j["id"])):
            for idx, unit in job["units"].items():
                ref = f"{job['id']}[{idx}]" if idx else job["id"]
                if ids and job["id"] not in ids and ref not in ids:
                    continue
                done = unit["state"] == "done"
                if not ids and ((done and not (opts.get("-a") or opts.get("-d")))
                                or (not done and opts.get("-d"))):
                    continue
                values = _fields(job, idx, unit)
                if pattern and not re.fullmatch(re.escape(pattern).replace(r"\*", ".*"),
                                                values["job_name"]):
                    continue
                rows.append(values)
    if opts.get("-json"):
        recs = [{f.upper(): r.get(f, "") for f in fields} for r in rows]
        print(json.dumps({"COMMAND": "bjobs", "JOBS": len(recs), "RECORDS": recs}, indent=2))
    else:
        if not opts.get("-noheader") and rows:
            print(delim.join(f.upper() for f in fields))
        for r in rows:
            print(delim.join(r.get(f, "-") for f in fields))
    if not rows:
        print("No job found" if opts.get("-a") or ids else "No unfinished job found",
              file=sys.stderr)


def bkill(argv: list[str]) -> None:
    ids = [a for a in argv if not a.startswith("-")]
    rc = 0
    with fs.locked() as state:
        fs.tick(state, fs.NEVER_POLICIES[KEEP])
        if ids == ["0"]:
            ids = [j["id"] for j in state["jobs"].values()]
        for text in ids:
            m = re.match(r"^(\d+)(?:\[(\d+)\])?$", text)
            job = state["jobs"].get(m.group(1)) if m else None
            if job is None or (m and m.group(2) and m.group(2) not in job["units"]):
                print(f"Job <{text}>: No matching job found", file=sys.stderr)
                rc = 255
                continue
            units = [job["units"][m.group(2)]] if m.group(2) else list(job["units"].values())
            if all(u["state"] == "done" for u in units):
                print(f"Job <{text}>: Job has already finished", file=sys.stderr)
                rc = 255
                continue
            fs.kill(job, units)
            print(f"Job <{text}> is being terminated")
    sys.exit(rc)


COMMANDS = {"bsub": bsub, "bjobs": bjobs, "bkill": bkill}
