#!/usr/bin/env bash
# test_train_sample.sh: end-to-end checks of `ddpm train` and `ddpm sample` on real MNIST with
# configs/tiny.ini: the loss falls, outputs are complete and self-describing, resume is exact
# (bit for bit), DDIM with eta 0 from a given x_T is deterministic, and bad input fails clearly.
set -u
source "$(dirname "$0")/checks.sh"

# 1. a short real training run: the loss falls clearly
$DDPM train --config configs/tiny.ini --out "$work/nested/dirs/run" >"$work/train.log" 2>&1 \
  || { cat "$work/train.log"; fail "tiny training run exited non-zero"; exit 1; }
[ -d "$work/nested/dirs/run/checkpoints" ] && pass "missing parent directories of --out are created" \
  || fail "no run directory at $work/nested/dirs/run"
mv "$work/nested/dirs/run" "$work/run"
for f in config.ini metrics.h5 checkpoints/latest.h5 samples/generated.h5 samples/generated.png; do
  [ -s "$work/run/$f" ] && pass "run wrote $f" || fail "run did not write $f"
done
$PY - "$work/run" <<'PY' && pass "loss falls (first 30 steps vs last 30)" || fail "loss did not fall"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1] + "/metrics.h5", "r") as f:
    loss, step = f["loss"][:], f["step"][:]
    assert len(loss) == 300 and step[0] == 1 and step[-1] == 300, (len(loss), step[:3], step[-3:])
    first, last = loss[:30].mean(), loss[-30:].mean()
    print(f"     loss {first:.4f} -> {last:.4f} (ratio {first / last:.2f})")
    assert np.isfinite(loss).all() and first / last > 1.5
with h5py.File(sys.argv[1] + "/checkpoints/latest.h5", "r") as f:
    assert f.attrs["kind"] in (b"ddpm-checkpoint", "ddpm-checkpoint")
    assert f.attrs["step"] == 300 and f.attrs["T"] == 100
    assert f["params/conv_in.weight"].shape == (8, 1, 3, 3)
    assert set(f.keys()) == {"params", "ema", "adam"}
    idx = sorted((d.attrs["index"], n) for n, d in f["params"].items())
    assert [i for i, _ in idx] == list(range(len(idx)))
with h5py.File(sys.argv[1] + "/samples/generated.h5", "r") as f:
    s = f["samples"][:]
    assert s.shape == (16, 1, 28, 28) and s.min() >= -1 and s.max() <= 1 and s.std() > 0.1
PY

# 1a. a schedule that leaves part of the image in x_T is named at the start: tiny's linear betas
# 1e-4..0.02 over T = 100 keep sqrt(abar_T) = 0.603; the cosine schedule keeps about 0 (no note)
grep -q "note: this schedule leaves sqrt(abar_T) = 0.603 of the image in x_T" "$work/train.log" \
  && pass "training names the signal its schedule leaves in x_T (0.603)" \
  || fail "no x_T note for tiny's schedule: $(head -3 "$work/train.log")"
$DDPM train --config configs/tiny.ini --set diffusion.schedule=cosine --set train.max_steps=1 \
  --set train.ema_warmup=0 --set train.ema=0.001 \
  --set sample.n=2 --out "$work/cos" >"$work/cos.log" 2>&1 || fail "cosine run: $(tail -3 "$work/cos.log")"
grep -q "training:" "$work/cos.log" && ! grep -q "abar_T" "$work/cos.log" \
  && pass "no x_T note for the cosine schedule" || fail "cosine run: $(head -3 "$work/cos.log")"
# and an EMA decay too slow for the run's length: tiny's 0.99 with warm-up ends its 300 steps at
# 300/309; without warm-up one step leaves 99% of the average at the initial weights; a decay
# whose average forgets the start (0.001^1) gets no note
grep -q "note: with train.ema_warmup the decay reaches train.ema = 0.99 only after about 890 steps; this run ends after 300, at decay 0.97087" \
  "$work/train.log" && pass "training names a warmed-up EMA decay that stays far below its setting" \
  || fail "no EMA warm-up note: $(grep note "$work/train.log")"
$DDPM train --config configs/tiny.ini --set train.ema_warmup=0 --set train.max_steps=1 --set sample.n=2 \
  --out "$work/ema" >"$work/ema.log" 2>&1 || fail "ema run: $(tail -3 "$work/ema.log")"
grep -q "note: train.ema = 0.99 over 1 steps leaves 99% of the EMA weights at their random start" "$work/ema.log" \
  && ! grep -q "note: .*train\.ema" "$work/cos.log" && pass "training names an EMA that keeps the initial weights; none for one that forgets them" \
  || fail "EMA notes: $(grep note "$work/ema.log" "$work/cos.log")"

# 1b. any 28x28 grey IDX set trains: Debian's Fashion-MNIST (.gz files) through [data] dir
fashion=/usr/share/datasets/fashion-mnist
$DDPM train --config configs/tiny.ini --set data.dir=$fashion --set train.max_steps=150 \
  --out "$work/fashion" >"$work/fashion.log" 2>&1 || fail "Fashion-MNIST run exited non-zero: $(tail -3 "$work/fashion.log")"
$PY - "$work/fashion" <<'PY' && pass "Fashion-MNIST (.gz IDX) trains: loss falls" || fail "Fashion-MNIST loss did not fall"
import sys, h5py
with h5py.File(sys.argv[1] + "/metrics.h5", "r") as f:
    loss = f["loss"][:]
    first, last = loss[:20].mean(), loss[-20:].mean()
    print(f"     loss {first:.4f} -> {last:.4f} (ratio {first / last:.2f})")
    assert len(loss) == 150 and first / last > 1.5
PY

# 2. exact resume: 40 steps straight vs 20 + resume to 40, parameters bit for bit
$DDPM train --config configs/tiny.ini --set train.max_steps=40 --out "$work/a" >/dev/null 2>&1
$DDPM train --config configs/tiny.ini --set train.max_steps=20 --out "$work/b" >/dev/null 2>&1
$DDPM train --config configs/tiny.ini --set train.max_steps=40 --out "$work/b" --resume \
  >"$work/resume.log" 2>&1
grep -q "resuming .* at step 20" "$work/resume.log" && pass "resume starts at step 20" \
  || fail "resume did not start at step 20: $(cat "$work/resume.log")"
for g in /params /ema /adam/m /adam/v; do
  if same_h5 "$work/a/checkpoints/latest.h5" "$work/b/checkpoints/latest.h5" $g $g; then
    pass "resume: $g identical to the uninterrupted run"
  else
    fail "resume: $g differs from the uninterrupted run"
  fi
