#!/usr/bin/env bash
# Runs the given jobs one after another, each as RANKS ranks × THREADS threads on this node.
# A finished job (its result file exists) is skipped; an unfinished one resumes from its
# checkpoint, so a series can be stopped and started again at will.
#
#   jobs/run-series.sh JOB.toml…      # HEJOB (binary), RANKS (default 1), THREADS (default: all
#                                     # cores / RANKS) may be set
set -euo pipefail
cd "$(dirname "$0")/.."
hejob=${HEJOB:-target/release/hejob}
ranks=${RANKS:-1}
threads=${THREADS:-$(($(nproc) / ranks > 0 ? $(nproc) / ranks : 1))}
for job in "$@"; do
    out=$(sed -n 's/^output = "\(.*\)"/\1/p' "$job")
    if [ -e "$out" ]; then
        echo "have $out"
        continue
    fi
    echo "running $job"
    mpirun -n "$ranks" --bind-to none --oversubscribe "$hejob" --config "$job" --threads "$threads"
done
