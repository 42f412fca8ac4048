"""Slurm node parsers on output captured from the test cluster (nodes small/big)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

# executors/ installs as akoflow.executors through a package-dir mapping mypy cannot follow.
sn = importlib.import_module("akoflow.executors.slurm_nodes")

CAPTURED = Path(__file__).resolve().parents[1] / "executors" / "captured"
MiB = 1024**2


def read(name: str) -> str:
    return (CAPTURED / f"slurm_nodes_{name}.txt").read_text()


@pytest.mark.parametrize("parser,kind", [(sn.parse_sinfo, "sinfo"),
                                          (sn.parse_scontrol, "scontrol")])
def test_busy_cluster(parser: object, kind: str) -> None:
    nodes = {n.name: n for n in parser(read(f"{kind}_busy"))}  # type: ignore[operator]
    big, small = nodes["big"], nodes["small"]
    # captured with a 3-cpu 5000M job on big and a 1-cpu 500M job on small
    assert (big.cpus, big.cpus_free, big.memory, big.memory_free) == \
        (4, 1, 8000 * MiB, 3000 * MiB)
    assert (small.cpus, small.cpus_free, small.memory_free) == (2, 1, 1500 * MiB)
    assert big.features == ("big", "highmem") and small.features == ("small", "ssd")
    assert big.partitions == ("debug", "bigmem") and small.partitions == ("debug",)
    assert big.state == "mixed"


@pytest.mark.parametrize("parser,kind", [(sn.parse_sinfo, "sinfo"),
                                          (sn.parse_scontrol, "scontrol")])
def test_idle_cluster(parser: object, kind: str) -> None:
    nodes = parser(read(f"{kind}_idle"))  # type: ignore[operator]
    assert [(n.name, n.cpus_free, n.memory_free, n.state) for n in nodes] == \
        [("big", 4, 8000 * MiB, "idle"), ("small", 2, 2000 * MiB, "idle")]


def test_unavailable_states_offer_no_room() -> None:
    line = read("sinfo_idle").splitlines()[2].replace("|idle|", "|idle+drain|")
    [n] = sn.parse_sinfo(line)
    assert n.name == "small" and n.cpus_free == 0 and n.memory_free == 0 and n.cpus == 2
    assert sn.available("mixed") and not sn.available("down*") and not sn.available("idle~")
    assert sn.state_words("IDLE+DRAIN") == ["idle", "drain"]


def test_scontrol_values_with_spaces_and_garbage() -> None:
    line = read("scontrol_idle").splitlines()[0]
    assert sn._pairs(line)["OS"].startswith("Linux ") and "#1 SMP" in sn._pairs(line)["OS"]
    with pytest.raises(sn.NodeParseError):
        sn.parse_sinfo("big|debug|x|8000|0|1|f|idle|")
    with pytest.raises(sn.NodeParseError):
        sn.parse_scontrol("something else entirely")
    assert sn.sinfo_argv()[:3] == ["sinfo", "--Node", "--noheader"]
    assert sn.scontrol_argv() == ["scontrol", "show", "node", "--oneliner"]