done
$PY - "$work/b/metrics.h5" <<'PY' && pass "resumed metrics.h5 has steps 1..40 once each" || fail "metrics rows after resume"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert list(f["step"][:]) == list(range(1, 41)), list(f["step"][:])
PY

# 2b. SIGTERM: the step in flight finishes, latest.h5 is written, exit status 75; resume goes on
# (with a [sample] n whose grid cannot be a PNG: said at the start, not after an epoch)
$DDPM train --config configs/tiny.ini --set train.max_steps=100000 --set sample.n=200000 --out "$work/sig" \
  >"$work/sig.log" 2>&1 &
pid=$!
for _ in $(seq 1500); do grep -q "step 50/" "$work/sig.log" 2>/dev/null && break; sleep 0.2; done
kill -TERM $pid; wait $pid; rc=$?
[ $rc -eq 75 ] && grep -q "stopped by Terminated after step" "$work/sig.log" \
  && pass "SIGTERM: exit status 75 and a checkpoint ($(grep -o 'after step [0-9]*' "$work/sig.log"))" \
  || fail "SIGTERM: rc=$rc, log: $(tail -2 "$work/sig.log")"
$PY - "$work/sig" <<'PY' && pass "SIGTERM: checkpoint step matches metrics.h5 rows" || fail "SIGTERM checkpoint/metrics mismatch"
import sys, h5py
with h5py.File(sys.argv[1] + "/checkpoints/latest.h5", "r") as f:
    step = int(f.attrs["step"])
with h5py.File(sys.argv[1] + "/metrics.h5", "r") as f:
    assert step >= 50 and len(f["step"]) == step and f["step"][-1] == step, (step, len(f["step"]))
PY
[ -z "$(ls "$work/sig/checkpoints" | grep tmp)" ] && pass "SIGTERM: no temporary files left" || fail "temporary files left"
grep -q "warning: .*generated.png: a grid of 200000 images .* too large for a PNG.*\[sample\] n = 200000: each epoch's samples go to the .h5 only" "$work/sig.log" \
  && [ "$(grep -n "warning: " "$work/sig.log" | cut -d: -f1)" -lt "$(grep -n "step 50/" "$work/sig.log" | cut -d: -f1)" ] \
  && pass "a [sample] n too large for a PNG grid is named at the start of training" \
  || fail "no PNG grid warning at the start: $(head -3 "$work/sig.log")"

# 2b'. a stop signal during the final samples (3 chunks of 8): exit 75 without them (no `done:`), and the resumed
# run draws them, equal to the uninterrupted run's
fin64=(--config configs/tiny.ini --set train.max_steps=5 --set train.batch=8 --set sample.n=24 --set sample.sampler=ddpm)
run_ok $DDPM train "${fin64[@]}" --out "$work/fin64"
$DDPM train "${fin64[@]}" --out "$work/fin64s" >"$work/fin64s.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "^epoch 1 done" "$work/fin64s.log" 2>/dev/null && break; sleep 0.1; done
kill -USR1 $pid; wait $pid; rc=$?
[ $rc -eq 75 ] && ! grep -q "^done:" "$work/fin64s.log" && [ ! -e "$work/fin64s/samples/generated.h5" ] \
  && run_ok $DDPM train "${fin64[@]}" --out "$work/fin64s" --resume \
  && same_h5 "$work/fin64/samples/generated.h5" "$work/fin64s/samples/generated.h5" /samples /samples \
  && pass "a stop during the final samples: exit 75 without them; the resumed run draws the uninterrupted run's" \
  || fail "stop during the final samples: rc=$rc $(tail -2 "$work/fin64s.log")"

# 2c. numerical faults, injected as a corrupt input (the hidden DDPM_TEST_NAN=FIRST:LAST hook
# makes one pixel NaN in those steps; an absurd learning rate no longer overflows since SiLU's
# exp was capped): stop naming the step and where the NaN first appeared, keep the last good
# checkpoint; or, with nan_policy = skip, skip those updates, count them, and write only finite
# tensors
err=$(DDPM_TEST_NAN=23:60 $DDPM train --config configs/tiny.ini --set train.max_steps=60 \
  --set train.checkpoint_every=1 --out "$work/nan" 2>&1 >/dev/null); rc=$?
if [ $rc -ne 0 ] && grep -q "step 23: non-finite value in the loss (first in the output of conv_in" <<<"$err"; then
  pass "NaN stops the run: $err"
else
  fail "NaN: rc=$rc, $err"
fi
bad=$(grep -o "step [0-9]*:" <<<"$err" | grep -o "[0-9]*")
$PY - "$work/nan" "$bad" <<'PY' && pass "NaN: the last good checkpoint is finite and one step older" || fail "NaN checkpoint"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1] + "/checkpoints/latest.h5", "r") as f:
    assert all(np.isfinite(d[()]).all() for g in ("params", "ema") for d in f[g].values())
    assert f.attrs["step"] == int(sys.argv[2]) - 1, (f.attrs["step"], sys.argv[2])
PY
DDPM_TEST_NAN=31:35 $DDPM train --config configs/tiny.ini --set train.max_steps=60 \
  --set train.nan_policy=skip --out "$work/skip" >/dev/null 2>"$work/skip.err"; rc=$?
$PY - "$work/skip" <<'PY' && [ $rc -eq 0 ] && pass "nan_policy = skip: run completes, skips counted, tensors finite" \
  || fail "nan_policy = skip (rc=$rc): $(tail -2 "$work/skip.err")"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1] + "/checkpoints/latest.h5", "r") as f:
    skips = int(f.attrs["nan_skips"])
    assert f.attrs["step"] == 60 and skips == 5, (f.attrs["step"], skips)  # steps 31-35
    assert all(np.isfinite(d[()]).all() for g in ("params", "ema", "adam/m", "adam/v") for d in f[g].values())
with h5py.File(sys.argv[1] + "/metrics.h5", "r") as f:
    assert len(f["loss"]) == 60 and (~np.isfinite(f["loss"][:])).sum() == skips
PY
# Adam's bias correction counts updates, not steps: after two skipped steps the first update is
# a first Adam step, which moves every parameter by the learning rate (1e-3), not 0.64 of it
for n in 2 3; do
  DDPM_TEST_NAN=1:2 $DDPM train --config configs/tiny.ini --set train.max_steps=$n --set train.nan_policy=skip \
    --set sample.n=2 --set sample.steps=2 --out "$work/skip$n" >/dev/null 2>&1
