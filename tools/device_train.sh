#!/usr/bin/env bash
# tools/device_train.sh DIR SECONDS NP TRAIN_ARGS...: train for SECONDS on NP ranks (1 thread
# each) of a machine with no package manager (a session's 16-core device machine), then stop
# with SIGUSR1 so that the run writes its checkpoint, and leave in $OUT what a resume elsewhere
# needs. Like bench/scaling_device.sh it runs from what DIR carries:
#   DIR/debs   the Debian runtime (../shared/tools/mpi-prefix.sh fetch DIR/debs)
#   DIR/bin    bin/ddpm built here with `make BUILD=DIR/build BIN=DIR/bin ARCH=x86-64-v4 DIR/bin/ddpm`
#   DIR/mnist  the MNIST training IDX files, gzipped
# $OUT receives train.log, cpu.txt, config.ini, metrics.h5, latest.sha256 and the checkpoint in
# 15 MB pieces latest.h5.part-aa, -ab, ... (the device returns files of at most 16 MiB); here:
#   cat OUT/latest.h5.part-* > RUN/checkpoints/latest.h5; cp OUT/metrics.h5 RUN/
# and continue with the same TRAIN_ARGS and --out RUN --resume.
set -u
dir=${1:?usage: tools/device_train.sh DIR SECONDS NP TRAIN_ARGS...}
secs=${2:?usage: tools/device_train.sh DIR SECONDS NP TRAIN_ARGS...}
np=${3:?usage: tools/device_train.sh DIR SECONDS NP TRAIN_ARGS...}
shift 3
out=${OUT:-/tmp/device_train}
run=/tmp/device_train_run
mkdir -p "$out"
source "$dir/debs/mpi-prefix.sh" env "$dir/debs" >/dev/null 2>&1
{ date -u; nproc; lscpu | head -25; } >"$out/cpu.txt" 2>&1
ldd "$dir/bin/ddpm" | grep "not found" && { echo "libraries missing"; exit 3; }
# the stop: every rank gets SIGUSR1, finishes its step, and the run checkpoints (exit status 75)
(sleep "$secs"; pkill -USR1 -f "$dir/bin/ddpm train") >/dev/null 2>&1 &
stopper=$!
OMP_NUM_THREADS=1 orterun -np "$np" --bind-to core "$dir/bin/ddpm" train "$@" \
  --set data.dir="$dir/mnist" --out "$run" --resume >"$out/train.log" 2>&1
rc=$?
echo "train rc $rc" >>"$out/train.log"
# a run that ended before the stop: the stopper must not linger and signal a later run
pkill -P "$stopper" sleep 2>/dev/null; kill "$stopper" 2>/dev/null
c=$run/checkpoints/latest.h5
# 0 (finished) and 75 (stopped with a checkpoint) leave a checkpoint of this call; anything else
# would send back an earlier call's (the run folder outlives a call on a machine kept warm)
if [ $rc -ne 0 ] && [ $rc -ne 75 ]; then tail -4 "$out/train.log"; exit $rc; fi
sha256sum "$c" >"$out/latest.sha256"
split -b 15000000 "$c" "$out/latest.h5.part-"
cp "$run/metrics.h5" "$run/config.ini" "$out/"
date -u >>"$out/cpu.txt"
tail -4 "$out/train.log"
exit $rc
