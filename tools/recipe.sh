#!/usr/bin/env bash
# tools/recipe.sh OUTDIR N NAME=CHECKPOINT [NAME=CHECKPOINT ...]: the recipe table of
# results/recipe.md. For each trained run (unconditional checkpoints, EMA weights, noise seed 1),
# images scored by `ddpm eval` (FID against the MNIST test set, precision and recall):
#   - N_DDPM images (default N) with DDPM over all T steps and with deterministic DDIM-50
#     (eta 0), and their FID ratio (both at the same N: FIDs of different N do not compare);
#   - N images with DDIM-50 eta 0 and eta 1 (the same files as above when N_DDPM = N).
# Every sampler clamps its x0 estimate to [-1, 1] (--clip, as Ho et al.'s sampler; the cosine
# schedule needs it); CLIP=0 samples without (files then lack the "-clip" in their names).
# Plus the real-data floor at each N. One markdown row per run, with its T and schedule (from the
# checkpoint). DDPM with T = 1000 costs 20x DDIM-50: N_DDPM=1000 with N=10000 keeps it affordable.
# Samples and JSON go to OUTDIR/NAME, named by setting and N; a rerun resumes (JSON that exists is
# not redone; a samples file that exists, complete by construction, is scored without sampling
# again). OUTDIR/NAME/checkpoint.txt holds the checkpoint's path and SHA-256: a NAME whose folder
# holds another checkpoint's samples (or unlabelled files) is refused, as is a NAME given twice.
# DDPM="mpirun -np 2 bin/ddpm" shares sampling and scoring between ranks (same images).
set -eu -o pipefail
usage="usage: [N_DDPM=N2] tools/recipe.sh OUTDIR N NAME=CHECKPOINT [NAME=CHECKPOINT ...]"
out=${1:?$usage}
N=${2:?$usage}
shift 2
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
ND=${N_DDPM:-$N}
case ${CLIP:-1} in
  1) clip=(--clip) cs=-clip ;;
  0) clip=(--no-clip) cs= ;;
  *) echo "recipe.sh: CLIP=${CLIP} (expected 1 or 0)" >&2; exit 2 ;;
esac
DDPM=${DDPM:-bin/ddpm}
PY=${PYTHON:-/usr/bin/python3} # with h5py
refuse() { echo "recipe.sh: $*" >&2; exit 2; }
source "$(dirname "$0")/outdir_claim.sh"
for v in "$N" "$ND"; do
  case $v in ''|*[!0-9]*) refuse "N = '$v' is not a number of images" ;; esac
  [ "$v" -ge 4 ] || refuse "N = $v: precision and recall need at least 4 images"
done
declare -A seen identity
for run in "$@"; do
  case $run in
    ?*=?*) ;;
    *) refuse "'$run' is not NAME=CHECKPOINT" ;;
  esac
  name=${run%%=*} ck=${run#*=}
  [ -z "${seen[$name]:-}" ] || refuse "NAME $name is given twice"
  seen[$name]=1
  [ -r "$ck" ] || refuse "cannot read checkpoint $ck"
  identity[$name]=$(outdir_identity "$ck")
  outdir_check recipe.sh "$out/$name" "${identity[$name]}"
done
mkdir -p "$out"
for n in "$ND" "$N"; do
  [ -s "$out/real-train-n$n.json" ] ||
    $DDPM eval --real train --n "$n" --out "$out/real-train-n$n.json" >/dev/null
done
for run in "$@"; do
  name=${run%%=*} ck=${run#*=} dir=$out/${run%%=*}
  outdir_claim "$dir" "${identity[$name]}"
  score() { # setting, N, then ddpm sample options
    local file=$dir/$1-n$2 n=$2; shift 2
    [ -s "$file.json" ] && return 0
    # samples files appear only when complete (written as .tmp, then renamed): reuse one
    [ -s "$file.h5" ] ||
      $DDPM sample --checkpoint "$ck" --n "$n" --seed 1 --out "$file.h5" "$@" | tail -1 >&2
    $DDPM eval --samples "$file.h5" --n "$n" --out "$file.json" >/dev/null
  }
  echo "$name: $ck" >&2
  # the cheap DDIM-50 columns first: an interrupted run leaves them done
  score "ddim50-eta0$cs" "$ND" --sampler ddim --steps 50 --eta 0 "${clip[@]}"
  score "ddim50-eta0$cs" "$N" --sampler ddim --steps 50 --eta 0 "${clip[@]}"
  score "ddim50-eta1$cs" "$N" --sampler ddim --steps 50 --eta 1 "${clip[@]}"
  score "ddpm$cs" "$ND" --sampler ddpm "${clip[@]}"
done
echo
$PY - "$out" "$ND" "$N" "$cs" "$@" <<'PY'
import json, sys
import h5py
out, nd, n, cs, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
print("x0 estimates clamped to [-1, 1]" if cs else "x0 estimates not clamped (CLIP=0)")
print()
def load(path):
    return json.load(open(path))
cols = [f"DDPM, T steps (N = {nd})", f"DDIM-50 eta 0 (N = {nd})", "eta 0 / DDPM"]
if n != nd:
    cols.append(f"DDIM-50 eta 0 (N = {n})")
cols += [f"DDIM-50 eta 1 (N = {n})", f"DDPM precision / recall (N = {nd})"]
print("| run | T, schedule | " + " | ".join(cols) + " |")
print("|---" * (len(cols) + 2) + "|")
rd, rn = load(f"{out}/real-train-n{nd}.json"), load(f"{out}/real-train-n{n}.json")
cells = [f"{rd['fid']:.1f}", "-", "-"] + ([f"{rn['fid']:.1f}"] if n != nd else []) + \
        [f"{rn['fid']:.1f}", f"{rd['precision']:.3f} / {rd['recall']:.3f}"]
print("| real training images (the floor) | - | " + " | ".join(cells) + " |")
for run in runs:
    name, ck = run.split("=", 1)
    j = lambda s, k: load(f"{out}/{name}/{s}{cs}-n{k}.json")
    ddpm, e0 = j("ddpm", nd), j("ddim50-eta0", nd)
    with h5py.File(ck, "r") as f:
        sched = f.attrs["schedule"]
        sched = f"{int(f.attrs['T'])}, {sched.decode() if isinstance(sched, bytes) else sched}"
    cells = [f"{ddpm['fid']:.1f}", f"{e0['fid']:.1f}", f"{e0['fid'] / ddpm['fid']:.2f}"]
    if n != nd:
        cells.append(f"{j('ddim50-eta0', n)['fid']:.1f}")
    cells += [f"{j('ddim50-eta1', n)['fid']:.1f}", f"{ddpm['precision']:.3f} / {ddpm['recall']:.3f}"]
    print(f"| {name} | {sched} | " + " | ".join(cells) + " |")
PY
