#!/bin/bash
# Census group 2, the tuned models trained 20 times each (issue 12), from a worktree of commit bf39d0f
# (/tmp/mmoe-census2) so that edits in the main tree cannot reach the running workers.
cd /tmp/mmoe-census2
export PYTHONPATH=/tmp/mmoe-census2 OPENBLAS_NUM_THREADS=1
(while sleep 30; do echo "$(date -u +%H:%M:%S) $(cat /proc/loadavg)"; done) > /tmp/c21/load.log &
LOADPID=$!
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/time -v /work/main/.venv/bin/mmoe-np census \
    --config /tmp/mmoe-census2/docs/results/census/tune-group2/tuned.json --runs 20 --workers 2 \
    --data-dir /work/shared/data/census-income --out /tmp/c21/group2 > /tmp/c21/run.out 2> /tmp/c21/run.err
kill $LOADPID
