#!/usr/bin/env bash
# bench/rank_spread.sh: the `timing:` line of short unet-s runs (batch 128, 1 thread per rank)
# at several rank counts with both gradient-sum modes, then one weak-scaling run (32 images per
# rank) at the largest count: how far apart the ranks' compute times are, and what rank 0 waits.
# Environment: DDPM (bin/ddpm), MPIRUN (mpirun), DATA (data/mnist), RANKS ("8 12 14 15 16"),
# STEPS (10). On the device machine it ran from the prefix of bench/scaling_device.sh with
# DDPM=device/bin/ddpm MPIRUN=orterun DATA=device/mnist.
set -u
DDPM=${DDPM:-bin/ddpm}
MPIRUN=${MPIRUN:-mpirun}
DATA=${DATA:-data/mnist}
RANKS=${RANKS:-8 12 14 15 16}
STEPS=${STEPS:-10}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
train() { # ranks batch mode
  OMP_NUM_THREADS=1 $MPIRUN -np "$1" --bind-to core "$DDPM" train --config configs/unet-s.ini \
    --set data.dir="$DATA" --set train.batch="$2" --set train.max_steps="$STEPS" \
    --set train.allreduce="$3" --set sample.n=1 --set sample.steps=2 --set sample.sampler=ddim \
    --out "$w/r" 2>&1 | grep '^timing' | sed 's/timing: //'
  rm -rf "$w/r"
}
for mode in blocking overlap; do
  for p in $RANKS; do echo -n "$mode P=$p: "; train "$p" 128 "$mode"; done
done
last=${RANKS##* }
echo -n "blocking P=$last weak 32/rank: "
train "$last" $((32 * last)) blocking
