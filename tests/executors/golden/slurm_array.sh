#!/bin/bash
#SBATCH --job-name=akoflow.7.align.arr1
#SBATCH --comment=akoflow.7.align.arr1
#SBATCH --output=/scratch/logs/%x.%A_%a.out
#SBATCH --error=/scratch/logs/%x.%A_%a.err
#SBATCH --no-requeue
#SBATCH --cpus-per-task=1
# akoflow job akoflow.7.align.arr1 (rendered from templates/slurm.sh.j2; `sbatch --parsable` submits it)
# Array of 10 elements. Convention: the tasks file holds one attempt per line: its
# directory, a tab, its job name (for crash repair). Element N (0-based $SLURM_ARRAY_TASK_ID)
# runs the attempt on line N+1 and passes that directory to the worker as its last argument.
# A chunk of a larger array is a separate sbatch with its own script and tasks file, so
# indices always start at 0.
set -e
export A=1
AKOFLOW_ATTEMPT_DIR=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" /scratch/run/.akoflow/batch/arr1/tasks.txt | cut -f1)
if [ -z "$AKOFLOW_ATTEMPT_DIR" ]; then
    echo "akoflow: no line $((SLURM_ARRAY_TASK_ID + 1)) in "/scratch/run/.akoflow/batch/arr1/tasks.txt >&2
    exit 97
fi
export AKOFLOW_ATTEMPT_DIR
exec /opt/py/bin/python -m akoflow worker "$AKOFLOW_ATTEMPT_DIR"
