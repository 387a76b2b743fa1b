#!/usr/bin/env bash
# bench/scaling_device.sh DIR: the MPI checks and bench/scaling.sh on a machine with no package
# manager (the 16-core device machine), from what DIR carries:
#   DIR/debs   the Debian runtime (../shared/tools/mpi-prefix.sh fetch DIR/debs, plus hdf5-tools)
#   DIR/bin    bin/ddpm built here with `make BUILD=DIR/build BIN=DIR/bin ARCH=x86-64-v3 DIR/bin/ddpm`
#   DIR/mnist  the MNIST IDX files, gzipped
# Results go to $OUT (or /tmp): scaling.md, checks.txt, cpu.txt.
set -u
carry=${1:?usage: bench/scaling_device.sh DIR}
out=${OUT:-/tmp}
source "$carry/debs/mpi-prefix.sh" env "$carry/debs" # (it sets its own variables)
{ nproc; lscpu; } >"$out/cpu.txt" 2>&1
ldd "$carry/bin/ddpm" | grep "not found" && { echo "libraries missing"; exit 1; }
DDPM=$carry/bin/ddpm
w=$(mktemp -d)
{
  echo "== MPI checks on $(nproc) cores"
  OMP_NUM_THREADS=1 $DDPM train --config configs/tiny.ini --set data.dir="$carry/mnist" \
    --set train.max_steps=10 --out "$w/p1" | tail -2
  OMP_NUM_THREADS=1 orterun -np 16 --bind-to core $DDPM train --config configs/tiny.ini \
    --set data.dir="$carry/mnist" --set train.max_steps=10 --set train.bucket_kb=4 --out "$w/p16" | tail -3
  echo "P=1 vs P=16 weights after 10 steps, elements differing by more than 1e-5 relative:"
  h5diff -p 1e-5 "$w/p1/checkpoints/latest.h5" "$w/p16/checkpoints/latest.h5" /params /params | tail -1
  echo "... by more than 1e-3 relative:"
  h5diff -p 1e-3 "$w/p1/checkpoints/latest.h5" "$w/p16/checkpoints/latest.h5" /params /params | tail -1
  ck=$w/p1/checkpoints/latest.h5
  $DDPM sample --checkpoint "$ck" --n 64 --batch 4 --trajectory --out "$w/s1.h5" | tail -1
  orterun -np 16 --bind-to core $DDPM sample --checkpoint "$ck" --n 64 --batch 4 --trajectory \
    --out "$w/s16.h5" | tail -1
  h5diff "$w/s1.h5" "$w/s16.h5" && echo "P=16 samples (parallel HDF5) identical to P=1"
} >"$out/checks.txt" 2>&1
cat "$out/checks.txt"
DDPM=$DDPM MPIRUN=orterun DATA=$carry/mnist MAXP=${MAXP:-16} STEPS=${STEPS:-8} bench/scaling.sh \
  | tee "$out/scaling.md"
rm -rf "$w"
