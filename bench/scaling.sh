#!/usr/bin/env bash
# bench/scaling.sh: how unet-s training scales over MPI ranks (reported, never asserted).
#
#   bench/scaling.sh                 # P = 1, 2, 4, ... up to the cores, 1 thread per rank
#   MAXP=16 STEPS=6 bench/scaling.sh
#
# Strong scaling: global batch 128 split over P ranks. Weak scaling: WEAK_BATCH images per rank
# (global batch WEAK_BATCH x P). Hybrid: the cores split as ranks x threads at batch 128. Each run
# trains STEPS steps of configs/unet-s.ini and reports the `timing:` line of `ddpm train` (the
# first step is not timed): images/s, the fastest and the slowest rank's forward + backward time
# per step (the slowest sets the pace: the others wait for it in the gradient sum), the time
# waited for the gradient sum after backward (that imbalance plus the exposed communication), the
# time spent in MPI calls during backward (progressing the buckets), and one blocking allreduce
# of the whole gradient timed alone (the pure communication cost).
# Environment: DDPM (bin/ddpm), MPIRUN (mpirun), DATA (data/mnist), MAXP, STEPS, WEAK_BATCH.
set -u
DDPM=${DDPM:-bin/ddpm}
MPIRUN=${MPIRUN:-mpirun}
DATA=${DATA:-data/mnist}
CORES=$(nproc)
MAXP=${MAXP:-$CORES}
STEPS=${STEPS:-6}
WEAK_BATCH=${WEAK_BATCH:-32}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run RANKS THREADS BATCH MODE: prints "img/s ms/step wait call blocking buckets compute-range"
run() {
  local p=$1 t=$2 b=$3 mode=$4 line
  rm -rf "$tmp/run"
  OMP_NUM_THREADS=$t $MPIRUN -np "$p" --map-by "slot:PE=$t" --bind-to core \
    "$DDPM" train --config configs/unet-s.ini --set data.dir="$DATA" --set train.batch="$b" \
    --set train.max_steps="$STEPS" --set train.allreduce="$mode" --set sample.sampler=ddim \
    --set sample.steps=2 --set sample.n=1 --out "$tmp/run" >"$tmp/log" 2>&1 \
    || { echo "run P=$p T=$t B=$b failed:" >&2; tail -5 "$tmp/log" >&2; echo "- - - - - - -"; return; }
  line=$(grep '^timing:' "$tmp/log")
  awk -v l="$line" 'BEGIN {
    n = split(l, w, " "); ips = ms = wait = call = blk = 0; buckets = 0; range = "-"
    for (i = 1; i <= n; i++) {
      if (w[i] == "img/s,") ips = w[i - 1]
      if (w[i] == "ms/step;" || w[i] == "ms/step") { if (!ms) ms = w[i - 1] }
      if (w[i] == "waiting") wait = w[i - 2]
      if (w[i] == "in" && w[i + 1] == "MPI") call = w[i - 2]
      if (w[i] ~ /^\([0-9]+$/) { buckets = substr(w[i], 2) }
      if (w[i] == "alone:") blk = w[i + 1]
      if (w[i] == "rank" && w[i - 2] == "compute") range = w[i + 1]
    }
    printf "%s %s %s %s %s %s %s\n", ips, ms, wait, call, blk, buckets, range }'
}

ranks=()
for p in 1 2 4 8 16 32 64; do [ "$p" -le "$MAXP" ] && ranks+=("$p"); done
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $CORES cores; $(date -u +%Y-%m-%d)"
echo "command: MAXP=$MAXP STEPS=$STEPS WEAK_BATCH=$WEAK_BATCH bench/scaling.sh ($STEPS steps per run, the first not timed)"

table() { # title batch_of_p mode
  local title=$1 kind=$2 mode=$3 base=""
  echo
  echo "### $title"
  echo
  echo "| ranks x threads | global batch | images/s | speed-up | efficiency | ms/step | compute per rank, fastest..slowest (ms/step) | waited for gradient sum (ms/step) | in MPI calls during backward (ms/step) | one blocking allreduce alone (ms) | buckets |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for p in "${ranks[@]}"; do
    local b=128
    [ "$kind" = weak ] && b=$((WEAK_BATCH * p))
    read -r ips ms wait call blk buckets range < <(run "$p" 1 "$b" "$mode")
    [ "$ips" = "-" ] && { echo "| $p x 1 | $b | failed | | | | | | | | |"; continue; }
    [ -z "$base" ] && base=$ips
    awk -v p="$p" -v b="$b" -v ips="$ips" -v base="$base" -v ms="$ms" -v wait="$wait" -v call="$call" \
        -v blk="$blk" -v nb="$buckets" -v range="$range" 'BEGIN {
      printf "| %d x 1 | %d | %.1f | %.2f | %.0f%% | %.1f | %s | %.2f | %.2f | %.2f | %s |\n",
        p, b, ips, ips / base, 100 * ips / (p * base), ms, (p > 1 ? range : "-"), wait, call, blk,
        (p > 1 ? nb : "-") }'
  done
}

table "Strong scaling: global batch 128, 1 thread per rank, overlapped allreduce" strong overlap
table "Weak scaling: $WEAK_BATCH images per rank, 1 thread per rank, overlapped allreduce" weak overlap
table "Strong scaling with the blocking allreduce (one call after backward)" strong blocking

echo
echo "### Ranks x threads on all $MAXP cores, global batch 128"
echo
echo "| ranks x threads | images/s | ms/step |"
echo "|---|---|---|"
for p in "${ranks[@]}"; do
  t=$((MAXP / p))
  read -r ips ms _ < <(run "$p" "$t" 128 overlap)
  echo "| $p x $t | $ips | $ms |"
done
