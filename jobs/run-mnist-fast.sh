#!/usr/bin/env bash
# The full 10,000-image channel-fast-x4 runs (4 images per ciphertext) of the nine MNIST
# networks, one after another, as 1 rank × all cores on one node (measured on 2 cores, 120 images:
# 2.97 images/s as 1 rank × 2 threads, 2.69 as 2 ranks × 1 thread). Stops and resumes at will
# (jobs/run-series.sh).
set -euo pipefail
cd "$(dirname "$0")"
jobs=(mnist-fast.toml)
for net in swish-rg7-deg4-pruned-r1 swish-rg7-deg4-pruned-r2 square square-pruned-r1 \
    square-pruned-r2 swish-rg5-deg2 swish-rg5-deg2-pruned-r1 swish-rg5-deg2-pruned-r2; do
    jobs+=("paper/mnist-3layer-$net-fast.toml")
done
exec ./run-series.sh "${jobs[@]/#/jobs/}"
