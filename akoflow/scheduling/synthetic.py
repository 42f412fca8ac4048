"""Synthetic workflows from WfCommons recipes, to evaluate placement on data it was not tuned on.

The `wfcommons` package (extra `bench`: `pip install 'akoflow[bench]'`, Python 3.11+) builds
instances of real applications' shapes (Montage, Epigenomics, 1000Genome, ...) at any size,
with run times drawn from each task type's measured distribution. Its recipes carry no
memory figures and give every task one core, so both are drawn here, per task type (as
in real workflows, where one tool's footprint is alike across its tasks): a peak memory
log-uniform between 128 MiB and 48 GiB and a core count of 1, 1, 2 or 4, then each task
varies its type's memory by +-20 %. Everything is seeded: one (recipe, size, seed) is one
workflow on every machine.
"""

from __future__ import annotations

import importlib
import math
import random
from typing import Any

from akoflow.scheduling.workload import SimTask, Workload, WorkloadError

MiB = 1 << 20
RECIPES = {"blast": "BlastRecipe", "bwa": "BwaRecipe", "cycles": "CyclesRecipe",
           "epigenomics": "EpigenomicsRecipe", "1000genome": "GenomeRecipe",
           "montage": "MontageRecipe", "rnaseq": "RnaseqRecipe",
           "seismology": "SeismologyRecipe", "soykb": "SoykbRecipe",
           "srasearch": "SrasearchRecipe"}
SMALLEST = {"blast": 45, "bwa": 106, "cycles": 69, "epigenomics": 43, "1000genome": 54,
            "montage": 60, "rnaseq": 65, "seismology": 103, "soykb": 98, "srasearch": 24}
MEMORY_RANGE = (128 * MiB, 48 * 1024 * MiB)
CORES = (1, 1, 2, 4)


def _wfcommons() -> tuple[Any, Any]:
    try:
        generator = importlib.import_module("wfcommons.wfgen.generator")
        recipes = importlib.import_module("wfcommons.wfchef.recipes")
    except ImportError:
        raise WorkloadError("synthetic workflows need wfcommons: pip install 'akoflow[bench]'"
                            " (Python 3.11 or newer)") from None
    return generator, recipes


def generate(recipe: str, size: int, seed: int) -> Workload:
    """One instance of `recipe` with about `size` tasks (at least the recipe's smallest)."""
    if recipe not in RECIPES:
        raise WorkloadError(f"unknown recipe {recipe!r} (known: {', '.join(RECIPES)})")
    generator, recipes = _wfcommons()
    import numpy  # a dependency of wfcommons: its distributions draw from numpy's global state

    random.seed(seed)
    numpy.random.seed(seed % 2**32)
    cls = getattr(recipes, RECIPES[recipe])
    wf = generator.WorkflowGenerator(cls.from_num_tasks(max(size, SMALLEST[recipe]))
                                     ).build_workflow(f"{recipe}-{size}-{seed}")
    rng = random.Random(f"{recipe}:{seed}")
    kinds: dict[str, tuple[float, int]] = {}
    lo, hi = (math.log(v) for v in MEMORY_RANGE)
    tasks = []
    for tid in wf.nodes:
        task = wf.nodes[tid]["task"]
        if task.name not in kinds:
            kinds[task.name] = (math.exp(rng.uniform(lo, hi)), rng.choice(CORES))
        mem, cores = kinds[task.name]
        used = int(mem * rng.uniform(0.8, 1.2))
        tasks.append(SimTask(str(tid), tuple(str(p) for p in wf.predecessors(tid)),
                             float(task.runtime), used, cpu=float(cores), memory=used))
    return Workload(f"{recipe}-{size}-s{seed}", tasks)
