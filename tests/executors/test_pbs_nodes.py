"""PBS node inventory parsers on output laid out as the PBS Pro / Torque docs show it."""

from __future__ import annotations

from pathlib import Path

import pytest

from akoflow.executors import pbs_nodes

CAPTURED = Path(__file__).parent / "captured"
GB = 1024**3


def test_pbs_pro_json() -> None:
    nodes = {n.name: n for n in pbs_nodes.parse("pro", (CAPTURED / "pbsnodes_pro.json")
                                                 .read_text())}
    assert set(nodes) == {"node01", "node02", "node03"}
    busy, free, down = nodes["node01"], nodes["node02"], nodes["node03"]
    assert (busy.cpus, busy.cpus_free, busy.memory, busy.memory_free) == (4, 0, 8 * GB, 4 * GB)
    assert busy.state == "allocated" and busy.features == ("ssd",)
    assert (free.cpus_free, free.memory_free) == (7, 31 * GB)
    assert free.partitions == ("workq",) and free.state == "idle"
    assert down.state == "down" and down.cpus_free == 0 and down.memory_free == 0


def test_torque_xml() -> None:
    nodes = {n.name: n for n in pbs_nodes.parse("torque", (CAPTURED / "pbsnodes_torque.xml")
                                                 .read_text())}
    n01, n02 = nodes["n01"], nodes["n02"]
    assert (n01.cpus, n01.cpus_free) == (4, 1)  # one slot for job 123, two for 124
    assert n01.memory == 8_000_000 * 1024 and n01.memory_free == 7_000_000 * 1024
    assert n01.features == ("bigmem", "ssd")
    assert n02.state == "down" and n02.cpus_free == 0


@pytest.mark.parametrize(("text", "value"), [
    ("8gb", 8 * GB), ("16384kb", 16 * 2**20), ("1024", 1024), ("2mw", 16 * 2**20),
    ("1.5gb", int(1.5 * GB)),
])
def test_sizes(text: str, value: int) -> None:
    assert pbs_nodes.size_bytes(text) == value


def test_bad_size_is_refused() -> None:
    with pytest.raises(ValueError):
        pbs_nodes.size_bytes("lots")
