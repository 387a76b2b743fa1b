#!/usr/bin/env bash
# test_kernels.sh: the convolutions that call the BLIS micro-kernel directly (src/nn/conv_direct.c)
# work with every register block BLIS may hand them, not only the one this CPU gets by default:
# the convolution tests (test_gradcheck_conv: forward against the direct loop, every gradient
# against finite differences and against the im2col path) rerun under BLIS's AVX2 kernels
# (haswell, zen3: 6 x 16) and its portable ones (generic: 4 x 16). BLIS_ARCH_TYPE picks them
# (src/util/blas_setup.c defers to it).
set -u
source "$(dirname "$0")/checks.sh"
ids=$(
  cat >"$work/arch.c" <<'C'
#include <stdio.h>
#include "blis.h"
int main(void) { printf("%d %d %d\n", BLIS_ARCH_HASWELL, BLIS_ARCH_ZEN3, BLIS_ARCH_GENERIC); return 0; }
C
  cc -I/usr/include/x86_64-linux-gnu/blis-openmp "$work/arch.c" -o "$work/arch" \
    -L/usr/lib/x86_64-linux-gnu/blis-openmp -lblis -lm -fopenmp && "$work/arch"
) || fail "cannot read BLIS's architecture ids"
read -r haswell zen3 generic <<<"$ids"
avx2=0
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && avx2=1
for arch in "haswell $haswell" "zen3 $zen3" "generic $generic"; do
  set -- $arch
  if [ "$1" != generic ] && [ $avx2 = 0 ]; then
    skip "BLIS $1 kernels" "this CPU has no AVX2/FMA (the generic kernels still run)"
    continue
  fi
  out=$(BLIS_ARCH_TYPE=$2 OMP_NUM_THREADS=2 bin/tests/test_gradcheck_conv 2>&1)
  rc=$?
  if [ $rc -eq 0 ] && grep -q "PASSED" <<<"$out" && ! grep -q FAILED <<<"$out"; then
    pass "convolution tests with BLIS's $1 kernels"
  else
    fail "convolution tests with BLIS's $1 kernels: $(grep -E 'FAILED|ERROR|differs' <<<"$out" | head -3)"
  fi
done
finish kernel
