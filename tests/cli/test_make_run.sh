#!/usr/bin/env bash
# test_make_run.sh: the README's first command, `make run`, cut short (T = 50 so that the final
# DDPM grid takes seconds): it trains the default config on its default rank count into RUN and
# draws 64 DDPM samples from the EMA weights; stopped after step 1, the same command continues
# at step 2; run on a finished run it trains nothing and draws the same samples again.
set -u
source "$(dirname "$0")/checks.sh"
run="$work/main"
# as a user's shell has it: no thread count from run_tests.sh, no flags of an outer make
make_run() { # STEPS: make run, stopping after STEPS training steps
  env -u OMP_NUM_THREADS -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u NP \
    make --no-print-directory run RUN="$run" TRAIN_ARGS="--set train.max_steps=$1 --set diffusion.T=50"
}
grid_ok() { # 64 finite images in [-1, 1] from the step-N checkpoint, with their PNG
  $PY - "$run" "$1" <<'EOF'
import sys, os, h5py, numpy as np
run, step = sys.argv[1], int(sys.argv[2])
with h5py.File(f"{run}/samples/final-ddpm.h5", "r") as f:
    x = f["samples"][()]
    assert x.shape == (64, 1, 28, 28), x.shape
    assert np.isfinite(x).all() and x.min() >= -1 and x.max() <= 1, (x.min(), x.max())
    assert int(f.attrs["step"]) == step, f"samples of step {f.attrs['step']}"
    assert f.attrs["sampler"] in (b"ddpm", "ddpm"), f.attrs["sampler"]
assert os.path.getsize(f"{run}/samples/final-ddpm.png") > 1000
EOF
}
ranks=$([ "$(env -u OMP_NUM_THREADS nproc)" -ge 2 ] && echo 2 || echo 1)
# each unbound rank takes the node's cores / ranks threads (1 on the 2-core VM)
threads=$(( $(getconf _NPROCESSORS_ONLN) / ranks )); [ $threads -ge 1 ] || threads=1

make_run 1 >"$work/first.log" 2>&1
rc=$?
[ $rc -eq 0 ] && pass "make run exits 0" || fail "make run exited $rc: $(tail -3 "$work/first.log")"
grep -q "^training: 748161 parameters, batch 128" "$work/first.log" \
  && pass "make run trains the default config (unet-s: 748161 parameters, batch 128)" \
  || fail "make run's network: $(grep -m1 '^training' "$work/first.log")"
grep -q "^layout: 1 node, $ranks ranks\? ($ranks on this node), $threads threads\? per rank" "$work/first.log" \
  && pass "make run trains on $ranks MPI rank(s) of $threads thread(s) on this $(getconf _NPROCESSORS_ONLN)-core machine" \
  || fail "make run's layout: $(grep -m1 '^layout' "$work/first.log")"
grid_ok 1 >"$work/check.log" 2>&1 && pass "64 DDPM samples of the step-1 weights in RUN/samples/final-ddpm.h5 and .png" \
  || fail "make run's grid: $(tail -2 "$work/check.log")"

make_run 2 >"$work/second.log" 2>&1
grep -q "^resuming .* at step 1 " "$work/second.log" && grid_ok 2 >"$work/check.log" 2>&1 \
  && pass "make run again continues the stopped run at step 1, to step 2, and draws its grid" \
  || fail "make run on a stopped run: $(grep -m1 '^resuming' "$work/second.log") $(tail -1 "$work/check.log")"

ck="$run/checkpoints/latest.h5"
before=$(sha256sum <"$ck"); rows=$($PY -c "import h5py,sys; print(h5py.File(sys.argv[1],'r')['loss'].shape[0])" "$run/metrics.h5")
cp "$run/samples/final-ddpm.h5" "$work/grid2.h5"
rm -f "$run/samples/final-ddpm.h5" "$run/samples/final-ddpm.png"
make_run 2 >"$work/third.log" 2>&1
rc=$?
after=$(sha256sum <"$ck"); rows2=$($PY -c "import h5py,sys; print(h5py.File(sys.argv[1],'r')['loss'].shape[0])" "$run/metrics.h5")
[ $rc -eq 0 ] && [ -n "$rows" ] && [ "$before" = "$after" ] && [ "$rows" = "$rows2" ] \
  && pass "make run on a finished run trains nothing (checkpoint bytes and $rows metrics rows unchanged)" \
  || fail "make run on a finished run: rc $rc, checkpoint $([ "$before" = "$after" ] && echo same || echo changed), metrics rows $rows -> $rows2"
grid_ok 2 >"$work/check.log" 2>&1 && $PY -c "
import h5py, numpy as np, sys
np.testing.assert_array_equal(h5py.File(sys.argv[1],'r')['samples'][()], h5py.File(sys.argv[2],'r')['samples'][()])" \
  "$work/grid2.h5" "$run/samples/final-ddpm.h5" >>"$work/check.log" 2>&1 \
  && pass "and draws the same 64 samples again (same weights, same seed)" \
  || fail "make run's grid drawn again: $(tail -2 "$work/check.log")"
# the build's flags are part of what an object depends on: in a copy of the build folder, the
# same flags compile nothing, another ARCH compiles every source again (a native build must not
# be kept for an older cluster's nodes)
cp -a build "$work/b"
same=$(make -n BUILD="$work/b" BIN="$work/bin" "$work/bin/ddpm" | grep -c -- " -c -o ")
other=$(make -n BUILD="$work/b" BIN="$work/bin" ARCH=x86-64-v3 "$work/bin/ddpm" | grep -c -- " -c -o ")
nsrc=$(ls src/*/*.c | wc -l)
[ "$same" -eq 0 ] && [ "$other" -eq "$nsrc" ] \
  && pass "build flags tracked: the same flags compile nothing, ARCH=x86-64-v3 all $nsrc sources" \
  || fail "build flags: $same compiles with the same flags, $other of $nsrc with another ARCH"
finish "make run"
