#!/bin/bash
#SBATCH --job-name=akoflow.3.infer.1
#SBATCH --comment=akoflow.3.infer.1
#SBATCH --output={TMP}/run/activities/infer.1/%x.%j.out
#SBATCH --error={TMP}/run/activities/infer.1/%x.%j.err
#SBATCH --no-requeue
#SBATCH --cpus-per-task=2
#SBATCH --mem=1024M
#SBATCH --time=0-00:10:00
# akoflow job akoflow.3.infer.1 (rendered from templates/slurm.sh.j2; `sbatch --parsable` submits it)
set -e
exec {AKOFLOW} worker {TMP}/run/activities/infer.1