done
$PY - "$work/skip2" "$work/skip3" <<'PY' && pass "nan_policy = skip: the first update after skipped steps is a first Adam step (|change| = lr)" \
  || fail "Adam after skipped steps"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1] + "/checkpoints/latest.h5", "r") as a, h5py.File(sys.argv[2] + "/checkpoints/latest.h5", "r") as b:
    assert int(a.attrs["nan_skips"]) == 2 and int(b.attrs["nan_skips"]) == 2
    d = np.concatenate([np.abs(b["params"][k][()] - a["params"][k][()]).ravel() for k in a["params"]])
    moved = d[d > 0]
    med = float(np.median(moved))
    print(f"     {moved.size} of {d.size} parameters moved, median |change| {med:.3e}")
    assert moved.size > 0.9 * d.size and abs(med - 1e-3) < 1e-5, med
PY

# 3. sampling: DDIM eta 0 from a given x_T is deterministic; seeds reproduce
$PY - "$work/init.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f["x"] = np.random.default_rng(5).standard_normal((4, 1, 28, 28)).astype(np.float32)
PY
ck="$work/run/checkpoints/latest.h5"
# the second run with another seed: with eta 0 and x_T given, the seed must not matter
for i in 1 2; do
  run_ok $DDPM sample --checkpoint "$ck" --sampler ddim --steps 10 --eta 0 --init "$work/init.h5" \
    --seed $((i * 11)) --out "$work/det$i.h5"
done
same_h5 "$work/det1.h5" "$work/det2.h5" /samples /samples && pass "DDIM eta 0 from --init is deterministic (seeds 11 and 22 alike)" \
  || fail "DDIM eta 0 from --init differs between runs"
run_ok $DDPM sample --checkpoint "$ck" --sampler ddim --steps 10 --eta 0 --spacing quadratic \
  --init "$work/init.h5" --out "$work/quad.h5"
h5diff -q "$work/det1.h5" "$work/quad.h5" /samples /samples >/dev/null; rc=$?
$PY - "$work/quad.h5" "$work/det1.h5" <<'PY' && [ $rc -eq 1 ] \
  && pass "--spacing quadratic: other timesteps, other samples, recorded as the spacing attribute" \
  || fail "--spacing quadratic: h5diff rc=$rc (1 = differ) or attributes wrong"
import sys, h5py
assert h5py.File(sys.argv[1], "r").attrs["spacing"] in ("quadratic", b"quadratic")
assert h5py.File(sys.argv[2], "r").attrs["spacing"] in ("uniform", b"uniform")
PY
# --eps-scale: the noise estimate divided by S changes the samples and is recorded (1 when unset)
run_ok $DDPM sample --checkpoint "$ck" --sampler ddim --steps 10 --eta 0 --eps-scale 1.05 \
  --init "$work/init.h5" --out "$work/es.h5"
h5diff -q "$work/det1.h5" "$work/es.h5" /samples /samples >/dev/null; rc=$?
$PY - "$work/es.h5" "$work/det1.h5" <<'PY' && [ $rc -eq 1 ] \
  && pass "--eps-scale: other samples, recorded as the eps_scale attribute" \
  || fail "--eps-scale: h5diff rc=$rc (1 = differ) or attributes wrong"
import sys, h5py
assert abs(h5py.File(sys.argv[1], "r").attrs["eps_scale"] - 1.05) < 1e-12
assert h5py.File(sys.argv[2], "r").attrs["eps_scale"] == 1.0
PY
expect_error "--eps-scale out of range" "--eps-scale 3: expected a number 0.5..2" \
  $DDPM sample --checkpoint "$ck" --eps-scale 3 --out "$work/never.h5"
expect_error "--progress negative" "--progress -5: expected a number 0..86400" \
  $DDPM sample --checkpoint "$ck" --progress -5 --out "$work/never.h5"
# DPM-Solver++(2M): with 3 steps all are first order (the first has no earlier estimate, the
# second goes into t = 0, the last lands on x0), i.e. DDIM eta 0; with 10 the second-order
# steps make other samples
for k in 3 10; do
  run_ok $DDPM sample --checkpoint "$ck" --sampler dpmpp2m --steps $k --init "$work/init.h5" --out "$work/dpm$k.h5"
  run_ok $DDPM sample --checkpoint "$ck" --sampler ddim --steps $k --eta 0 --init "$work/init.h5" --out "$work/ddim$k.h5"
done
$PY - "$work" <<'PY' && pass "dpmpp2m: 3 steps = DDIM eta 0, 10 steps differ; sampler, steps, eta recorded" \
  || fail "dpmpp2m against DDIM eta 0"
import sys, h5py, numpy as np
w = sys.argv[1]
def load(name):
    with h5py.File(f"{w}/{name}.h5", "r") as f:
        return f["samples"][()], dict(f.attrs)
a, at = load("dpm3"); b, _ = load("ddim3")
assert np.abs(a - b).max() < 1e-4, np.abs(a - b).max()
c, ct = load("dpm10"); d, _ = load("ddim10")
assert np.abs(c - d).max() > 1e-2, np.abs(c - d).max()
name = lambda v: v.decode() if isinstance(v, bytes) else v
assert name(ct["sampler"]) == "dpmpp2m" and ct["steps"] == 10 and ct["eta"] == 0.0, ct
PY
expect_error "--eta with dpmpp2m" "dpmpp2m is deterministic" \
  $DDPM sample --checkpoint "$ck" --sampler dpmpp2m --eta 1 --out "$work/x.h5"
expect_error "unknown --sampler" "expected ddpm, ddim or dpmpp2m" \
  $DDPM sample --checkpoint "$ck" --sampler euler --out "$work/x.h5"
expect_error "--spacing with DDPM" "apply to --sampler ddim" \
  $DDPM sample --checkpoint "$ck" --sampler ddpm --spacing quadratic --out "$work/x.h5"
expect_error "bad --spacing" "expected uniform or quadratic" \
  $DDPM sample --checkpoint "$ck" --sampler ddim --spacing cubic --out "$work/x.h5"
run_ok $DDPM sample --checkpoint "$ck" --n 4 --seed 3 --out "$work/s1.h5" --png "$work/s1.png" --trajectory
run_ok $DDPM sample --checkpoint "$ck" --n 4 --seed 3 --out "$work/s2.h5"
run_ok $DDPM sample --checkpoint "$ck" --n 4 --seed 4 --out "$work/s3.h5"
same_h5 "$work/s1.h5" "$work/s2.h5" /samples /samples && pass "same seed, same samples" || fail "same seed gave other samples"
h5diff -q "$work/s1.h5" "$work/s3.h5" /samples /samples >/dev/null; rc=$?
[ $rc -eq 1 ] && pass "another seed, other samples" || fail "another seed: h5diff rc=$rc (1 = differ)"
[ -s "$work/s1_trajectory.png" ] && [ -s "$work/s1.png" ] && pass "PNG grid and trajectory strip written" \
  || fail "PNG grid or trajectory strip missing"

