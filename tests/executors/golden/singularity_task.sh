#!/bin/bash
# akoflow task nemo/infer attempt 1
# akoflow-task: {"workflow_id":3,"workflow":"nemo","activity":"infer","attempt":1,"work_dir":"{TMP}/run/work","sample_interval":15.0,"resources":{"cpu":1.0,"memory":null,"time_limit":null,"gpus":1,"node_selector":{},"extra":{}},"image":"{TMP}/sifs/nemo.sif","wrapper":["apptainer","exec","--nv","--bind","{TMP}/run/work:/data","--bind","{TMP}/scratch:/scratch:ro","--bind","{TMP}/models:/models","--pwd","/data","--env","AKOFLOW_WORKDIR=/data","{TMP}/sifs/nemo.sif"]}
_akoflow_dir={TMP}/run/activities/infer.1
set -C
{ exec {_akoflow_fd}>"$_akoflow_dir/pid"; } 2>&- || exit 111
set +C
printf "%s\n" "$BASHPID" >&"$_akoflow_fd"
[ -z "${AKOFLOW_CGROUP_ROOT-}" ] || { printf "%s\n" "$BASHPID" > "$AKOFLOW_CGROUP_ROOT/{CGROUP}/cgroup.procs"; } 2>&- || :
trap '_akoflow_rc=$?; { printf "%s\n" "$_akoflow_rc"; times; } >&"$_akoflow_fd"' EXIT
trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP
export AKOFLOW_WORKFLOW=nemo
export AKOFLOW_WORKFLOW_ID=3
export AKOFLOW_ACTIVITY=infer
export AKOFLOW_ACTIVITY_ID=9
export AKOFLOW_ATTEMPT=1
export AKOFLOW_WORKDIR={TMP}/run/work
export AKOFLOW_ATTEMPT_DIR={TMP}/run/activities/infer.1
export AKOFLOW_RUN_DIR={TMP}/run
export AKOFLOW_CPUS=1
export AKOFLOW_MOUNT_PATH=/data
export MODEL=small
set -eo pipefail
cd {TMP}/run/work
apptainer exec --nv --bind {TMP}/run/work:/data --bind {TMP}/scratch:/scratch:ro --bind {TMP}/models:/models --pwd /data --env AKOFLOW_WORKDIR=/data {TMP}/sifs/nemo.sif bash -eo pipefail -c 'python infer.py > out.txt
echo done'
