#!/usr/bin/env bash
# tools/recipe.sh OUTDIR N NAME=CHECKPOINT [NAME=CHECKPOINT ...]: the recipe table of
# results/quality.md. For each trained run (unconditional checkpoints, EMA weights, noise seed 1):
# N images with DDPM over all T steps, with DDIM-50 eta 0 (deterministic) and with DDIM-50
# eta 1, each scored by `ddpm eval` (FID against the MNIST test set); plus the real-data floor
# (N training images). Prints one markdown row per run: its T and schedule (from the checkpoint),
# the three FIDs, DDIM-50 eta 0 relative to DDPM, and the precision and recall of the DDPM
# samples. Samples and JSON go to OUTDIR/NAME (a rerun resumes: settings whose JSON exists are
# not redone, samples files that exist are scored without sampling again). DDPM="mpirun -np 2 bin/ddpm"
# shares the sampling and scoring between ranks (the images do not depend on the rank count).
set -eu
usage="usage: tools/recipe.sh OUTDIR N NAME=CHECKPOINT [NAME=CHECKPOINT ...]"
out=${1:?$usage}
N=${2:?$usage}
shift 2
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
DDPM=${DDPM:-bin/ddpm}
PY=/usr/bin/python3
for run in "$@"; do
  case $run in
    *=*) ;;
    *) echo "recipe.sh: '$run' is not NAME=CHECKPOINT" >&2; exit 2 ;;
  esac
  [ -r "${run#*=}" ] || { echo "recipe.sh: cannot read checkpoint ${run#*=}" >&2; exit 2; }
done
mkdir -p "$out"
[ -s "$out/real-train.json" ] ||
  $DDPM eval --real train --n "$N" --out "$out/real-train.json" >/dev/null
for run in "$@"; do
  name=${run%%=*} ck=${run#*=} dir=$out/${run%%=*}
  mkdir -p "$dir"
  score() { # setting, then ddpm sample options
    local setting=$1; shift
    [ -s "$dir/$setting.json" ] && return 0
    # samples files appear only when complete (written as .tmp, then renamed): reuse one
    [ -s "$dir/$setting.h5" ] ||
      $DDPM sample --checkpoint "$ck" --n "$N" --seed 1 --out "$dir/$setting.h5" "$@" | tail -1
    $DDPM eval --samples "$dir/$setting.h5" --n "$N" --out "$dir/$setting.json" >/dev/null
  }
  echo "$name: $ck" >&2
  score ddpm --sampler ddpm
  score ddim50-eta0 --sampler ddim --steps 50 --eta 0
  score ddim50-eta1 --sampler ddim --steps 50 --eta 1
  echo "$ck" > "$dir/checkpoint.txt"
done
echo
echo "| run | T, schedule | DDPM (T steps) FID | DDIM-50 eta 0 FID | eta 0 / DDPM | DDIM-50 eta 1 FID | DDPM precision / recall |"
echo "|---|---|---|---|---|---|---|"
$PY - "$out" "$@" <<'PY'
import json, sys
import h5py
out, runs = sys.argv[1], sys.argv[2:]
real = json.load(open(f"{out}/real-train.json"))
print(f"| real training images (the floor) | - | {real['fid']:.1f} | - | - | - | {real['precision']:.3f} / {real['recall']:.3f} |")
for run in runs:
    name, ck = run.split("=", 1)
    js = {s: json.load(open(f"{out}/{name}/{s}.json")) for s in ("ddpm", "ddim50-eta0", "ddim50-eta1")}
    fid = {s: j["fid"] for s, j in js.items()}
    with h5py.File(ck, "r") as f:
        sched = f.attrs["schedule"]
        sched = f"{int(f.attrs['T'])}, {sched.decode() if isinstance(sched, bytes) else sched}"
    print(f"| {name} | {sched} | {fid['ddpm']:.1f} | {fid['ddim50-eta0']:.1f} | "
          f"{fid['ddim50-eta0'] / fid['ddpm']:.2f} | {fid['ddim50-eta1']:.1f} | "
          f"{js['ddpm']['precision']:.3f} / {js['ddpm']['recall']:.3f} |")
PY