# 3b. a stopped sampling run resumes: SIGUSR1 once its progress file exists -> exit 75 with the
# finished chunks in OUT.part; a rerun with other options is refused and leaves the file alone;
# the same command finishes it with the images of an uninterrupted run (and its trajectory);
# kill -9 in the middle of a run loses at most the chunk in flight
sopt=(--n 300 --batch 4 --seed 5 --sampler ddpm --trajectory)
run_ok $DDPM sample --checkpoint "$ck" "${sopt[@]}" --out "$work/whole.h5"
# (stopped once its first round is done: a progress line after every round; at any speed some of
# the 75 chunks are done and most are not)
$DDPM sample --checkpoint "$ck" "${sopt[@]}" --progress 0 --out "$work/cut.h5" >"$work/cut.log" 2>&1 & pid=$!
for _ in $(seq 600); do grep -q "^progress:" "$work/cut.log" 2>/dev/null && break; sleep 0.05; done
kill -USR1 $pid; wait $pid; rc=$?
done_n=$(grep -o "stopped by a signal with [0-9]* of 300" "$work/cut.log" | grep -o "with [0-9]*" | cut -c6-)
[ $rc -eq 75 ] && [ -n "$done_n" ] && [ "$done_n" -gt 0 ] && [ "$done_n" -lt 300 ] && [ ! -e "$work/cut.h5" ] && [ -s "$work/cut.h5.part" ] \
  && pass "SIGUSR1 stops sampling with exit 75 and $done_n of 300 images kept in OUT.part" \
  || fail "stopped sampling: rc $rc, $(tail -2 "$work/cut.log")"
cp "$work/cut.h5.part" "$work/part.keep"
expect_error "a progress file of other options" "holds the progress of another sampling run" \
  $DDPM sample --checkpoint "$ck" --n 300 --batch 4 --seed 6 --sampler ddpm --trajectory --out "$work/cut.h5"
cmp -s "$work/cut.h5.part" "$work/part.keep" && pass "the other run's progress file is left as it was" \
  || fail "a refused run changed the progress file"
$DDPM sample --checkpoint "$ck" "${sopt[@]}" --out "$work/cut.h5" --progress 0 >"$work/cut2.log" 2>&1 \
  && grep -q "resuming $work/cut.h5.part: $((done_n / 4)) of 75 chunks of 4 images already done" "$work/cut2.log" \
  && [ ! -e "$work/cut.h5.part" ] && same_h5 "$work/whole.h5" "$work/cut.h5" \
  && grep -q "^sampled $((300 - done_n)) images with ddpm (100 network evaluations each) in .*; with $done_n from earlier runs: 300 images in $work/cut.h5$" "$work/cut2.log" \
  && pass "the rerun resumes at chunk $((done_n / 4)) of 75 and ends with the uninterrupted run's file (images, trajectory, attributes)" \
  || fail "resumed sampling: $(tail -2 "$work/cut2.log"); h5diff $(h5diff -q "$work/whole.h5" "$work/cut.h5" 2>&1 | head -2)"
# the finished file holds the progress file's images where they were kept (75 chunks of 4 are
# copied 32 chunks at a time: three pieces)
$PY - "$work/part.keep" "$work/cut.h5" <<'PY' && pass "the images kept in OUT.part are the finished file's, row for row" || fail "OUT.part's images moved or changed in the finished file"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as p, h5py.File(sys.argv[2], "r") as f:
    done = np.repeat(p["done_chunks"][:] == 1, 4)
    assert done.any() and not done.all()
    assert np.array_equal(p["samples"][()][done], f["samples"][()][done])
PY
# --progress 0 (not part of the options a progress file must match): a line after every round
# but the last, counting the images already in OUT.part
lines=$(grep -c "^progress: [0-9]* of 300 images, [0-9]* image-steps/s, about [0-9]*h[0-9][0-9]m[0-9][0-9]s left$" "$work/cut2.log")
first=$(grep -m1 -o "^progress: [0-9]*" "$work/cut2.log" | cut -d' ' -f2)
last=$(grep "^progress: " "$work/cut2.log" | tail -1 | cut -d' ' -f2)
[ "$lines" -eq $((75 - done_n / 4 - 1)) ] && [ "$first" = $((done_n + 4)) ] && [ "$last" = 296 ] \
  && pass "--progress 0: $lines progress lines, from $first to 296 of 300 images" \
  || fail "--progress 0: $lines lines (expected $((75 - done_n / 4 - 1))), first '$first', last '$last'"
$DDPM sample --checkpoint "$ck" "${sopt[@]}" --out "$work/kill.h5" >/dev/null 2>&1 & pid=$!
for _ in $(seq 200); do [ -e "$work/kill.h5.part" ] && break; sleep 0.05; done
sleep 0.5; kill -9 $pid; wait $pid 2>/dev/null
# (the rerun must start from the chunks the progress file holds, not over: same seed, same images)
kdone=$($PY -c "import h5py, sys; print(int(h5py.File(sys.argv[1], 'r')['done_chunks'][:].sum()))" "$work/kill.h5.part" 2>/dev/null)
[ -e "$work/kill.h5.part" ] && [ ! -e "$work/kill.h5" ] && [ -n "$kdone" ] \
  && $DDPM sample --checkpoint "$ck" "${sopt[@]}" --out "$work/kill.h5" >"$work/kill2.log" 2>&1 \
  && grep -q "resuming $work/kill.h5.part: $kdone of 75 chunks of 4 images already done" "$work/kill2.log" \
  && same_h5 "$work/whole.h5" "$work/kill.h5" && pass "after kill -9 the rerun resumes at chunk $kdone of 75 and finishes with the uninterrupted run's images" \
  || fail "resume after kill -9: kept $kdone chunks; $(grep resuming "$work/kill2.log")"
