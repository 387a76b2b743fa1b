#!/usr/bin/env bash
# tools/guidance.sh CHECKPOINT OUTDIR [N]: the classifier-free guidance trade-off of a
# class-conditional checkpoint. For W in 0 0.5 1 2 4: N images (N/10 per digit, noise seed 1,
# DDIM-50 with eta 1) sampled with --classes 0-9 --guidance W and scored with `ddpm eval`
# (overall FID, fraction classified as the digit asked for, FID per digit against the test
# digits of that class); plus the same checkpoint sampled unconditionally (null label) and the
# per-digit floor: N real training digits with their true labels, scored the same way. Prints
# the markdown table of results/quality.md; samples and JSON go to OUTDIR (a rerun resumes;
# OUTDIR/checkpoint.txt names the checkpoint and N, and another checkpoint or N is refused).
set -euo pipefail # a failed `ddpm sample | tail -1` must stop the script
ck=${1:?usage: tools/guidance.sh CHECKPOINT OUTDIR [N]}
out=${2:?usage: tools/guidance.sh CHECKPOINT OUTDIR [N]}
N=${3:-1000}
DDPM=${DDPM:-bin/ddpm}
source "$(dirname "$0")/outdir_claim.sh"
outdir_take guidance.sh "$ck" "$out" "$N"
PY=/usr/bin/python3
SAMPLER=(--sampler ddim --steps 50 --eta 1 --seed 1)
if [ ! -s "$out/real-train.json" ]; then
  $PY - data/mnist "$out/real-train.h5" "$N" <<'PY'
import sys, h5py, numpy as np
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = np.frombuffer(open(f"{src}/train-images-idx3-ubyte", "rb").read()[16:16 + n * 784], np.uint8)
y = np.frombuffer(open(f"{src}/train-labels-idx1-ubyte", "rb").read()[8:8 + n], np.uint8)
with h5py.File(dst, "w") as f:
    f["samples"] = (x.reshape(n, 1, 28, 28).astype(np.float32) / 127.5 - 1).astype(np.float32)
    f["labels"] = y.astype(np.int32)
PY
  $DDPM eval --samples "$out/real-train.h5" --out "$out/real-train.json" >/dev/null
fi
if [ ! -s "$out/unconditional.json" ]; then
  $DDPM sample --checkpoint "$ck" --n "$N" "${SAMPLER[@]}" --out "$out/unconditional.h5" | tail -1
  $DDPM eval --samples "$out/unconditional.h5" --out "$out/unconditional.json" >/dev/null
fi
for w in 0 0.5 1 2 4; do
  [ -s "$out/w$w.json" ] && continue
  $DDPM sample --checkpoint "$ck" --n "$N" "${SAMPLER[@]}" --classes 0-9 --guidance "$w" \
    --out "$out/w$w.h5" | tail -1
  $DDPM eval --samples "$out/w$w.h5" --out "$out/w$w.json" >/dev/null
done
echo
$PY - "$out" "$N" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
def load(name):
    return json.load(open(f"{out}/{name}.json"))
print(f"| images (N = {n}) | guidance W | evaluations per step | FID | classified as asked | FID per digit: mean (min..max), N = {n // 10} each | class entropy (nats) | mean confidence |")
print("|---|---|---|---|---|---|---|---|")
def row(name, label, w, evals):
    r = load(name)
    pc = [c for c in r.get("per_class", []) if c["fid"] is not None] # null: a one-image class
    match = f"{100 * r['label_match']:.1f}%" if pc else "-"
    digits = (f"{sum(c['fid'] for c in pc) / len(pc):.1f} ({min(c['fid'] for c in pc):.1f}..{max(c['fid'] for c in pc):.1f})"
              if pc else "-")
    print(f"| {label} | {w} | {evals} | {r['fid']:.2f} | {match} | {digits} | {r['class_entropy_nats']:.3f} | {r['mean_confidence']:.3f} |")
row("real-train", "real training digits, true labels (the floor)", "-", "-")
row("unconditional", "unconditional (null label)", "-", 1)
for w in ("0", "0.5", "1", "2", "4"):
    row(f"w{w}", "digits 0-9, N/10 each", w, 1 if w == "0" else 2)
PY
