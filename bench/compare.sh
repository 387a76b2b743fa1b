#!/usr/bin/env bash
# bench/compare.sh (make bench-compare): bin/ddpm against PyTorch on the same machine and cores,
# in one run: the unet-s training step (batch 128) and one sampling network evaluation (batch
# 256), alternating ours / PyTorch ROUNDS times (A B A B ...), medians of the rounds, the ratio
# ours / PyTorch, GFLOP/s (3x forward FLOPs per image for training) against the BLIS sgemm rate
# measured in the same run, and each side's peak RSS. Reported, never asserted.
# A third training row runs the same cores as MPI ranks of one thread each (`ddpm train` on MNIST
# under mpirun, ITERS + 1 steps of configs/unet-s.ini, its `timing:` line: data loading and the
# gradient allreduce included, peak RSS summed over the ranks), the way users train on a node.
# Environment: OMP_NUM_THREADS (default: all cores; PyTorch gets the same), ROUNDS (3), ITERS (5).
set -eu
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
out=$(mktemp)
run=$(mktemp -d)
trap 'rm -rf "$out" "$run"' EXIT

# unet-s training as OMP_NUM_THREADS MPI ranks x 1 thread: "mode=train per_s=... ms=... rss_mib=..."
train_mpi() {
  rm -rf "$run/r"
  OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun -np "$OMP_NUM_THREADS" --bind-to core bin/ddpm train --config configs/unet-s.ini \
    --set train.max_steps=$((ITERS + 1)) --set sample.sampler=ddim --set sample.steps=2 \
    --set sample.n=1 --out "$run/r" >"$run/log" 2>&1 || { tail -5 "$run/log" >&2; exit 1; }
  grep '^timing:' "$run/log" | awk '{ for (i = 1; i <= NF; i++) {
      if ($i == "img/s,") ips = $(i - 1); if ($i == "RSS") rss = $(i + 1)
      if (($i == "ms/step;" || $i == "ms/step") && !ms) ms = $(i - 1) }
    printf "mode=train per_s=%s ms=%s rss_mib=%s\n", ips, ms, rss }'
}
for r in $(seq "$ROUNDS"); do
  for mode in train sample; do
    echo "ours $(bin/bench/bench_step "$mode" --iters "$ITERS")" >>"$out"
    echo "torch $(/usr/bin/python3 bench/torch_unet.py "$mode" --iters "$ITERS" --threads "$OMP_NUM_THREADS")" >>"$out"
  done
  echo "ours-mpi $(train_mpi)" >>"$out"
done
sgemm=$(bin/bench/bench_step sgemm | sed 's/.*gflops=//')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
  "$OMP_NUM_THREADS threads for both; $(date -u +%Y-%m-%d); $ROUNDS rounds x $ITERS timed iterations"
echo "BLIS sgemm 1024^3 on $OMP_NUM_THREADS threads in this run: $sgemm GFLOP/s"
echo
/usr/bin/python3 - "$out" "$sgemm" "$OMP_NUM_THREADS" <<'PY'
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
per_image = med(rows[("ours", "train")], "gflops") / med(rows[("ours", "train")], "per_s")
for r in rows.get(("ours-mpi", "train"), []): r["gflops"] = float(r["per_s"]) * per_image
side = {"ours": "bin/ddpm", "ours-mpi": f"bin/ddpm, {sys.argv[3]} MPI ranks x 1 thread",
        "torch": "PyTorch " + __import__("torch").__version__}
for mode, what in (("train", "training step, batch 128"), ("sample", "sampling evaluation, batch 256")):
    for who in ("ours", "ours-mpi", "torch"):
        if (who, mode) not in rows: continue
        rs = rows[(who, mode)]
        print(f"| {what} | {side[who]} | "
              f"{med(rs, 'per_s'):.1f} | {med(rs, 'ms'):.1f} | {med(rs, 'gflops'):.1f} | "
              f"{100 * med(rs, 'gflops') / sgemm:.0f}% | {med(rs, 'rss_mib'):.0f} |")
print()
for mode in ("train", "sample"):
    o, t = med(rows[("ours", mode)], "per_s"), med(rows[("torch", mode)], "per_s")
    ro, rt = med(rows[("ours", mode)], "rss_mib"), med(rows[("torch", mode)], "rss_mib")
    each = " ".join(f"{float(a['per_s']) / float(b['per_s']):.2f}" for a, b in zip(rows[("ours", mode)], rows[("torch", mode)]))
    print(f"{mode}: ours / PyTorch = {o / t:.2f} (per round: {each}); peak RSS ours / PyTorch = {ro / rt:.2f}")
if ("ours-mpi", "train") in rows:
    rs, ts = rows[("ours-mpi", "train")], rows[("torch", "train")]
    each = " ".join(f"{float(a['per_s']) / float(b['per_s']):.2f}" for a, b in zip(rs, ts))
    print(f"train, {sys.argv[3]} MPI ranks x 1 thread: ours / PyTorch = "
          f"{med(rs, 'per_s') / med(ts, 'per_s'):.2f} (per round: {each}); peak RSS ours / PyTorch = "
          f"{med(rs, 'rss_mib') / med(ts, 'rss_mib'):.2f}")
PY