# a chunk stopped part-way: one chunk of 128 images (DDPM, 100 steps) stopped by SIGUSR1 at its
# 7th step (the hidden hook DDPM_TEST_STOP_CHECK=7 raises it there, no race with the round's
# start) keeps x_t and the step count in OUT.part, and the rerun continues from that step to
# the uninterrupted run's images
pw=(--n 128 --batch 128 --seed 9 --sampler ddpm)
run_ok $DDPM sample --checkpoint "$ck" "${pw[@]}" --out "$work/pw-whole.h5"
DDPM_TEST_STOP_CHECK=7 $DDPM sample --checkpoint "$ck" "${pw[@]}" --out "$work/pw.h5" >"$work/pw.log" 2>&1; rc=$?
k=$($PY -c "
import sys, h5py
with h5py.File(sys.argv[1], 'r') as f:
    assert f['done_chunks'][0] == 0
    print(int(f['steps_done'][0]))
" "$work/pw.h5.part" 2>/dev/null)
[ $rc -eq 75 ] && grep -q "stopped by a signal with 0 of 128 images done and 1 chunk part-way" "$work/pw.log" \
  && [ "$k" = 7 ] && $DDPM sample --checkpoint "$ck" "${pw[@]}" --out "$work/pw.h5" >"$work/pw2.log" 2>&1 \
  && grep -q "0 of 1 chunks of 128 images already done, 1 part-way (step 7 of 100)" "$work/pw2.log" \
  && same_h5 "$work/pw-whole.h5" "$work/pw.h5" \
  && pass "a chunk stopped part-way (at step $k of 100) is continued from there to the uninterrupted run's images" \
  || fail "part-way stop: rc $rc, step '$k', $(tail -1 "$work/pw.log"); $(tail -2 "$work/pw2.log" 2>/dev/null)"
# the chunk holding --trajectory images (frames kept so far, two of them past x_T at step 30 of
# 100) and a dpmpp2m chunk (its previous x0 estimate kept in /x0_prev) stop part-way too, and
# resume to the uninterrupted run's file, trajectory and all
for way in "30 --sampler ddpm --trajectory" "7 --sampler dpmpp2m --steps 20"; do
  read -r at wopt <<<"$way"
  pw=(--n 128 --batch 128 --seed 9 $wopt)
  rm -f "$work/pwx.h5" "$work/pwx.h5.part" "$work/pwx-whole.h5"
  run_ok $DDPM sample --checkpoint "$ck" "${pw[@]}" --out "$work/pwx-whole.h5"
  DDPM_TEST_STOP_CHECK=$at $DDPM sample --checkpoint "$ck" "${pw[@]}" --out "$work/pwx.h5" >"$work/pwx.log" 2>&1; rc=$?
  k=$($PY -c "
import sys, h5py
with h5py.File(sys.argv[1], 'r') as f:
    assert f['done_chunks'][0] == 0
    assert ('x0_prev' in f) == ('dpmpp2m' in sys.argv[2])
    print(int(f['steps_done'][0]))
" "$work/pwx.h5.part" "$wopt" 2>/dev/null)
  [ $rc -eq 75 ] && [ "$k" = "$at" ] && $DDPM sample --checkpoint "$ck" "${pw[@]}" --out "$work/pwx.h5" >"$work/pwx2.log" 2>&1 \
    && grep -q "1 part-way (step $at of " "$work/pwx2.log" && same_h5 "$work/pwx-whole.h5" "$work/pwx.h5" \
    && pass "$wopt: a chunk stopped part-way (step $k) is continued to the uninterrupted run's file" \
    || fail "part-way stop with $wopt: rc $rc, step '$k', $(tail -1 "$work/pwx.log"); $(tail -2 "$work/pwx2.log" 2>/dev/null)"
done
# what a machine crash could take: each round's images and flags are synced to disk (fsync) as
# the run goes; the samples file is synced before it takes its name and the name (its directory)
# before the progress file is removed
OMP_NUM_THREADS=1 strace -f -y --seccomp-bpf -o "$work/sync.trace" -e trace=fsync,rename,renameat,renameat2,unlink,unlinkat \
  $DDPM sample --checkpoint "$ck" --n 8 --batch 4 --seed 5 --sampler ddim --steps 5 --out "$work/sync.h5" >/dev/null 2>&1
out=$($PY - "$work/sync.trace" "$work" <<'PY' 2>&1
import re, sys
work = sys.argv[2]
ev = []
for line in open(sys.argv[1]):
    m = re.search(r"fsync\(\d+<([^>]*)>\)\s+= 0", line)  # strace pads short calls with spaces
    if m:
        ev.append(("fsync", m.group(1)))
    elif re.search(r"rename(at2?)?\(.*sync\.h5\.tmp.*sync\.h5\".*= 0", line):
        ev.append(("rename", ""))
    elif re.search(r"unlink(at)?\(.*sync\.h5\.part\".*= 0", line):
        ev.append(("unlink", ""))
def first(e):
    return ev.index(e)
part = [i for i, e in enumerate(ev) if e == ("fsync", work + "/sync.h5.part")]
assert len(part) >= 4, f"progress file synced {len(part)} times, expected two per round of two: {ev}"
tmp, ren, unl = first(("fsync", work + "/sync.h5.tmp")), first(("rename", "")), first(("unlink", ""))
dir_sync = first(("fsync", work))
assert part[-1] < tmp < ren < dir_sync < unl, ev
print(len(part))
PY
) && pass "sampling syncs the progress file every round ($out times) and the samples file and its name before the progress file goes" \
  || fail "sync order: $out"

# 4. bad input: one clear line, non-zero exit, no good file overwritten
printf '[train]\nbatsh = 3\n' >"$work/typo.ini"
expect_error "config typo" "did you mean [train] batch" $DDPM train --config "$work/typo.ini" --out "$work/x"
printf '[model]\nbase = -3\n' >"$work/range.ini"
expect_error "out-of-range value" "range.ini:2: [model] base = -3 is out of range 1..1024" $DDPM train --config "$work/range.ini" --out "$work/x"
expect_error "--set without =" "expected section.key=value" $DDPM train --config configs/tiny.ini --set train.lr
expect_error "GroupNorm groups that do not divide base (base 12, groups 8: every level's 24 channels would pass)" \
  "model.groups must divide model.base and base * mult of every level" $DDPM model --config configs/tiny.ini --set model.base=12 --set model.groups=8 --set model.mult=2,2
expect_error "a linear schedule that leaves no signal to divide by" "T = 2000 with betas 0.0001..0.5 leaves abar_T = 1e-267" \
  $DDPM train --config configs/tiny.ini --set diffusion.T=2000 --set diffusion.beta_end=0.5 --out "$work/x"
# an indented config (every line, sections too) reads as the plain one: inih's multi-line
# values would make "  batch = 64" part of the key above it
sed 's/^/  /' configs/tiny.ini >"$work/indented.ini"
run_ok $DDPM train --config configs/tiny.ini --set train.max_steps=1 --out "$work/plain-ini" \
  && run_ok $DDPM train --config "$work/indented.ini" --set train.max_steps=1 --out "$work/indented-ini" \
  && cmp -s <(grep -v '^;' "$work/plain-ini/config.ini") <(grep -v '^;' "$work/indented-ini/config.ini") \
  && pass "an indented config file gives the same effective config as the plain one" \
  || fail "indented config: $(diff "$work/plain-ini/config.ini" "$work/indented-ini/config.ini" | head -4)"
printf '[train]\nepochs = 5\nbatch = 64\nepochs = 6\n' >"$work/twice.ini"
expect_error "a key set twice in one file" "twice.ini:4: [train] epochs is set twice (first on line 2)" \
  $DDPM model --config "$work/twice.ini"
expect_error "a hex float in a config (strtod would read it)" "[train] lr = '0x1p-10' is not a number" \
  $DDPM model --config configs/tiny.ini --set train.lr=0x1p-10
# a repeated --set: the last applies (wrappers layer their defaults so), with a note naming it
out=$($DDPM model --config configs/tiny.ini --set model.base=4 --set model.groups=1 --set model.base=16 2>&1)
[ $? -eq 0 ] && grep -qF "note: --set model.base is given more than once: the last, 'model.base=16', applies" <<<"$out" \
  && grep -q "conv_in *\[16,28,28\]" <<<"$out" \
  && pass "a repeated --set: noted, and the last value applies (base 16)" \
  || fail "repeated --set: $(head -3 <<<"$out")"
expect_error "an empty field in a list" "[model] mult = '1,,2': '' is not an integer" \
  $DDPM model --config configs/tiny.ini --set model.mult=1,,2
expect_error "a trailing comma in a list" "[model] mult = '1,2,': '' is not an integer" \
  $DDPM model --config configs/tiny.ini --set model.mult=1,2,
expect_error "DDIM steps beyond T" "[sample] steps (20) exceeds [diffusion] T (10)" \
  $DDPM model --config configs/tiny.ini --set diffusion.T=10 --set sample.sampler=ddim
run_ok $DDPM model --config configs/tiny.ini --set diffusion.T=10 --set sample.sampler=ddpm \
  && pass "[sample] steps not held against T when the sampler is DDPM (it takes all T steps)"
run_ok $DDPM train --config configs/tiny.ini --set diffusion.T=10 --set sample.sampler=ddpm --set train.max_steps=1 --out "$work/t10"
expect_error "DDIM from that checkpoint: the checkpoint's steps named, not a --steps never given" \
  "sample: [sample] steps 20 exceeds the checkpoint's T = 10 (the checkpoint's; give --steps)" \
  $DDPM sample --checkpoint "$work/t10/checkpoints/latest.h5" --sampler ddim --n 2 --out "$work/t10.h5"
expect_error "missing data" "$work/nodata" $DDPM train --config configs/tiny.ini --set data.dir="$work/nodata" --out "$work/x"
cp "$ck" "$work/keep.h5"
expect_error "checkpoint that does not fit the config" "[model] base = 8 in the checkpoint, 16 now" \
  $DDPM train --config configs/tiny.ini --set model.base=16 --set train.max_steps=1 --out "$work/run" --resume
cmp -s "$ck" "$work/keep.h5" && pass "the good checkpoint was not overwritten" || fail "checkpoint changed"
cp "$work/run/metrics.h5" "$work/metrics.keep"
expect_error "a new run into a directory holding one, without --resume" \
  "$work/run: the run directory holds a run already (checkpoints/latest.h5): continue it with --resume" \
  $DDPM train --config configs/tiny.ini --set train.max_steps=1 --out "$work/run"
cmp -s "$ck" "$work/keep.h5" && cmp -s "$work/run/metrics.h5" "$work/metrics.keep" \
  && pass "without --resume the run's checkpoint and metrics.h5 are left as they were" || fail "a refused new run changed the run's files"
# a lost metrics.h5: the resumed run makes it again with the lost steps as NaN rows, and every
# later resume keeps going (row i is step i + 1)
lost=(--config configs/tiny.ini --set sample.n=2 --set sample.steps=2 --out "$work/lost" --resume)
run_ok $DDPM train "${lost[@]}" --set train.max_steps=3 && rm "$work/lost/metrics.h5" \
  && $DDPM train "${lost[@]}" --set train.max_steps=5 >"$work/lost.log" 2>&1 \
  && $DDPM train "${lost[@]}" --set train.max_steps=7 >>"$work/lost.log" 2>&1 \
  && grep -q "metrics.h5 was missing: made again, steps 1..3 (logged before it was lost) as NaN rows" "$work/lost.log" \
  && $PY -c "
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], 'r') as f:
    assert list(f['step'][:]) == [1, 2, 3, 4, 5, 6, 7], f['step'][:]
    loss = f['loss'][:]
    assert np.isnan(loss[:3]).all() and np.isfinite(loss[3:]).all(), loss
