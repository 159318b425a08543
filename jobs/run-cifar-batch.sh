#!/usr/bin/env bash
# The full 10,000-image batch-axis runs (two runs of 8,192 slots each) of the ten CIFAR-10
# networks, cheapest first, one after another, as 1 rank × all cores on one node. On 2 cores one
# run of swish-rg7-deg4 takes about 68 minutes; the depth-7 networks cost less. Stops and
# resumes at will (jobs/run-series.sh); a run stopped midway is done again.
set -euo pipefail
cd "$(dirname "$0")"
jobs=()
for net in square-pruned20 swish-rg5-deg2-pruned20 square-pruned10 swish-rg5-deg2-pruned10 \
    square swish-rg5-deg2 swish-rg7-deg4-pruned30 swish-rg7-deg4-pruned20 \
    swish-rg7-deg4-pruned10; do
    jobs+=("paper/cifar10-4layer-$net-batch.toml")
done
jobs+=(cifar-batch.toml)
exec ./run-series.sh "${jobs[@]/#/jobs/}"
