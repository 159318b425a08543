#!/bin/bash
# Encrypted inference of the 10,000 CIFAR-10 test images with the paper's 4layer-CNN
# (swish-rg7-deg4, channel-fast: hejob's fastest channel-wise packing), sharded over every
# task of the allocation. The layout is the one the cost model finds fastest per node: one
# task per node holding all its cores, several runs in flight sharing one copy of the keys and
# weights (`hejob plan --model data/cifar10/4layer-swish-rg7-deg4.h5 --packing channel-fast
# --scale-bits 34 --threads 72 --nodes 4`); the prediction for the allocation is printed
# before the job starts. For a whole batch at once use HEJOB_CONFIG=jobs/cifar-batch.toml.
#
#   sbatch slurm/cifar.sh                    # the whole job (jobs/cifar.toml)
#   sbatch slurm/cifar.sh --limit 100        # extra arguments go to hejob (--limit, --offset, --output, --threads)
#
# Submit from the repository root after `cargo build --release`: this script builds nothing.
# Re-submitting after a crash, a timeout or `scancel` resumes from the job's checkpoints.
#SBATCH --job-name=hejob-cifar
#SBATCH --nodes=4
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=72
#SBATCH --mem=0
#SBATCH --time=24:00:00
#SBATCH --output=results/slurm-%x-%j.out
#SBATCH --error=results/slurm-%x-%j.err
set -euo pipefail
# sbatch runs a copy of this script from its spool folder: the rest lives in the repository
exec "${SLURM_SUBMIT_DIR:-.}/slurm/run.sh" "${HEJOB_CONFIG:-jobs/cifar.toml}" "$@"
