#!/bin/bash
# Regenerates the captured SGE output read by tests/executors/test_sge_pure.py (run as root on a
# host where tests/infra/sge.py brought the cell up, with nothing else queued; ~60 s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine} SGE_CELL=${SGE_CELL:-default}
tmp=$(mktemp -d /root/tmp/sge-capture.XXXX)
printf '#!/bin/bash\nsleep "$1"\nexit "$2"\n' > "$tmp/job.sh"
q() { qsub -terse -o /dev/null -e /dev/null "$@"; }
long=$(q -N akoflow.99.long.1 "$tmp/job.sh" 40 0)
arr=$(q -N akoflow.99.array.abc -t 1-4 -tc 1 "$tmp/job.sh" 40 0)
held=$(q -N akoflow.99.held.1 -hold_jid "$long" "$tmp/job.sh" 1 0)
err=$(q -N akoflow.99.error.1 -o /nonexistent/dir/x.out "$tmp/job.sh" 1 0)
other=$(q -N someone-else "$tmp/job.sh" 1 0)
printf '%s\n%s\n' "$long" "$arr" > "$here/sge_qsub_terse.txt"
sleep 6
qstat -xml > "$here/sge_qstat_mixed.txt"
qdel "$long" > /dev/null
qstat -xml > "$here/sge_qstat_deleting.txt"
qdel "${arr%%.*}" "$held" "$err" "$other" > /dev/null
ok=$(q -N akoflow.99.ok.1 "$tmp/job.sh" 0 0)
bad=$(q -N akoflow.99.bad.1 "$tmp/job.sh" 0 3)
hrt=$(q -N akoflow.99.hrt.1 -l h_rt=0:0:3 "$tmp/job.sh" 60 0)
arr2=$(q -N akoflow.99.array.def -t 1-2 "$tmp/job.sh" 0 0)
while qstat | grep -q akoflow; do sleep 1; done
sleep 2
qacct -j "$ok" > "$here/sge_qacct_ok.txt"
qacct -j "$bad" > "$here/sge_qacct_exit3.txt"
qacct -j "$hrt" > "$here/sge_qacct_h_rt.txt"
qacct -j "$long" > "$here/sge_qacct_qdel.txt"
qacct -j "${arr2%%.*}" -t 2 > "$here/sge_qacct_array_task.txt"
rm -rf "$tmp"
