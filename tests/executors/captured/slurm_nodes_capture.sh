#!/bin/bash
# Regenerates slurm_nodes_{sinfo,scontrol}_{idle,busy}.txt from the test cluster
# (tests/infra/slurm.py: nodes small/big, partitions debug/bigmem). Not run by pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fmt='NodeList:|,Partition:|,CPUsState:|,Memory:|,AllocMem:|,FreeMem:|,Features:|,StateLong:|'
grab() {
  sinfo --Node --noheader "--Format=$fmt" > "$here/slurm_nodes_sinfo_$1.txt"
  scontrol show node --oneliner > "$here/slurm_nodes_scontrol_$1.txt"
}
sb() { sbatch --parsable --output=/dev/null --error=/dev/null "$@"; }
j1=$(sb --job-name=akoscore.capture.1 --nodelist=big --cpus-per-task=3 --mem=5000 --wrap 'sleep 60')
j2=$(sb --job-name=akoscore.capture.2 --nodelist=small --cpus-per-task=1 --mem=500 --wrap 'sleep 60')
sleep 5
grab busy
scancel "$j1" "$j2"
sleep 3
grab idle
