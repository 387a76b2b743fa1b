#!/usr/bin/env bash
# tools/device_recipe.sh DIR SECONDS NP ROW:ETA:N...: recipe-table columns (results/recipe.md)
# on a machine with no package manager (a session's 16-core device machine). For each column in
# turn, N images from results/ROW/final.h5 (EMA weights, noise seed 1, x0 clamped) with DDIM-50 at
# the given eta, scored by `ddpm eval` on NP ranks (1 thread each): the same settings, and so the
# same images, as tools/recipe.sh. Columns not finished within SECONDS are left out; a malformed
# column (or a ROW without weights) stops the script before any work. From DIR:
#   DIR/debs   the Debian runtime (../shared/tools/mpi-prefix.sh fetch DIR/debs)
#   DIR/bin    bin/ddpm built here with `make BUILD=DIR/build BIN=DIR/bin ARCH=x86-64-v4 DIR/bin/ddpm`
#   DIR/mnist  the MNIST t10k IDX files (the FID's reference), gzipped
# $OUT receives ROW-ddim50-etaETA-clip-nN.json per finished column ('+' in ROW written '_': the
# device returns only names of letters, digits, '.', '_' and '-'), recipe.log (each column's
# sampling line and times) and cpu.txt; here they go to results/quality/recipe/ROW/.
set -u -o pipefail
usage="usage: tools/device_recipe.sh DIR SECONDS NP ROW:ETA:N..."
dir=${1:?$usage} secs=${2:?$usage} np=${3:?$usage}
shift 3
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
bad() { echo "device_recipe.sh: column '$col': $*" >&2; exit 2; }
for col in "$@"; do # every column checked before the (costly) runtime starts
  IFS=: read -r row eta n extra <<<"$col"
  [ -n "$row" ] && [ -z "$extra" ] || bad "expected ROW:ETA:N"
  [ -r "results/$row/final.h5" ] || bad "cannot read results/$row/final.h5"
  [[ $eta =~ ^[0-9]+(\.[0-9]+)?$ ]] || bad "ETA '$eta' is not a number >= 0"
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 4 ] || bad "N '$n' is not a number of images >= 4"
done
out=${OUT:-/tmp/device_recipe}
work=${WORK:-/tmp/device_recipe_work} # the samples (not returned)
mkdir -p "$out" "$work/mnist"
source "$dir/debs/mpi-prefix.sh" env "$dir/debs" >/dev/null 2>&1
{ date -u; nproc; lscpu | head -25; } >"$out/cpu.txt" 2>&1
ldd "$dir/bin/ddpm" | grep "not found" && { echo "libraries missing"; exit 3; }
for f in "$dir"/mnist/t10k-*.gz; do gunzip -c "$f" >"$work/mnist/$(basename "$f" .gz)"; done
end=$((SECONDS + secs))
ddpm() { # what is left of the time: `timeout 0` would mean no limit at all, so stop instead
  local left=$((end - SECONDS))
  [ "$left" -ge 1 ] || { echo "out of time before: ddpm $*"; return 124; }
  OMP_NUM_THREADS=1 timeout "$left" orterun -np "$np" --bind-to core "$dir/bin/ddpm" "$@"
}
log=$out/recipe.log
for col in "$@"; do
  IFS=: read -r row eta n <<<"$col"
  name=ddim50-eta$eta-clip-n$n file=$work/$row/$name
  mkdir -p "$work/$row"
  [ $SECONDS -lt $end ] || { echo "$col: no time left" >>"$log"; continue; }
  echo "$(date -u +%T) $row $name ($(sha256sum <"results/$row/final.h5" | cut -c1-16))" >>"$log"
  ddpm sample --checkpoint "results/$row/final.h5" --n "$n" --seed 1 --sampler ddim --steps 50 \
    --eta "$eta" --clip --out "$file.h5" 2>&1 | tail -1 >>"$log" &&
  # (eval's stderr apart: the carried PMIx prints a page of harmless plugin warnings per rank)
  { ddpm eval --samples "$file.h5" --n "$n" --ref "$work/mnist" --out "$file.json" >/dev/null \
    2>"$file.err" || { tail -3 "$file.err" >>"$log"; false; }; } &&
  cp "$file.json" "$out/${row//+/_}-$name.json" &&
  echo "$(date -u +%T) $row $name $(grep '"fid"' "$file.json")" >>"$log" ||
  echo "$(date -u +%T) $row $name: not finished" >>"$log"
done
cat "$log"