" "$work/lost/metrics.h5" && pass "a lost metrics.h5 is made again on resume (steps 1-3 NaN) and a second resume continues it" \
  || fail "resume without metrics.h5: $(tail -3 "$work/lost.log")"
# rows lost in a crash (the checkpoint reached the disk, the last rows did not): the resumed run
# adds them as NaN rows, with a note, rather than refusing to go on
crash=(--config configs/tiny.ini --set sample.n=2 --set sample.steps=2 --out "$work/crash" --resume)
run_ok $DDPM train "${crash[@]}" --set train.max_steps=6 \
  && $PY -c "import h5py, sys; f = h5py.File(sys.argv[1], 'a'); [f[k].resize((4,)) for k in ('step', 'loss', 'lr', 'grad_norm', 'images_per_s')]; f['epoch/epoch'].resize((0,)); f['epoch/mean_loss'].resize((0,)); f['epoch/fid'].resize((0,))" "$work/crash/metrics.h5" \
  && $DDPM train "${crash[@]}" --set train.max_steps=8 >"$work/crash.log" 2>&1 \
  && grep -q "metrics.h5 held 4 of the 6 steps (0 of 0 epochs) the resumed checkpoint logged" "$work/crash.log" \
  && $PY -c "
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], 'r') as f:
    assert list(f['step'][:]) == list(range(1, 9)), f['step'][:]
    loss = f['loss'][:]
    assert np.isnan(loss[4:6]).all() and np.isfinite(loss[:4]).all() and np.isfinite(loss[6:]).all(), loss
    assert list(f['epoch/epoch'][:]) == [1], f['epoch/epoch'][:]
" "$work/crash/metrics.h5" && pass "metrics rows lost in a crash: added as NaN rows (steps 5-6) with a note, and the run goes on" \
  || fail "resume with rows lost: $(tail -3 "$work/crash.log")"
