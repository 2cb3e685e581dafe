#!/bin/bash
# Issue 10's benchmarks again after the first-layer block (commit in /tmp/mmoe-bench2), release 0.1.0 beside it.
cd /tmp/mmoe-bench2
export PYTHONPATH=/tmp/mmoe-bench2 MMOE_NP_RELEASE=/tmp/mmoe-0.1.0
PY="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /work/main/.venv/bin/python"
OUT=/tmp/bench2
(while sleep 30; do echo "$(date -u +%H:%M:%S) $(cat /proc/loadavg)"; done) > $OUT/load.log &
LOADPID=$!
$PY benchmarks/bench_step.py --release --repeats 9 > $OUT/bench_step-default-threads.log 2>&1
$PY benchmarks/bench_census_epoch.py --threads 1 --repeats 3 --data /work/shared/data/census-income > $OUT/bench_census_epoch-1-thread.log 2>&1
$PY benchmarks/bench_lockstep.py --runs 200 --correlations 1 --short 3 --long 13 --repeats 3 > $OUT/bench_lockstep-c1.log 2>&1
(cd benchmarks && $PY profile_lockstep.py --runs 200 --correlations 1 --short 3 --long 23 > $OUT/profile_lockstep-c1.log 2>&1)
(cd benchmarks && $PY profile_lockstep.py --runs 200 --correlations 4 --short 3 --long 23 > $OUT/profile_lockstep-c4.log 2>&1)
kill $LOADPID
echo done > $OUT/DONE
