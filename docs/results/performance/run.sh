#!/bin/bash
# Issue 10's benchmarks on the committed tree (worktree /tmp/mmoe-bench), release 0.1.0 beside it (/tmp/mmoe-0.1.0).
cd /tmp/mmoe-bench
export PYTHONPATH=/tmp/mmoe-bench MMOE_NP_RELEASE=/tmp/mmoe-0.1.0
PY="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /work/main/.venv/bin/python"
OUT=/tmp/bench
$PY benchmarks/bench_step.py --release --repeats 9 > $OUT/bench_step-default-threads.log 2>&1
$PY benchmarks/bench_step.py --release --threads 1 --repeats 9 > $OUT/bench_step-1-thread.log 2>&1
$PY benchmarks/bench_lockstep.py --runs 200 --correlations 1 --short 3 --long 13 --repeats 3 > $OUT/bench_lockstep-c1.log 2>&1
$PY benchmarks/bench_lockstep.py --runs 200 --correlations 4 --short 3 --long 13 --repeats 3 > $OUT/bench_lockstep-c4.log 2>&1
$PY benchmarks/bench_census_epoch.py --threads 1 --repeats 3 --data /work/shared/data/census-income > $OUT/bench_census_epoch-1-thread.log 2>&1
$PY benchmarks/bench_adam.py > $OUT/bench_adam.log 2>&1
echo done > $OUT/DONE
