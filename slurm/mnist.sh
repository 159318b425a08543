#!/bin/bash
# Encrypted inference of the 10,000 MNIST test images with the paper's best MNIST network
# (3layer-CNN, swish-rg7-deg4, channel-fast-x4: hejob's fastest channel-wise packing), sharded
# over every task of the allocation: one task per node holding all its cores, with the runs in
# flight the cost model picks; its prediction for the allocation is printed first.
#
#   sbatch slurm/mnist.sh                    # the whole job (jobs/mnist.toml)
#   sbatch slurm/mnist.sh --limit 100        # extra arguments go to hejob (--limit, --offset, --output, --threads)
#   HEJOB_CONFIG=jobs/mnist-batch.toml sbatch slurm/mnist.sh
#
# Submit from the repository root after `cargo build --release`: this script builds nothing.
# Re-submitting after a crash, a timeout or `scancel` resumes from the job's checkpoints.
#SBATCH --job-name=hejob-mnist
#SBATCH --nodes=2
#SBATCH --ntasks=2
#SBATCH --cpus-per-task=16
#SBATCH --time=12:00:00
#SBATCH --output=results/slurm-%x-%j.out
#SBATCH --error=results/slurm-%x-%j.err
set -euo pipefail
# sbatch runs a copy of this script from its spool folder: the rest lives in the repository
exec "${SLURM_SUBMIT_DIR:-.}/slurm/run.sh" "${HEJOB_CONFIG:-jobs/mnist.toml}" "$@"
