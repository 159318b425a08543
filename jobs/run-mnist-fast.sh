#!/usr/bin/env bash
# The full 10,000-image channel-fast-x4 runs (4 images per ciphertext) of the nine MNIST
# networks, one after another, as 1 rank × all cores on one node (measured on 2 cores, 120 images:
# 2.97 images/s as 1 rank × 2 threads, 2.69 as 2 ranks × 1 thread).
# A finished run (its result file exists) is skipped; an unfinished one resumes from its
# checkpoint, so the script can be stopped and started again at will.
#
#   jobs/run-mnist-fast.sh            # HEJOB (binary), RANKS (default 1), THREADS (default: all
#                                     # cores / RANKS) may be set
set -euo pipefail
cd "$(dirname "$0")/.."
hejob=${HEJOB:-target/release/hejob}
ranks=${RANKS:-1}
threads=${THREADS:-$(($(nproc) / ranks > 0 ? $(nproc) / ranks : 1))}
for net in swish-rg7-deg4 swish-rg7-deg4-pruned-r1 swish-rg7-deg4-pruned-r2 square square-pruned-r1 \
    square-pruned-r2 swish-rg5-deg2 swish-rg5-deg2-pruned-r1 swish-rg5-deg2-pruned-r2; do
    job=jobs/paper/mnist-3layer-$net-fast.toml
    [ "$net" = swish-rg7-deg4 ] && job=jobs/mnist-fast.toml
    out=$(sed -n 's/^output = "\(.*\)"/\1/p' "$job")
    if [ -e "$out" ]; then
        echo "have $out"
        continue
    fi
    echo "running $job"
    mpirun -n "$ranks" --bind-to none --oversubscribe "$hejob" --config "$job" --threads "$threads"
done
