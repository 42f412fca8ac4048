#!/bin/bash
#PBS -N akoflow.7.align.2
#PBS -o /scratch/logs/akoflow.7.align.2.out
#PBS -e /scratch/logs/akoflow.7.align.2.err
#PBS -r n
#PBS -l nodes=1:ppn=2:gpus=1:avx2
#PBS -l mem=3072mb
#PBS -l walltime=01:00:01
#PBS -q debug
#PBS -A proj1
#PBS -m abe
#PBS -V
# akoflow job akoflow.7.align.2 (rendered from templates/pbs.sh.j2 for PBS torque; `qsub` submits it)
set -e
module load gcc/12.2
export GREETING='hello world; $(rm -rf /)'
exec /opt/py/bin/python -m akoflow worker /scratch/run/align/2
