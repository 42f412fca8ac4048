"""akoflow: HPC-first DAG workflows with a stateless dispatcher and full provenance."""

__version__ = "0.1.0"
