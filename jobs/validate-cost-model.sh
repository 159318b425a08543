#!/usr/bin/env bash
# The cost model against measurement, side by side in one sitting: each case (dataset, network,
# packing, images) in each layout (ranks × threads × runs in flight), predicted by `hejob plan`
# and then run as a job on this machine (under mpirun for several ranks). Prints one markdown
# row per case and layout: predicted and measured latency per run, images per second of all
# ranks (encryption included, set-up excluded), wall time and peak memory of all ranks. Run it
# on a quiet machine.
#
#   jobs/validate-cost-model.sh [LAYOUT…]   # LAYOUT: RANKS:THREADS:RUNS_IN_FLIGHT
#                                           # (default 1:1:1 1:2:1 1:2:2 2:1:1)
#   CASES="mnist 3layer-swish-rg7-deg4 channel-fast 16;…"  HEJOB=binary  COSTS=bench-ops.json
#   STAGES=1: after each row, each stage's seconds per run, predicted / measured
set -euo pipefail
cd "$(dirname "$0")/.."
hejob=${HEJOB:-target/release/hejob}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
layouts=("$@")
[ ${#layouts[@]} -gt 0 ] || layouts=(1:1:1 1:2:1 1:2:2 2:1:1)
IFS=';' read -ra cases <<< "${CASES:-mnist 3layer-swish-rg7-deg4 channel-fast 16;mnist 3layer-swish-rg7-deg4 channel-fast-x4 16;mnist 3layer-swish-rg7-deg4 channel 2;mnist 3layer-swish-rg7-deg4 batch 10000}"
costs=()
[ -z "${COSTS:-}" ] || costs=(--costs "$COSTS")
echo "| dataset | network | packing | images | ranks × threads × runs in flight | latency (s) predicted / measured | images/s predicted / measured | wall (s) predicted / measured | peak GB predicted / measured |"
echo "|---|---|---|---:|---|---:|---:|---:|---:|"
for case in "${cases[@]}"; do
    read -r dataset net packing images <<< "$case"
    model=data/$dataset/$net.h5
    for layout in "${layouts[@]}"; do
        IFS=: read -r ranks threads flights <<< "$layout"
        # batch-axis needs two runs for two in flight, one otherwise
        n=$images
        if [ "$packing" = batch ] && [ "$flights" = 1 ] && [ "$ranks" = 1 ]; then n=4096; fi
        "$hejob" plan --model "$model" --packing "$packing" --threads "$threads" \
            --ranks "$ranks" --runs-in-flight "$flights" --images "$n" "${costs[@]}" --json > "$out/prediction.json"
        job=$out/job.toml result=$out/result-$ranks-$threads-$flights.h5
        printf 'model = "%s"\ndataset = "%s"\npacking = "%s"\nlimit = %s\noutput = "%s"\n' \
            "$model" "$dataset" "$packing" "$n" "$result" > "$job"
        [ -z "${COSTS:-}" ] || printf 'costs = "%s"\n' "$COSTS" >> "$job"
        start=$(date +%s.%N)
        launch=()
        [ "$ranks" = 1 ] || launch=(mpirun -n "$ranks" --bind-to none --oversubscribe)
        "${launch[@]}" "$hejob" --config "$job" --threads "$threads" --runs-in-flight "$flights" \
            > /dev/null 2> "$out/log"
        end=$(date +%s.%N)
        python3 - "$result" "$out/log" "$out/prediction.json" "$start" "$end" "$dataset" "$net" \
            "$packing" "$n" "$ranks" "$threads" "$flights" <<'PY'
import json, os, re, sys
import h5py
result, log, prediction, start, end, dataset, net, packing, n, ranks, threads, flights = sys.argv[1:]
p = json.load(open(prediction))["prediction"]
text = open(log).read()
rate = float(re.findall(r"all ranks: \d+/\d+ images, ([0-9.]+) images/s", text)[-1])
peak = sum(float(m) for m in re.findall(r"rank \d+: peak resident memory ([0-9.]+) GB", text))
with h5py.File(result) as f:
    latency = f["latency_s"][:].mean()
wall = float(end) - float(start)
row = [dataset, net, packing, n, f"{ranks} × {threads} × {flights}",
       f"{p['latency_s']:.2f} / {latency:.2f}", f"{p['images_per_s_job']:.3f} / {rate:.3f}",
       f"{p['wall_s']:.0f} / {wall:.0f}",
       f"{p['peak_rss_gb'] * int(ranks):.2f} / {peak:.2f}"]
print("| " + " | ".join(row) + " |", flush=True)
if os.environ.get("STAGES"):
    with h5py.File(result) as f:
        names = [x.decode() if isinstance(x, bytes) else x for x in f["stages/name"][:]]
        seconds = f["stages/seconds"][:]
    runs = -(-int(n) // p["images_per_run"])
    measured = dict(zip(names, seconds / runs))
    print("  stages: " + ", ".join(
        f"{s['name']} {s['seconds']:.3f} / {measured.get(s['name'], float('nan')):.3f}"
        for s in p["stages"]), flush=True)
PY
        rm -f "$result"
        rm -rf "$result.checkpoint" "$result.lock"
    done
done
