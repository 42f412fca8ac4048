#!/bin/bash
#SBATCH --job-name=akoflow.7.align.2
#SBATCH --comment=akoflow.7.align.2
#SBATCH --output=/scratch/run/.akoflow/logs/%x.%j.out
#SBATCH --error=/scratch/run/.akoflow/logs/%x.%j.err
#SBATCH --no-requeue
#SBATCH --cpus-per-task=2
#SBATCH --mem=3072M
#SBATCH --time=0-01:00:00
#SBATCH --gres=gpu:1
#SBATCH --partition=debug
#SBATCH --account=proj1
#SBATCH --exclusive
#SBATCH --constraint=avx2
# akoflow job akoflow.7.align.2 (rendered from templates/slurm.sh.j2; `sbatch --parsable` submits it)
set -e
module load gcc/12.2
module load cuda
export OMP_NUM_THREADS=2
export GREETING='hello world; $(rm -rf /)'
exec /opt/py/bin/python -m akoflow worker /scratch/run/align/2
