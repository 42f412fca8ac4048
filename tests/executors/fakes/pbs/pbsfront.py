"""Fake PBS Pro / Torque clients (qsub, qstat, qdel) on the fakesched engine.

Flavor from $FAKE_PBS_FLAVOR (`pro`, default, or `torque`). Honoured: `#PBS` directives before
the first command line (command line wins), -N -o -e -q -A -l (walltime enforced) -W depend=
(after, afterok, afternotok, afterany; Torque also afterokarray/afteranyarray) -J (Pro) / -t
(Torque) arrays with `%` throttle, -a start time, -V / -v environment, -r, -h. Output formats:
Pro `qstat -f -F json [-x] [-t]`, Torque `qstat -x [-t]` (XML); plain tables otherwise.
Jobs start in $HOME, as PBS starts them; dependants whose dependency can never hold are deleted.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import fakesched as fs

SERVER = "fakeserver"
FLAVOR = os.environ.get("FAKE_PBS_FLAVOR", "pro")
WITH_ARG = set("aAcCelmMNopPqrSWuvz") | {"J" if FLAVOR == "pro" else "t"}
FLAGS = set("VhIzfx")
KINDS = {"after": "started", "afterok": "ok", "afternotok": "notok", "afterany": "any",
         "afterokarray": "ok", "afteranyarray": "any", "afternotokarray": "notok"}


def fail(msg: str, code: int = 2) -> None:
    print(f"{Path(sys.argv[0]).name}: {msg}", file=sys.stderr)
    sys.exit(code)


def parse_opts(tokens: list[str], opts: dict[str, Any]) -> list[str]:
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if rest or not tok.startswith("-") or len(tok) < 2:
            rest.append(tok)
        elif tok[1] in FLAGS and len(tok) == 2:
            opts[tok[1]] = True
        elif tok[1] in WITH_ARG:
            value = tok[2:] or (tokens[i + 1] if i + 1 < len(tokens) else fail(
                f"option requires an argument -- '{tok[1]}'"))
            i += 0 if tok[2:] else 1
            if tok[1] in "lWv":
                opts.setdefault(tok[1], []).append(value)
            else:
                opts[tok[1]] = value
        else:
            fail(f"invalid option -- '{tok[1]}'")
        i += 1
    return rest


def directives(text: str) -> list[str]:
    tokens: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#PBS"):
            tokens += shlex.split(stripped[4:])
        elif stripped and not stripped.startswith("#"):
            break  # PBS stops reading directives at the first command
    return tokens


def seconds(text: str) -> int:
    parts = [int(float(p)) for p in text.split(":")]
    total = 0
    for p in parts:
        total = total * 60 + p
    return total


def start_time(text: str) -> float:
    """`-a [[[[CC]YY]MM]DD]hhmm[.SS]` in local time."""
    m = re.match(r"^(\d{4,12})(?:\.(\d\d))?$", text)
    if not m or len(m.group(1)) % 2:
        fail(f"illegal -a value {text}")
    digits = m.group(1)
    now = time.localtime()
    year, month, day = now.tm_year, now.tm_mon, now.tm_mday
    head = digits[:-4]
    if len(head) >= 2:
        day = int(head[-2:])
    if len(head) >= 4:
        month = int(head[-4:-2])
    if len(head) == 6:
        year = 2000 + int(head[:2])
    elif len(head) == 8:
        year = int(head[:4])
    stamp = (year, month, day, int(digits[-4:-2]), int(digits[-2:]), int(m.group(2) or 0),
             0, 0, -1)
    return time.mktime(stamp)


def array_indices(spec: str) -> tuple[list[int], int | None]:
    body, _, throttle = spec.partition("%")
    if FLAVOR == "pro":
        m = re.match(r"^(\d+)-(\d+)(?::(\d+))?$", body)
        if not m or int(m.group(1)) > int(m.group(2)):
            fail(f"illegal -J value {spec}")
        idx = list(range(int(m.group(1)), int(m.group(2)) + 1, int(m.group(3) or 1)))
    else:
        idx = []
        for part in body.split(","):
            lo, _, hi = part.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                fail(f"illegal -t value {spec}")
            idx += list(range(int(lo), int(hi or lo) + 1))
    return idx, int(throttle) if throttle else None


def job_ref(text: str) -> str:
    return text.split(".", 1)[0].replace("[]", "")


def deps(values: list[str], state: fs.State) -> dict[str, Any] | None:
    terms = []
    for value in values:
        if not value.startswith("depend="):
            continue
        for part in value[len("depend="):].split(","):
            kind, *ids = part.split(":")
            if kind not in KINDS or not ids:
                fail(f"illegal -W value {value}")
            for jid in ids:
                if fs.target_units(state, job_ref(jid)) is None:
                    fail(f"Unknown Job Id {jid}", 153)
                terms.append((KINDS[kind], job_ref(jid)))
    return {"op": "and", "terms": terms} if terms else None


def log_path(given: str | None, name: str, jid: str, idx: str, kind: str, cwd: str) -> str:
    stem = f"{name}.{kind}{jid}"
    if not given:
        return f"{cwd}/{stem}" + (f".{idx}" if idx and FLAVOR == "pro" else f"-{idx}" if idx
                                  else "")
    given = given.split(":", 1)[1] if re.match(r"^[A-Za-z0-9.-]+:/", given) else given
    if given.endswith("/"):
        return given + stem + ((f".{idx}" if FLAVOR == "pro" else f"-{idx}") if idx else "")
    if FLAVOR == "pro":
        return given.replace("^array_index^", idx)
    return given + (f"-{idx}" if idx else "")


def qsub(argv: list[str]) -> None:
    cli: dict[str, Any] = {}
    rest = parse_opts(argv, cli)
    if not rest:
        fail("a script file is required (stdin is not supported by this fake)")
    script = Path(rest[0])
    try:
        text = script.read_text()
    except OSError as exc:
        fail(f"script file cannot be loaded - {exc.strerror}")
    opts: dict[str, Any] = {}
    parse_opts(directives(text), opts)
    for key, value in cli.items():
        opts[key] = opts.get(key, []) + value if key in "lWv" else value
    resources: dict[str, str] = {}
    for item in opts.get("l", []):
        for part in re.split(r",(?=[A-Za-z_]+=)", item):
            key, _, value = part.partition("=")
            resources[key] = value
    cwd = os.getcwd()
    base = dict(os.environ) if opts.get("V") else {
        "HOME": os.environ.get("HOME", "/"), "PATH": "/usr/local/bin:/usr/bin:/bin",
        "USER": getpass.getuser(), "LOGNAME": getpass.getuser(), "SHELL": "/bin/bash"}
    for item in opts.get("v", []):
        for pair in item.split(","):
            key, _, value = pair.partition("=")
            base[key] = value if "=" in pair else os.environ.get(key, "")
    base |= {"PBS_O_WORKDIR": cwd, "PBS_O_HOME": os.environ.get("HOME", "/"),
             "PBS_O_HOST": fs.HOST, "PBS_O_PATH": os.environ.get("PATH", ""),
             "PBS_ENVIRONMENT": "PBS_BATCH", "PBS_QUEUE": opts.get("q", "workq")}
    array = opts.get("J" if FLAVOR == "pro" else "t")
    indices, throttle = array_indices(array) if array else ([], None)
    name = opts.get("N", script.name)
    if not re.match(r"^[A-Za-z0-9_.+-]{1,236}$", name):
        fail(f"illegal -N value {name}")
    with fs.locked() as state:
        fs.tick(state, fs.NEVER_POLICIES["delete"])
        jid = fs.new_id(state)
        spool = fs.home() / "run" / f"{jid}.script"
        spool.write_text(text)  # PBS spools the script: later edits do not matter
        units = {}
        for idx in [str(i) for i in indices] or [""]:
            uid = f"{jid}[{idx}].{SERVER}" if idx else f"{jid}.{SERVER}"
            env = base | {"PBS_JOBID": uid, "PBS_JOBNAME": name}
            if idx:
                env |= ({"PBS_ARRAY_INDEX": idx, "PBS_ARRAY_ID": f"{jid}[].{SERVER}"}
                        if FLAVOR == "pro" else {"PBS_ARRAYID": idx})
            units[idx] = {
                "state": "queued", "uid": uid, "argv": ["/bin/bash", str(spool)], "env": env,
                "cwd": os.environ.get("HOME", "/"),
                "out": log_path(opts.get("o"), name, jid, idx, "o", cwd),
                "err": log_path(opts.get("e"), name, jid, idx, "e", cwd)}
        state["jobs"][jid] = {
            "id": jid, "name": name, "owner": getpass.getuser(), "queue": opts.get("q", "workq"),
            "account": opts.get("A"), "resources": resources, "submit": time.time(),
            "walltime": seconds(resources["walltime"]) if "walltime" in resources else None,
            "after": start_time(opts["a"]) if "a" in opts else None, "hold": opts.get("h"),
            "deps": deps(opts.get("W", []), state), "throttle": throttle, "units": units,
            "array": array, "depend": [w for w in opts.get("W", []) if w.startswith("depend=")]}
        fs.tick(state, fs.NEVER_POLICIES["delete"])
    fs.ensure_server("delete")
    print(f"{jid}[].{SERVER}" if array else f"{jid}.{SERVER}")


# -- qstat --------------------------------------------------------------------------------------

def _stamp(t: float | None) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(t or 0))


def unit_code(job: dict[str, Any], unit: dict[str, Any], subjob: bool) -> str:
    if unit["state"] == "running":
        return "E" if unit.get("deleting") else "R"
    if unit["state"] == "done":
        return "C" if FLAVOR == "torque" else ("X" if subjob else "F")
    if job.get("hold") or (job.get("deps") and job.get("dep_state") != "yes"):
        return "H"
    return "W" if (job.get("after") or 0) > time.time() else "Q"


def exit_status(unit: dict[str, Any]) -> int | None:
    if unit.get("reason") == "walltime" and not unit.get("deleting"):
        return -29 if FLAVOR == "pro" else -11
    if unit.get("signal"):
        return 256 + int(unit["signal"])
    return unit.get("code")


def records(job: dict[str, Any], subjobs: bool) -> list[tuple[str, dict[str, Any]]]:
    """(id, attributes) of a job, of an array's parent, and with -t of each subjob."""
    units = job["units"]
    common = {"Job_Name": job["name"], "Job_Owner": f"{job['owner']}@{fs.HOST}",
              "queue": job["queue"], "server": SERVER, "ctime": _stamp(job["submit"]),
              "Resource_List": job["resources"]}
    if job.get("account"):
        common["Account_Name"] = job["account"]
    if job["depend"]:
        common["depend"] = job["depend"][-1][len("depend="):]
    out = []
    if job["array"]:
        codes = {unit_code(job, u, True) for u in units.values()}
        done = all(u["state"] == "done" for u in units.values())
        parent = "C" if done and FLAVOR == "torque" else "F" if done else \
            next(iter(codes)) if codes <= {"Q", "H", "W"} else ("R" if FLAVOR == "torque" else "B")
        attrs = common | {"job_state": parent, "array": True,
                          "array_indices_submitted": job["array"]}
        if done:
            attrs["Exit_status"] = 0 if all(exit_status(u) == 0 for u in units.values()) else 1
        out.append((f"{job['id']}[].{SERVER}", attrs))
        if not subjobs:
            return out
    for idx, unit in units.items():
        attrs = dict(common, job_state=unit_code(job, unit, bool(idx)),
                     Output_Path=f"{fs.HOST}:{unit['out']}", Error_Path=f"{fs.HOST}:{unit['err']}")
        if idx:
            attrs["array_index"] = idx
        if unit.get("start"):
            attrs |= {"stime": _stamp(unit["start"]), "exec_host": f"{fs.HOST}/0",
                      "start_time": int(unit["start"])}
        if unit["state"] == "done" and exit_status(unit) is not None:
            attrs["Exit_status"] = exit_status(unit)
        if unit.get("reason") == "dependency":
            attrs["comment"] = "Job deleted: dependency can never be satisfied"
        out.append((unit["uid"], attrs))
    return out


