#!/bin/bash
# The long profile of the synthetic study (issue 11), then Fig. 3 at the paper and long profiles; run from a worktree
# of commit 4cc332d (/tmp/mmoe-study) so that edits in the main tree cannot reach the running workers.
cd /tmp/mmoe-study
export PYTHONPATH=/tmp/mmoe-study
(while sleep 30; do echo "$(date -u +%H:%M:%S) $(cat /proc/loadavg)"; done) > /tmp/long/long-load.log &
LOADPID=$!
T="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/time -v /work/main/.venv/bin/mmoe-np"
$T synthetic --profile long --workers 2 --out /tmp/long/long > /tmp/long/long.out 2> /tmp/long/long.err
$T shared-bottom --profile paper --workers 2 --out /tmp/long/paper > /tmp/long/paper-sb.out 2> /tmp/long/paper-sb.err
$T shared-bottom --profile long --workers 2 --out /tmp/long/long > /tmp/long/long-sb.out 2> /tmp/long/long-sb.err
kill $LOADPID
