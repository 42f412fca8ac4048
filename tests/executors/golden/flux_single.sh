#!/bin/bash
# flux: --job-name=akoflow.7.align.2
# flux: --output=/scratch/run/align/2/akoflow.7.align.2.{{id}}.out
# flux: --error=/scratch/run/align/2/akoflow.7.align.2.{{id}}.err
# flux: -n1
# flux: -c2
# flux: -g1
# flux: --time-limit=90m
# flux: --queue=pdebug
# flux: --bank=proj1
# flux: --exclusive
# flux: --requires=avx2&host:fluke3
# akoflow job akoflow.7.align.2 (rendered from templates/flux.sh.j2)
# `flux batch` reads the `flux:` directives above (RFC 36); the script is the initial program.
set -e
module load gcc/12.2
export GREETING='hello world; $(rm -rf /)'
exec /opt/py/bin/python -m akoflow worker /scratch/run/align/2
