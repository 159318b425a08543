#!/bin/bash
# Shared body of the sbatch scripts: runs `hejob --config CONFIG [ARGS...]` on every task of
# the allocation. Not submitted directly.
#
# Environment: HEJOB (the binary; default target/release/hejob, else `hejob` on PATH),
# HEJOB_LAUNCHER (`srun`, the default, or `mpirun`), HEJOB_DATASETS (dataset folder).
set -euo pipefail
config=$1
shift
cd "${SLURM_SUBMIT_DIR:-.}"
hejob=${HEJOB:-target/release/hejob}
[ -x "$hejob" ] || hejob=$(command -v hejob) || {
    echo "hejob not found: build it with 'cargo build --release' or set HEJOB" >&2
    exit 2
}
mkdir -p results
cpus=${SLURM_CPUS_PER_TASK:-1}
echo "hejob: $config on ${SLURM_NTASKS:-1} task(s) × $cpus cpu(s), nodes ${SLURM_JOB_NODELIST:-$(hostname -s)}"
# the cost model's prediction for this allocation, before any key exists (a job file key, or
# the same option among the arguments, wins; the images are the job's limit or all 10,000)
field() { sed -n "s/^$1 *= *\"\{0,1\}\([^\"]*\)\"\{0,1\} *$/\1/p" "$config" | head -1; }
option() { local want=$1; shift; while [ $# -gt 1 ]; do [ "$1" = "$want" ] && { echo "$2"; return; }; shift; done; }
nodes=${SLURM_JOB_NUM_NODES:-1}
images=$(option --limit "$@"); images=${images:-$(field limit)}
flights=$(option --runs-in-flight "$@"); flights=${flights:-$(field runs_in_flight)}
plan=(plan --model "$(field model)" --packing "$(field packing)" --threads "$cpus"
    --ranks $(( ${SLURM_NTASKS:-1} / nodes > 0 ? ${SLURM_NTASKS:-1} / nodes : 1 )) --nodes "$nodes"
    --images "${images:-10000}" --runs-in-flight "${flights:-auto}")
scale=$(field scale_bits); [ -z "$scale" ] || plan+=(--scale-bits "$scale")
memory=$(field memory_gb); [ -z "$memory" ] || plan+=(--memory-gb "$memory")
costs=$(field costs); [ -z "$costs" ] || plan+=(--costs "$costs")
"$hejob" "${plan[@]}" | sed -n '/^predicted/,$p' || echo "hejob: no prediction (the plan failed)"
case "${HEJOB_LAUNCHER:-srun}" in
    # srun must speak PMIx to OpenMPI; since Slurm 22.05 it no longer inherits --cpus-per-task
    srun) exec srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task="$cpus" \
        "$hejob" --config "$config" "$@" ;;
    # OpenMPI's mpirun reads the allocation itself; without --bind-to none each rank is
    # pinned to one core and gets one thread
    mpirun)
        forward=()
        for v in HEJOB_DATASETS RUST_LOG; do [ -z "${!v:-}" ] || forward+=(-x "$v"); done
        exec mpirun --bind-to none "${forward[@]}" \
            "$hejob" --config "$config" --threads "$cpus" "$@" ;;
    *) echo "HEJOB_LAUNCHER must be srun or mpirun" >&2; exit 2 ;;
esac
