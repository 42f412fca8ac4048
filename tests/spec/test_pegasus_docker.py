"""A Pegasus job whose transformation runs in a catalog container, on the real dockerd."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ak, work_dir
from tests.infra.docker import DockerHost
from tests.infra.docker_fixtures import docker_daemon  # noqa: F401

pytestmark = pytest.mark.infra

WORKFLOW = """\
pegasus: "5.0.4"
name: dock
replicaCatalog:
  replicas:
    - lfn: in.txt
      pfns: [{{site: local, pfn: "file://{data}/in.txt"}}]
transformationCatalog:
  containers:
    - {{name: box, type: docker, image: "docker://{image}"}}
  transformations:
    - name: upper
      sites: [{{name: local, pfn: /bin/busybox, type: installed, container: box}}]
jobs:
  - type: job
    name: upper
    id: J1
    arguments: [tr, a-z, A-Z]
    stdin: in.txt
    stdout: out.txt
    uses: [{{lfn: in.txt, type: input}}, {{lfn: out.txt, type: output}}]
"""


@pytest.fixture
def dhome(docker_daemon: DockerHost, akhome: Path) -> Iterator[Path]:  # noqa: F811
    yield akhome
    docker_daemon.remove(f"akoflow.home={akhome.resolve()}")


def test_container_job_runs_in_its_image(docker_daemon: DockerHost, dhome: Path,  # noqa: F811
                                         tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello\n")
    wf = tmp_path / "wf.yml"
    wf.write_text(WORKFLOW.format(data=tmp_path, image=docker_daemon.image))
    out = ak("run", str(wf), "--site", "docker", home=dhome, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (work_dir(dhome, 1) / "out.txt").read_text() == "HELLO\n"
    acts = json.loads(ak("describe", "1", "--json", home=dhome, check=True).stdout)["activities"]
    runtimes = {a["name"]: (a["runtime"], a["image"]) for a in acts}
    # The stage-in copies on the host; the job runs in the catalog's container.
    assert runtimes == {"stage_in": ("local", None), "upper_J1": ("docker", docker_daemon.image)}
