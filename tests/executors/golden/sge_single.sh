#!/bin/bash
#$ -N akoflow.7.align.2
#$ -o /scratch/run/align/2/$JOB_NAME.$JOB_ID.out
#$ -e /scratch/run/align/2/$JOB_NAME.$JOB_ID.err
#$ -S /bin/bash
#$ -r n
#$ -l h_vmem=1536M,mem_free=1536M,h_rt=1:00:30,gpu=1,arch=lx-amd64,ssd=TRUE
#$ -pe smp 2
#$ -q all.q
#$ -P p1
#$ -notify
#$ -m n
# akoflow job akoflow.7.align.2 (rendered from templates/sge.sh.j2; `qsub -terse` submits it)
# The worker's exit code goes to $status_dir/<job id>[.<task id>]: jobs held on this one with
# afterok meaning read it. 99 and 100 would make SGE requeue the job or put it in error
# state, so they leave this script as 1.
module load gcc/12.2 || exit 1
export GREETING='hello world; $(rm -rf /)'
status_dir=/scratch/run/.akoflow-sge
for parent in 41 42.3; do
    if [ "$(cat "$status_dir/$parent" 2>/dev/null)" != 0 ]; then
        echo "akoflow: parent job $parent did not succeed; not running" >&2
        exit 0
    fi
done
AKOFLOW_ATTEMPT_DIR=/scratch/run/align/2
me="$JOB_ID"
export AKOFLOW_ATTEMPT_DIR
# qdel and h_rt kill this script's process group; the worker runs the task in a session of its
# own, which would outlive the job. This watchdog (own session too) waits for the script to
# end and, when the worker left no result.json, kills the task's process group.
setsid bash -c 'tail --pid="$1" -f /dev/null; [ -e "$2/result.json" ] && exit 0
pg=$(cat "$2/pid" 2>/dev/null) && tr "\0" " " < "/proc/$pg/cmdline" | grep -qF "$2" || exit 0
kill -TERM -- "-$pg"; sleep 2; kill -KILL -- "-$pg"' akoflow-watchdog $$ "$AKOFLOW_ATTEMPT_DIR" \
    </dev/null >/dev/null 2>&1 &
/opt/py/bin/python -m akoflow worker /scratch/run/align/2
code=$?
mkdir -p "$status_dir" && echo "$code" > "$status_dir/.$me.tmp" && mv "$status_dir/.$me.tmp" "$status_dir/$me"
if [ "$code" -eq 99 ] || [ "$code" -eq 100 ]; then
    exit 1
fi
exit "$code"
