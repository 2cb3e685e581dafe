#!/bin/bash
# Census group 1, the tuned models trained 20 times each (issue 12), from a worktree of commit ee6f164
# (/tmp/mmoe-census) so that edits in the main tree cannot reach the running workers.
cd /tmp/mmoe-census
export PYTHONPATH=/tmp/mmoe-census OPENBLAS_NUM_THREADS=1
(while sleep 30; do echo "$(date -u +%H:%M:%S) $(cat /proc/loadavg)"; done) > /tmp/c20/load.log &
LOADPID=$!
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/time -v /work/main/.venv/bin/mmoe-np census \
    --config /work/main/docs/results/census/tune-group1/tuned.json --runs 20 --workers 2 \
    --data-dir /work/shared/data/census-income --out /tmp/c20/group1 > /tmp/c20/run.out 2> /tmp/c20/run.err
kill $LOADPID
