#!/usr/bin/env bash
# tools/quality.sh CHECKPOINT OUTDIR [N]: sample N images (noise seed 1) from CHECKPOINT with
# each sampler setting of results/quality.md, score each with `ddpm eval` (FID against the
# MNIST test set, class entropy, confidence), plus the real-data floor (N training images),
# and print the markdown table. Samples and JSON go to OUTDIR, labelled with the checkpoint and N
# (OUTDIR/checkpoint.txt): a rerun resumes; another checkpoint or N is refused. Threads:
# OMP_NUM_THREADS.
set -euo pipefail # a failed `ddpm sample | tail -1` must stop the script
ck=${1:?usage: tools/quality.sh CHECKPOINT OUTDIR [N]}
out=${2:?usage: tools/quality.sh CHECKPOINT OUTDIR [N]}
N=${3:-1000}
DDPM=${DDPM:-bin/ddpm}
source "$(dirname "$0")/outdir_claim.sh"
outdir_take quality.sh "$ck" "$out" "$N"
# DDPM takes all T steps of the checkpoint's schedule (300 for the reference recipe)
T=$(/usr/bin/python3 -c "import h5py, sys; print(int(h5py.File(sys.argv[1], 'r').attrs['T']))" "$ck")
score() { # name, then ddpm sample options
  local name=$1; shift
  [ -s "$out/$name.json" ] && return 0 # already scored: rerunning the script resumes
  $DDPM sample --checkpoint "$ck" --n "$N" --seed 1 --out "$out/$name.h5" "$@" | tail -1
  $DDPM eval --samples "$out/$name.h5" --n "$N" --out "$out/$name.json" >/dev/null
}
[ -s "$out/real-train.json" ] || $DDPM eval --real train --n "$N" --out "$out/real-train.json" >/dev/null
score "ddpm$T-ema" --sampler ddpm
score "ddpm$T-raw" --sampler ddpm --weights model
for k in 10 20 50 100; do
  score "ddim$k-eta1" --sampler ddim --steps "$k" --eta 1
  score "ddim$k-eta0" --sampler ddim --steps "$k" --eta 0
done
echo
echo "| images | weights | network evaluations | FID (N = $N) | class entropy (nats, max 2.303) | mean confidence |"
echo "|---|---|---|---|---|---|"
row() { # json, label, weights, evals
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {r['fid']:.2f} | {r['class_entropy_nats']:.3f} | {r['mean_confidence']:.3f} |")
PY
}
row "$out/real-train.json" "real MNIST training images (the floor)" "-" "-"
row "$out/ddpm$T-ema.json" "DDPM" "EMA" "$T"
row "$out/ddpm$T-raw.json" "DDPM" "raw" "$T"
for eta in 1 0; do
  for k in 10 20 50 100; do row "$out/ddim$k-eta$eta.json" "DDIM, eta $eta" "EMA" "$k"; done
done
