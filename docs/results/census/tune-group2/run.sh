#!/bin/bash
# Census tuning, group 2 (issue 12), from a worktree of commit d4447d4 (/tmp/mmoe-bench).
cd /tmp/mmoe-bench
export PYTHONPATH=/tmp/mmoe-bench OPENBLAS_NUM_THREADS=1
(while sleep 30; do echo "$(date -u +%H:%M:%S) $(cat /proc/loadavg)"; done) > /tmp/tune/load2.log &
LOADPID=$!
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/time -v /work/main/.venv/bin/mmoe-np census-tune \
    --data-dir /work/shared/data/census-income --group 2 --models all --trials 27 --min-epochs 1 --max-epochs 9 \
    --eta 3 --patience 2 --workers 2 --out /tmp/tune/group2 > /tmp/tune/group2.out 2> /tmp/tune/group2.err
kill $LOADPID
