"""Remote use over SSH: submit, watch and pull a workflow from a laptop, no daemon anywhere.

Laptop side: `config` (the profile's `ssh:` block), `transport` with `paramiko_transport` and
`openssh` (one connection per command, host keys checked strictly), `client` (the session),
`setup` + `wheels`, `upload`, `submit`, `pull`, `trust`. Cluster side: `agent` (standard
library only; also setup's bootstrap), `serve` and `receive` (akoflow's operations).
"""