# a run that ended mid-epoch (max_steps) resumed as it was: its partial epoch row stays
fin=(--config configs/tiny.ini --set sample.n=2 --set sample.steps=2 --set train.max_steps=3 --out "$work/fin" --resume)
run_ok $DDPM train "${fin[@]}" && run_ok $DDPM train "${fin[@]}" \
  && $PY -c "
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], 'r') as f:
    assert list(f['epoch/epoch'][:]) == [1] and np.isfinite(f['epoch/mean_loss'][0]), f['epoch/epoch'][:]
    assert len(f['step']) == 3
" "$work/fin/metrics.h5" && pass "a finished max_steps run resumed again keeps its partial epoch's row" \
  || fail "the partial epoch row of a finished run was dropped on resume"
# checkpoint_every on the run's last step (an epoch's end): latest.h5 written once, after
# metrics.h5 is on disk (fsync before the rename)
OMP_NUM_THREADS=1 strace -f -y --seccomp-bpf -o "$work/ck.trace" -e trace=fsync,rename,renameat,renameat2 \
  $DDPM train --config configs/tiny.ini --set train.max_steps=4 --set train.checkpoint_every=2 --set sample.n=2 \
  --set sample.steps=2 --out "$work/ckev" >/dev/null 2>&1
out=$($PY - "$work/ck.trace" <<'PY' 2>&1
import re, sys
ev = []
for line in open(sys.argv[1]):
    m = re.search(r"fsync\(\d+<([^>]*)>\)\s+= 0", line)
    if m and m.group(1).endswith("/metrics.h5"):
        ev.append("metrics")
    elif re.search(r"rename(at2?)?\(.*latest\.h5\.tmp.*latest\.h5\".*= 0", line):
        ev.append("latest")
assert ev == ["metrics", "latest", "metrics", "latest"], ev
print(ev)
PY
) && pass "checkpoint_every: latest.h5 at steps 2 and 4 (not twice at the last step), each after metrics.h5's fsync" \
  || fail "checkpoint order: $out"
mkdir -p "$work/monly" && cp "$work/metrics.keep" "$work/monly/metrics.h5"
expect_error "a run directory with metrics.h5 only, without --resume" "holds a run already (metrics.h5)" \
  $DDPM train --config configs/tiny.ini --set train.max_steps=1 --out "$work/monly"
expect_error "resume with another config" "[model] groups = 2 in the checkpoint, 1 now" \
  $DDPM train --config configs/tiny.ini --set model.groups=1 --set train.max_steps=400 --out "$work/run" --resume
run_ok $DDPM export --checkpoint "$ck" --out "$work/weights.h5"
run_ok $DDPM sample --checkpoint "$work/weights.h5" --n 4 --seed 3 --out "$work/s4.h5"
same_h5 "$work/s1.h5" "$work/s4.h5" /samples /samples && pass "export: the weights-only file samples the same images" \
  || fail "export: samples differ"
mkdir -p "$work/w/checkpoints" && cp "$work/weights.h5" "$work/w/checkpoints/latest.h5"
expect_error "resume from weights only" "holds weights only" \
  $DDPM train --config configs/tiny.ini --out "$work/w" --resume
# srun's tasks carry SLURM_STEP_NUM_TASKS; a batch script's own shell only the allocation's SLURM_NTASKS
expect_error "Slurm tasks without MPI refused" "not connected to the others through MPI" \
  env SLURM_NTASKS=2 SLURM_STEP_NUM_TASKS=2 $DDPM train --config configs/tiny.ini --out "$work/x"
expect_error "parallel launch of a one-process command refused" "only train, sample and eval run over several MPI ranks" \
  env SLURM_NTASKS=2 SLURM_STEP_NUM_TASKS=2 $DDPM export --checkpoint "$ck" --out "$work/x.h5"
env SLURM_NTASKS=2 SLURM_STEP_NUM_TASKS=2 $DDPM train --help | grep -q "^usage: ddpm train" \
  && pass "--help under an unconnected multi-task launch still prints the help" || fail "train --help refused under srun -n 2"
for c in model inspect export predict noise-strip classifier; do
  env SLURM_NTASKS=2 SLURM_STEP_NUM_TASKS=2 $DDPM $c --help 2>&1 | grep -q "^usage: ddpm $c" || { fail "ddpm $c --help refused under srun -n 2"; c=; break; }
done
[ -n "$c" ] && pass "--help of every one-process command prints under a multi-task launch too"
expect_error "a flag where a value belongs (--out --resume): refused, not a directory named --resume" \
  "train: --out needs a value, not the flag --resume" $DDPM train --config configs/tiny.ini --out --resume
env SLURM_NTASKS=2 $DDPM export --checkpoint "$ck" --out "$work/x.h5" >/dev/null 2>&1 \
  && same_h5 "$work/weights.h5" "$work/x.h5" \
  && pass "one process in a 2-task batch script (SLURM_NTASKS=2, no step) runs: export" \
  || fail "a batch script's own process refused as a parallel launch"
env SLURM_NTASKS=2 $DDPM sample --checkpoint "$work/weights.h5" --n 4 --seed 3 --out "$work/s5.h5" >/dev/null 2>&1 \
  && same_h5 "$work/s4.h5" "$work/s5.h5" /samples /samples \
  && pass "one process in a 2-task batch script samples the same images" \
  || fail "a batch script's own sample process refused or different"
expect_error "not a checkpoint" "not a ddpm checkpoint" $DDPM sample --checkpoint "$work/init.h5" --out "$work/o.h5"
expect_error "missing checkpoint" "$work/none.h5" $DDPM sample --checkpoint "$work/none.h5" --out "$work/o.h5"
expect_error "a --png grid too large for a PNG, refused before sampling" "would be 1015002x466 pixels, too large for a PNG" \
  $DDPM sample --checkpoint "$ck" --n 140000 --png "$work/big.png" --out "$work/big.h5"
[ ! -e "$work/big.h5.part" ] && pass "nothing sampled for an impossible --png" || fail "an impossible --png started sampling"
expect_error "a --png in a missing directory, refused before sampling" "cannot create $work/nodir/g.png.tmp" \
  $DDPM sample --checkpoint "$ck" --n 4 --png "$work/nodir/g.png" --out "$work/nodir.h5"
[ ! -e "$work/nodir.h5.part" ] && [ ! -e "$work/nodir.h5" ] && pass "nothing sampled for an unwritable --png" \
  || fail "an unwritable --png started sampling"
mkdir -p "$work/g_trajectory.png"
expect_error "a --trajectory strip that cannot be written, refused before sampling" "g_trajectory.png: is a directory" \
  $DDPM sample --checkpoint "$ck" --n 4 --png "$work/g.png" --trajectory --out "$work/strip.h5"
