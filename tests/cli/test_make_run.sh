#!/usr/bin/env bash
# test_make_run.sh: the README's first command, `make run`, cut short (2 training steps, T = 50
# so that the final DDPM grid takes seconds): it trains the default config on 2 MPI ranks into
# RUN, draws 64 DDPM samples from the EMA weights, and run again continues the finished run
# (nothing retrained) and draws the same samples.
set -u
source "$(dirname "$0")/checks.sh"
run="$work/main"
short=(TRAIN_ARGS="--set train.max_steps=2 --set diffusion.T=50")

make --no-print-directory run RUN="$run" "${short[@]}" >"$work/first.log" 2>&1
rc=$?
[ $rc -eq 0 ] && pass "make run exits 0" || fail "make run exited $rc: $(tail -3 "$work/first.log")"
grep -q "configs/unet-s.ini" "$work/first.log" && grep -q "^training: 748161 parameters, batch 128" "$work/first.log" \
  && pass "make run trains the default config (unet-s: 748161 parameters, batch 128)" \
  || fail "make run did not train configs/unet-s.ini: $(grep -m1 '^training' "$work/first.log")"
grep -q "^layout: 1 node, 2 ranks" "$work/first.log" && pass "make run trains on 2 MPI ranks (NP = 2)" \
  || fail "make run's layout: $(grep -m1 '^layout' "$work/first.log")"

check_files() { # what: the checkpoint is at step 2 and the grid holds 64 finite images in [-1, 1]
  $PY - "$run" <<'EOF'
import sys, os, h5py, numpy as np
run = sys.argv[1]
with h5py.File(f"{run}/checkpoints/latest.h5", "r") as c:
    assert int(c.attrs["step"]) == 2, f"checkpoint at step {c.attrs['step']}"
with h5py.File(f"{run}/samples/final-ddpm.h5", "r") as f:
    x = f["samples"][()]
    assert x.shape == (64, 1, 28, 28), x.shape
    assert np.isfinite(x).all() and x.min() >= -1 and x.max() <= 1, (x.min(), x.max())
    assert int(f.attrs["step"]) == 2 and f.attrs["sampler"].decode() == "ddpm"
assert os.path.getsize(f"{run}/samples/final-ddpm.png") > 1000
np.save(f"{run}/../grid.npy", x) if not os.path.exists(f"{run}/../grid.npy") else \
    np.testing.assert_array_equal(np.load(f"{run}/../grid.npy"), x)
EOF
}
check_files >"$work/check.log" 2>&1 && pass "checkpoint at step 2; 64 DDPM samples in RUN/samples/final-ddpm.h5 and its PNG" \
  || fail "make run's files: $(tail -2 "$work/check.log")"

make --no-print-directory run RUN="$run" "${short[@]}" >"$work/second.log" 2>&1
rc=$?
grep -q "^resuming .* at step 2" "$work/second.log" && grep -q "^done: step 2;" "$work/second.log" \
  && ! grep -q "^timing:" "$work/second.log" && [ $rc -eq 0 ] \
  && pass "make run again continues the finished run: no step retrained" \
  || fail "make run again (rc $rc): $(grep -m3 "^resuming\|^done\|^timing" "$work/second.log")"
check_files >"$work/check.log" 2>&1 && pass "make run again draws the same 64 samples (same seed and weights)" \
  || fail "make run again: $(tail -2 "$work/check.log")"
finish "make run"
