#!/bin/bash
# Encrypted inference of the 10,000 CIFAR-10 test images with the paper's 4layer-CNN
# (swish-rg7-deg4, channel-fast: hejob's fastest channel-wise packing, about 9 s per image on
# 2 cores and 8 GB per task), sharded over every task of the allocation. For throughput on a
# whole batch use HEJOB_CONFIG=jobs/cifar-batch.toml (batch-axis: plan about 20 GB per task).
#
#   sbatch slurm/cifar.sh                    # the whole job (jobs/cifar.toml)
#   sbatch slurm/cifar.sh --limit 100        # extra arguments go to hejob (--limit, --offset, --output, --threads)
#
# Submit from the repository root after `cargo build --release`: this script builds nothing.
# Re-submitting after a crash, a timeout or `scancel` resumes from the job's checkpoints.
#SBATCH --job-name=hejob-cifar
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=16
#SBATCH --mem-per-cpu=2G
#SBATCH --time=24:00:00
#SBATCH --output=results/slurm-%x-%j.out
#SBATCH --error=results/slurm-%x-%j.err
set -euo pipefail
# sbatch runs a copy of this script from its spool folder: the rest lives in the repository
exec "${SLURM_SUBMIT_DIR:-.}/slurm/run.sh" "${HEJOB_CONFIG:-jobs/cifar.toml}" "$@"