[ ! -e "$work/strip.h5.part" ] && [ ! -e "$work/strip.h5" ] && pass "nothing sampled for an unwritable strip" \
  || fail "an unwritable strip started sampling"
: >"$work/empty.h5.part"
expect_error "an empty progress file (a crash while creating it)" "cannot be read as HDF5 (cut short by a crash or a full disk?): remove it to start the run over" \
  $DDPM sample --checkpoint "$ck" --n 4 --out "$work/empty.h5"
# the initial noise is part of what a progress file must match: its contents, not only its name
$PY -c "import h5py, numpy as np, sys; h5py.File(sys.argv[1], 'w')['x'] = np.random.default_rng(7).standard_normal((300, 1, 28, 28)).astype(np.float32)" "$work/x300.h5"
$DDPM sample --checkpoint "$ck" --init "$work/x300.h5" --batch 4 --sampler ddpm --out "$work/in.h5" >/dev/null 2>&1 & pid=$!
for _ in $(seq 200); do [ -e "$work/in.h5.part" ] && break; sleep 0.05; done
kill -USR1 $pid; wait $pid; rc=$?
$PY -c "import h5py, numpy as np, sys; h5py.File(sys.argv[1], 'w')['x'] = np.random.default_rng(8).standard_normal((300, 1, 28, 28)).astype(np.float32)" "$work/x300.h5"
[ $rc -eq 75 ] && expect_error "a progress file of other initial noise under the same file name" "where this one has init $work/x300.h5 checksum" \
  $DDPM sample --checkpoint "$ck" --init "$work/x300.h5" --batch 4 --sampler ddpm --out "$work/in.h5" \
  || fail "stopping a run from --init: rc $rc"

# v-prediction: the run's config records it; predict writes the network's output /v and the noise
# it implies, /eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t (abar from the run's own schedule);
# the samplers run on it; an unknown kind is refused
run_ok $DDPM train --config configs/tiny.ini --set diffusion.prediction=v --set train.max_steps=4 --out "$work/vp"
vck="$work/vp/checkpoints/latest.h5"
grep -qx "prediction = v" "$work/vp/config.ini" && pass "train: [diffusion] prediction = v recorded in the run's config" \
  || fail "train: prediction not in $(grep -A5 '\[diffusion\]' "$work/vp/config.ini")"
$PY -c "import h5py, numpy as np, sys; h5py.File(sys.argv[1], 'w')['x'] = np.random.default_rng(3).uniform(-1, 1, (3, 1, 28, 28)).astype(np.float32)" "$work/vx.h5"
run_ok $DDPM predict --checkpoint "$vck" --x "$work/vx.h5" --t 60 --out "$work/vp.h5"
out=$($PY - "$work/vp/config.ini" "$work/vx.h5" "$work/vp.h5" <<'PY' 2>&1
import configparser, h5py, numpy as np, sys
c = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
c.read(sys.argv[1])
d = c["diffusion"]
assert d["schedule"] == "linear", d["schedule"]
beta = np.linspace(float(d["beta_start"]), float(d["beta_end"]), int(d["T"]))
abar = np.cumprod(1 - beta)[60]
x = h5py.File(sys.argv[2])["x"][()].astype(np.float64)
f = h5py.File(sys.argv[3])
v, eps = f["v"][()].astype(np.float64), f["eps"][()].astype(np.float64)
want = np.sqrt(abar) * v + np.sqrt(1 - abar) * x
err = np.abs(eps - want).max()
assert err < 1e-5 and np.abs(v - eps).max() > 0.1, (err, np.abs(v - eps).max())
print(f"max |eps - (sqrt(abar) v + sqrt(1-abar) x)| = {err:.1e} at t = 60")
PY
) && pass "predict on a v-prediction checkpoint: /v and the noise it implies in /eps ($out)" || fail "predict, v-prediction: $out"
for smp in "ddpm" "ddim --steps 5" "dpmpp2m --steps 5"; do
  rm -f "$work/vs.h5" # each sampler's own file, not the one before
  run_ok $DDPM sample --checkpoint "$vck" --n 3 --sampler $smp --out "$work/vs.h5" &&
  $PY -c "import h5py, numpy as np, sys; s = h5py.File(sys.argv[1])['samples'][()]; sys.exit(not (np.isfinite(s).all() and s.shape == (3, 1, 28, 28)))" "$work/vs.h5" \
    && pass "sample --sampler $smp from a v-prediction checkpoint" || fail "sample --sampler $smp, v-prediction"
done
# the training target: at the cosine schedule's last step (abar = 2e-4) x_t is the noise and v is
# -x0, so after 150 steps on real digits a v network outputs about +1 (minus the background) at
# the border, uncorrelated with the noise it is given, where an eps network returns the noise
for p in v eps; do
  run_ok $DDPM train --config configs/tiny.ini --set diffusion.schedule=cosine --set diffusion.prediction=$p \
    --set train.max_steps=150 --out "$work/target-$p"
done
$PY -c "import h5py, numpy as np, sys; h5py.File(sys.argv[1], 'w')['x'] = np.random.default_rng(5).standard_normal((16, 1, 28, 28)).astype(np.float32)" "$work/noise.h5"
for p in v eps; do
  run_ok $DDPM predict --checkpoint "$work/target-$p/checkpoints/latest.h5" --x "$work/noise.h5" --t 99 --weights model --out "$work/target-$p.h5"
done
out=$($PY - "$work/noise.h5" "$work/target-v.h5" "$work/target-eps.h5" <<'PY' 2>&1
import h5py, numpy as np, sys
x = h5py.File(sys.argv[1])["x"][()]
v, eps = h5py.File(sys.argv[2])["v"][()], h5py.File(sys.argv[3])["eps"][()]
border = np.ones((28, 28), bool)
border[4:24, 4:24] = False
cv, ce = np.corrcoef(v.ravel(), x.ravel())[0, 1], np.corrcoef(eps.ravel(), x.ravel())[0, 1]
bv, be = v[:, :, border].mean(), eps[:, :, border].mean()
print(f"v network: border {bv:.2f}, correlation with the noise {cv:.2f}; eps network: {be:.2f}, {ce:.2f}")
assert bv > 0.6 and cv < 0.7 and abs(be) < 0.4 and ce > 0.9
PY
) && pass "train with prediction = v learns v, with eps the noise ($out)" || fail "the training target: $out"
expect_error "unknown [diffusion] prediction" "[diffusion] prediction = 'x0': expected one of eps|v" $DDPM train --config configs/tiny.ini --set diffusion.prediction=x0 --out "$work/x"

finish "train/sample"