def visible(job: dict[str, Any], history: bool) -> bool:
    ended = [u.get("end") or 0 for u in job["units"].values() if u["state"] == "done"]
    if len(ended) < len(job["units"]):
        return True
    if FLAVOR == "torque":  # keep_completed
        return time.time() - max(ended) < float(os.environ.get("FAKESCHED_KEEP", "300"))
    return history


def qstat(argv: list[str]) -> None:
    opts: dict[str, Any] = {}
    flags = set("fxt1wJ")
    ids: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "-F":
            opts["F"] = argv[i + 1]
            i += 1
        elif tok.startswith("-") and set(tok[1:]) <= flags:
            opts |= {c: True for c in tok[1:]}
        elif tok.startswith("-"):
            fail(f"invalid option -- '{tok[1:]}'")
        else:
            ids.append(job_ref(tok))
        i += 1
    with fs.locked() as state:
        fs.tick(state, fs.NEVER_POLICIES["delete"])
        jobs = [j for j in sorted(state["jobs"].values(), key=lambda j: int(j["id"]))
                if (not ids or j["id"] in ids) and (ids or visible(j, bool(opts.get("x"))))]
        missing = [i for i in ids if i not in state["jobs"]]
    if FLAVOR == "torque" and opts.get("x"):
        root = ET.Element("Data")
        for job in jobs:
            for jid, attrs in records(job, bool(opts.get("t"))):
                el = ET.SubElement(root, "Job")
                ET.SubElement(el, "Job_Id").text = jid
                for key, value in attrs.items():
                    key = "exit_status" if key == "Exit_status" else key
                    sub = ET.SubElement(el, key)
                    if isinstance(value, dict):
                        for rk, rv in value.items():
                            ET.SubElement(sub, rk).text = str(rv)
                    else:
                        sub.text = str(value)
        if len(root):
            print(ET.tostring(root, encoding="unicode"))
    elif opts.get("f") and opts.get("F") == "json":
        doc = {"timestamp": int(time.time()), "pbs_version": "2022.1.0 (fake)",
               "pbs_server": SERVER,
               "Jobs": {jid: attrs for job in jobs for jid, attrs in
                        records(job, bool(opts.get("t")))}}
        print(json.dumps(doc, indent=4))
    else:
        print("Job id            Name             User     S Queue")
        print("----------------  ---------------- -------- - -----")
        for job in jobs:
            for jid, attrs in records(job, bool(opts.get("t"))):
                print(f"{jid:<17} {job['name'][:16]:<16} {job['owner'][:8]:<8} "
                      f"{attrs['job_state']} {job['queue']}")
    for jid in missing:
        print(f"qstat: Unknown Job Id {jid}.{SERVER}", file=sys.stderr)
    sys.exit(153 if missing else 0)


def qdel(argv: list[str]) -> None:
    ids = [a for a in argv if not a.startswith("-")]
    if not ids:
        fail("usage: qdel job_identifier...")
    rc = 0
    with fs.locked() as state:
        fs.tick(state, fs.NEVER_POLICIES["delete"])
        for text in ids:
            m = re.match(r"^(\d+)(?:\[(\d*)\])?(?:\.[\w.-]+)?$", text)
            job = state["jobs"].get(m.group(1)) if m else None
            if job is None or (m and m.group(2) and m.group(2) not in job["units"]):
                print(f"qdel: Unknown Job Id {text}", file=sys.stderr)
                rc = 153
                continue
            units = [job["units"][m.group(2)]] if m.group(2) else list(job["units"].values())
            if all(u["state"] == "done" for u in units):
                print(f"qdel: Job has finished {text}", file=sys.stderr)
                rc = 35
                continue
            fs.kill(job, units)
    sys.exit(rc)


COMMANDS = {"qsub": qsub, "qstat": qstat, "qdel": qdel}
