#!/usr/bin/env bash
# bench/compare.sh (make bench-compare): bin/ddpm against PyTorch on the same machine and cores,
# in one run: the unet-s training step (batch 128) and one sampling network evaluation (batch
# 256), alternating ours / PyTorch ROUNDS times (A B A B ...), medians of the rounds, the ratio
# ours / PyTorch, GFLOP/s (3x forward FLOPs per image for training) against the BLIS sgemm rate
# measured in the same run, and each side's peak RSS. Reported, never asserted.
# Environment: OMP_NUM_THREADS (default: all cores; PyTorch gets the same), ROUNDS (3), ITERS (5).
set -eu
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$ROUNDS"); do
  for mode in train sample; do
    echo "ours $(bin/bench/bench_step "$mode" --iters "$ITERS")" >>"$out"
    echo "torch $(/usr/bin/python3 bench/torch_unet.py "$mode" --iters "$ITERS" --threads "$OMP_NUM_THREADS")" >>"$out"
  done
done
sgemm=$(bin/bench/bench_step sgemm | sed 's/.*gflops=//')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
  "$OMP_NUM_THREADS threads for both; $(date -u +%Y-%m-%d); $ROUNDS rounds x $ITERS timed iterations"
echo "BLIS sgemm 1024^3 on $OMP_NUM_THREADS threads in this run: $sgemm GFLOP/s"
echo
/usr/bin/python3 - "$out" "$sgemm" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    who, *kv = line.split()
    d = dict(x.split("=") for x in kv)
    rows.setdefault((who, d["mode"]), []).append(d)
sgemm = float(sys.argv[2])
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
print("| step | side | images/s (median) | ms | GFLOP/s | of sgemm | peak RSS MiB |")
print("|---|---|---|---|---|---|---|")
for mode, what in (("train", "training step, batch 128"), ("sample", "sampling evaluation, batch 256")):
    for who in ("ours", "torch"):
        rs = rows[(who, mode)]
        print(f"| {what} | {'bin/ddpm' if who == 'ours' else 'PyTorch ' + __import__('torch').__version__} | "
              f"{med(rs, 'per_s'):.1f} | {med(rs, 'ms'):.1f} | {med(rs, 'gflops'):.1f} | "
              f"{100 * med(rs, 'gflops') / sgemm:.0f}% | {med(rs, 'rss_mib'):.0f} |")
print()
for mode in ("train", "sample"):
    o, t = med(rows[("ours", mode)], "per_s"), med(rows[("torch", mode)], "per_s")
    ro, rt = med(rows[("ours", mode)], "rss_mib"), med(rows[("torch", mode)], "rss_mib")
    each = " ".join(f"{float(a['per_s']) / float(b['per_s']):.2f}" for a, b in zip(rows[("ours", mode)], rows[("torch", mode)]))
    print(f"{mode}: ours / PyTorch = {o / t:.2f} (per round: {each}); peak RSS ours / PyTorch = {ro / rt:.2f}")
PY
