#!/bin/bash
#BSUB -J akoflow.7.align.2
#BSUB -o /scratch/logs/akoflow.7.align.2.%J.out
#BSUB -e /scratch/logs/akoflow.7.align.2.%J.err
#BSUB -n 2
#BSUB -R 'span[hosts=1]'
#BSUB -R 'rusage[mem=3072MB]'
#BSUB -M 3072MB
#BSUB -W 1:01
#BSUB -gpu num=1
#BSUB -q debug
#BSUB -P proj1
#BSUB -x
#BSUB -app fast
#BSUB -R 'select[avx2]'
# akoflow job akoflow.7.align.2 (rendered from templates/lsf.sh.j2). `bsub` gets the same options on
# its command line: it reads #BSUB lines only from stdin or with LSB_BSUB_PARSE_SCRIPT=Y.
set -e
module load gcc/12.2
export GREETING='hi; $(rm -rf /)'
exec /opt/py/bin/python -m akoflow worker /scratch/run/align/2
