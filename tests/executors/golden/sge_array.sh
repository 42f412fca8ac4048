#!/bin/bash
#$ -N akoflow.7.array.0123456789ab
#$ -o /scratch/run/arrays/$JOB_NAME.$JOB_ID.$TASK_ID.out
#$ -e /scratch/run/arrays/$JOB_NAME.$JOB_ID.$TASK_ID.err
#$ -S /bin/bash
#$ -r n
# akoflow job akoflow.7.array.0123456789ab (rendered from templates/sge.sh.j2; `qsub -terse` submits it)
# Array of 10 tasks (`-t 1-10` on the qsub line). Convention: task N
# ($SGE_TASK_ID, 1-based) runs the attempt directory on line N of the tasks file and passes it
# to the worker as its last argument.
# The worker's exit code goes to $status_dir/<job id>[.<task id>]: jobs held on this one with
# afterok meaning read it. 99 and 100 would make SGE requeue the job or put it in error
# state, so they leave this script as 1.
export A=1
status_dir=/scratch/run/.akoflow-sge
AKOFLOW_ATTEMPT_DIR=$(sed -n "${SGE_TASK_ID}p" /scratch/run/arrays/x.tasks | cut -f1)
if [ -z "$AKOFLOW_ATTEMPT_DIR" ]; then
    echo "akoflow: no line $SGE_TASK_ID in "/scratch/run/arrays/x.tasks >&2
    exit 97
fi
me="$JOB_ID.$SGE_TASK_ID"
export AKOFLOW_ATTEMPT_DIR
# qdel and h_rt kill this script's process group; the worker runs the task in a session of its
# own, which would outlive the job. This watchdog (own session too) waits for the script to
# end and, when the worker left no result.json, kills the task's process group.
setsid bash -c 'tail --pid="$1" -f /dev/null; [ -e "$2/result.json" ] && exit 0
pg=$(cat "$2/pid" 2>/dev/null) && tr "\0" " " < "/proc/$pg/cmdline" | grep -qF "$2" || exit 0
kill -TERM -- "-$pg"; sleep 2; kill -KILL -- "-$pg"' akoflow-watchdog $$ "$AKOFLOW_ATTEMPT_DIR" \
    </dev/null >/dev/null 2>&1 &
/opt/py/bin/python -m akoflow worker "$AKOFLOW_ATTEMPT_DIR"
code=$?
mkdir -p "$status_dir" && echo "$code" > "$status_dir/.$me.tmp" && mv "$status_dir/.$me.tmp" "$status_dir/$me"
if [ "$code" -eq 99 ] || [ "$code" -eq 100 ]; then
    exit 1
fi
exit "$code"
