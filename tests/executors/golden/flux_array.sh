#!/bin/bash
# akoflow job akoflow.7.align.arr1 (rendered from templates/flux.sh.j2)
# `flux submit --cc=0-N` array: options are on the submit command line (only flux batch reads
# `flux:` directives). Element N ($FLUX_JOB_CC) runs the attempt directory on line N+1 of the
# tasks file and passes it to the worker as its last argument.
set -e
export A=1
AKOFLOW_ATTEMPT_DIR=$(sed -n "$((FLUX_JOB_CC + 1))p" /scratch/run/.akoflow/batch/arr1/tasks.txt)
if [ -z "$AKOFLOW_ATTEMPT_DIR" ]; then
    echo "akoflow: no line $((FLUX_JOB_CC + 1)) in "/scratch/run/.akoflow/batch/arr1/tasks.txt >&2
    exit 97
fi
export AKOFLOW_ATTEMPT_DIR
exec /opt/py/bin/python -m akoflow worker "$AKOFLOW_ATTEMPT_DIR"
