#!/bin/bash
#PBS -N akoflow.7.align.arr1
#PBS -o /scratch/logs/akoflow.7.align.arr1.^array_index^.out
#PBS -e /scratch/logs/akoflow.7.align.arr1.^array_index^.err
#PBS -r n
#PBS -l select=1:ncpus=1
#PBS -V
# akoflow job akoflow.7.align.arr1 (rendered from templates/pbs.sh.j2 for PBS pro; `qsub` submits it)
# Array of 10 elements, 1-based ($PBS_ARRAY_INDEX): element N runs the attempt
# directory on line N of the tasks file and passes it to the worker as its last argument.
set -e
AKOFLOW_ATTEMPT_DIR=$(sed -n "${PBS_ARRAY_INDEX}p" /scratch/run/tasks.txt)
if [ -z "$AKOFLOW_ATTEMPT_DIR" ]; then
    echo "akoflow: no line ${PBS_ARRAY_INDEX} in "/scratch/run/tasks.txt >&2
    exit 97
fi
export AKOFLOW_ATTEMPT_DIR
exec /opt/py/bin/python -m akoflow worker "$AKOFLOW_ATTEMPT_DIR"
