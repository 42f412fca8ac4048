#!/bin/bash
# flux: --job-name=akoflow.7.dispatcher
# flux: --output=/scratch/run/dispatcher/akoflow.7.dispatcher.{{id}}.out
# flux: --error=/scratch/run/dispatcher/akoflow.7.dispatcher.{{id}}.err
# flux: -n1
# flux: -c1
# flux: --time-limit=10m
# akoflow job akoflow.7.dispatcher (rendered from templates/flux.sh.j2)
# `flux batch` reads the `flux:` directives above (RFC 36); the script is the initial program.
set -e
# Inside a batch job plain `flux` commands reach the job's own sub-instance; akoflow's must
# reach the instance the workflow's jobs live in.
if AKOFLOW_FLUX_PARENT=$(flux getattr parent-uri 2>/dev/null); then
    export FLUX_URI="$AKOFLOW_FLUX_PARENT"
fi
exec /opt/py/bin/python -m akoflow dispatch 7
