"""`python -m akoflow` is the `akoflow` command (used for detached dispatchers and workers)."""

from akoflow.cli.main import main

main()
