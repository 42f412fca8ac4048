#!/bin/bash
# Regenerates the captured Slurm output the parser tests read (run as the cluster's user on a
# host where tests/infra/slurm.py brought the cluster up; needs ~40 s). Not run by pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fmt='%i|%j|%T|%r|%N|%S|%M'
q() { squeue --noheader --all --array --states=all --me "--format=$fmt"; }
sb() { sbatch --parsable --output=/dev/null --error=/dev/null "$@"; }

ok=$(sb --job-name=akoflow.99.done.1 --wrap 'true')
bad=$(sb --job-name=akoflow.99.fails.1 --wrap 'exit 3')
run=$(sb --job-name=akoflow.99.long.1 --nodelist=small --cpus-per-task=1 --wrap 'sleep 60')
aft=$(sb --job-name=akoflow.99.after.1 --dependency="afterok:$run" --wrap 'true')
nev=$(sb --job-name=akoflow.99.never.1 --dependency="afterok:$bad" --wrap 'true')
arr=$(sb --job-name=akoflow.99.arr.1 --array=0-3%2 --wrap 'sleep 60')
odd=$(sb --job-name='akoflow.99.odd|name.1' --dependency="afterok:$run" --wrap 'true')
els=$(sb --job-name=someone-else --dependency="afterok:$run" --wrap 'true')
sleep 8
q > "$here/squeue_mixed.txt"
echo "$arr" > "$here/sbatch_parsable.txt"
scontrol show job "$run" > "$here/scontrol_show_job_running.txt"
scancel "$arr" "$run"
sleep 4
q > "$here/squeue_after_cancel.txt"
# leave nothing behind (only our own jobs: others may share the cluster)
scancel "$aft" "$nev" "$odd" "$els" || true
