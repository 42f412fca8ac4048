#!/bin/bash
#BSUB -J 'akoflow.7.align.arr1[1-10]%4'
#BSUB -o /scratch/logs/akoflow.7.align.arr1.%J_%I.out
#BSUB -e /scratch/logs/akoflow.7.align.arr1.%J_%I.err
#BSUB -n 1
# akoflow job akoflow.7.align.arr1 (rendered from templates/lsf.sh.j2). `bsub` gets the same options on
# its command line: it reads #BSUB lines only from stdin or with LSB_BSUB_PARSE_SCRIPT=Y.
# Array of 10 elements, 1-based ($LSB_JOBINDEX): element N runs the attempt
# directory on line N of the tasks file and passes it to the worker as its last argument.
set -e
AKOFLOW_ATTEMPT_DIR=$(sed -n "${LSB_JOBINDEX}p" /scratch/run/tasks.txt)
if [ -z "$AKOFLOW_ATTEMPT_DIR" ]; then
    echo "akoflow: no line ${LSB_JOBINDEX} in "/scratch/run/tasks.txt >&2
    exit 97
fi
export AKOFLOW_ATTEMPT_DIR
exec /opt/py/bin/python -m akoflow worker "$AKOFLOW_ATTEMPT_DIR"
