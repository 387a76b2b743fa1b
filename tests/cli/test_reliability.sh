#!/usr/bin/env bash
# test_reliability.sh: nothing saved is lost. SIGKILL at random moments (many during checkpoint
# writes) always leaves a latest.h5 that opens and resumes; broken or foreign checkpoints are
# refused with one clear line; `--help` agrees with the parsers; a full disk is
# reported, the previous checkpoint survives and no temporary file is left holding the space.
set -u
source "$(dirname "$0")/checks.sh"
tiny=(--config configs/tiny.ini --set train.max_steps=100000 --set train.checkpoint_every=1)

# 1. SIGKILL at 20 random moments; checkpoints are written every step, so many kills land in a
#    checkpoint write. After each: latest.h5 is complete (all tensors, readable) and resumes.
run="$work/kill"
kills=0 good=0 moved=0 last=1
# the first checkpoint comes from a run that is not killed, so that on a loaded machine (where a
# start can take longer than the longest kill delay) every kill has a checkpoint to preserve
$DDPM train "${tiny[@]}" --set train.max_steps=1 --out "$run" >/dev/null 2>&1 || fail "first step failed"
for i in $(seq 20); do
  $DDPM train "${tiny[@]}" --out "$run" --resume >/dev/null 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 9 + 3))$((RANDOM % 10))"
  kill -KILL $pid 2>/dev/null && kills=$((kills + 1))
  wait $pid 2>/dev/null
  # the first run's checkpoint exists, so a missing latest.h5 is one the kill destroyed
  [ -f "$run/checkpoints/latest.h5" ] || { fail "kill $i: latest.h5 is gone"; continue; }
  if $PY - "$run/checkpoints/latest.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    n = len(f["params"])
    assert n == 80 and all(len(f[g]) == n for g in ("ema", "adam/m", "adam/v")), "incomplete"
    assert all(np.isfinite(d[()]).all() for d in f["params"].values())
    assert f.attrs["step"] >= 1
PY
  then
    good=$((good + 1))
    now=$($PY -c "import h5py, sys; print(h5py.File(sys.argv[1], 'r').attrs['step'])" "$run/checkpoints/latest.h5")
    [ "$now" -gt "$last" ] && moved=$((moved + 1)) # this run trained (and checkpointed) before its kill
    last=$now
  else fail "kill $i: latest.h5 incomplete or unreadable"; fi
done
# every one of the 20 checks finds a complete checkpoint; at least 15 kills landed while the
# process ran, and at least 10 of the runs had trained and written checkpoints when killed (a
# kill during start-up tests nothing)
[ $good -eq 20 ] && [ $kills -ge 15 ] && [ $moved -ge 10 ] \
  && pass "SIGKILL x$kills: latest.h5 complete after every one of the 20 runs, $moved of them killed while training (step $last)" \
  || fail "SIGKILL: $good of 20 checkpoints complete, $kills kills landed (at least 15 expected), $moved while training (at least 10)"
step=$($PY -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['step'])" "$run/checkpoints/latest.h5")
$DDPM train --config configs/tiny.ini --set train.max_steps=$((step + 3)) --out "$run" --resume \
  >"$work/resume.log" 2>&1 && grep -q "resuming .* at step $step" "$work/resume.log" \
  && pass "after the kills the run resumes at step $step and finishes" || fail "resume after kills: $(tail -2 "$work/resume.log")"
ntmp=$(find "$run" -name '*.tmp*' | wc -l)
[ "$ntmp" -eq 0 ] && pass "no temporary files left after a clean finish" || fail "$ntmp temporary files left"

# 2. broken and foreign checkpoints: one clear line, no crash
ck="$run/checkpoints/latest.h5"
head -c 20000 "$ck" >"$work/truncated.h5"
expect_error "truncated checkpoint" "truncated.h5" $DDPM sample --checkpoint "$work/truncated.h5" --out "$work/o.h5"
echo "not hdf5" >"$work/text.h5"
expect_error "not HDF5" "not an HDF5 file" $DDPM sample --checkpoint "$work/text.h5" --out "$work/o.h5"
expect_error "samples file as checkpoint" "not a ddpm checkpoint" \
  $DDPM sample --checkpoint "$run/samples/generated.h5" --out "$work/o.h5"
cp "$ck" "$work/newer.h5"; cp "$ck" "$work/missing.h5"; cp "$ck" "$work/shape.h5"
$PY - "$work" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(d + "/newer.h5", "r+") as f: f.attrs["format_version"] = np.int64(99)
with h5py.File(d + "/missing.h5", "r+") as f: del f["ema/conv_in.bias"]
with h5py.File(d + "/shape.h5", "r+") as f:
    del f["params/out_conv.weight"]; f["params/out_conv.weight"] = np.zeros((2, 8, 3, 3), np.float32)
PY
expect_error "newer format_version" "format_version 99 is newer" $DDPM sample --checkpoint "$work/newer.h5" --out "$work/o.h5"
expect_error "missing tensor" "dataset /ema/conv_in.bias is missing" $DDPM sample --checkpoint "$work/missing.h5" --out "$work/o.h5"
expect_error "tensor of another shape" "dataset /params/out_conv.weight has shape [2, 8, 3, 3], expected [1, 8, 3, 3]" \
  $DDPM sample --checkpoint "$work/shape.h5" --out "$work/o.h5"
[ ! -e "$work/o.h5" ] && pass "no output written for a refused checkpoint" || fail "an output was written"

# 3. --help tells the truth about config keys: every key `train --help` lists is taken with its
#    listed default, and every listed choice of a key with choices; a key it does not list is not
keys=0; bad=()
while read -r key dflt rest; do
  keys=$((keys + 1))
  $DDPM model --config configs/tiny.ini --set "$key=$dflt" >/dev/null 2>&1 || bad+=("$key=$dflt")
  choices=$(sed -n 's/.*\[\([a-z|]*\)\]$/\1/p' <<<"$rest")
  for c in ${choices//|/ }; do
    $DDPM model --config configs/tiny.ini --set "$key=$c" >/dev/null 2>&1 || bad+=("$key=$c")
  done
done < <($DDPM train --help | sed -n 's/^  \([a-z_]*\.[a-z_]*\) *(default \([^)]*\))\(.*\)$/\1 \2 \3/p')
if [ $keys -ge 30 ] && [ ${#bad[@]} -eq 0 ]; then pass "train --help: all $keys listed keys take their listed defaults and choices"
else fail "train --help: $keys keys listed; refused: ${bad[*]}"; fi
expect_error "a key --help does not list" "unknown key 'momentum' in [train]" $DDPM model --config configs/tiny.ini --set train.momentum=0.9
# every flag a command's --help lists is one it knows (given without its value, it is never an
# "unexpected argument"), and a mistyped flag is reported as one, with the usage exit status 2
unknown=()
for cmd in train sample model inspect export noise-strip "classifier train" eval predict; do
  flags=$($DDPM $cmd --help | grep -E '^usage:|^ +\[?--' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
  for f in $flags; do
    [ "$f" = --help ] && continue
    # shellcheck disable=SC2086
    err=$(timeout 60 $DDPM $cmd "$f" 2>&1 >/dev/null)
    grep -q "unexpected argument" <<<"$err" && unknown+=("$cmd $f")
  done
  # shellcheck disable=SC2086
  err=$($DDPM $cmd --colour 2>&1 >/dev/null); rc=$?
  [ $rc -eq 2 ] && grep -qF "ddpm ${cmd%% *}: unexpected argument '--colour'" <<<"$err" || unknown+=("$cmd --colour: rc=$rc $err")
done
[ ${#unknown[@]} -eq 0 ] && pass "every flag in the 9 commands' --help is known; a mistyped one is 'unexpected', status 2" \
  || fail "--help and the parsers disagree: ${unknown[*]}"

# 4. a full disk: the error names the file, the previous checkpoint survives intact
full="$work/full"
mkdir -p "$full"
if mount -t tmpfs -o size=700k tmpfs "$full" 2>/dev/null; then
  mounts+=("$full")
  err=$($DDPM train "${tiny[@]}" --out "$full/run" 2>&1 >/dev/null); rc=$?
  # refused before HDF5 meets the full disk (status 1: after a failed flush HDF5's exit handler crashes)
  if [ $rc -eq 1 ] && grep -q "checkpoints/latest.h5: not enough disk space" <<<"$err"; then pass "disk full: $(tail -1 <<<"$err")"
  else fail "disk full: rc=$rc: $err"; fi
  $PY - "$full/run/checkpoints/latest.h5" <<'PY' && pass "disk full: the previous latest.h5 is complete" || fail "disk full: latest.h5 damaged"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert len(f["params"]) == 80 and len(f["adam/v"]) == 80 and f.attrs["step"] >= 1
PY
  [ ! -e "$full/run/checkpoints/latest.h5.tmp" ] && pass "disk full: refused before latest.h5.tmp was written" \
    || fail "disk full: latest.h5.tmp left behind"
  # 4b. the disk fills while the samples file is assembled from OUT.part (which fits, twice does
  #     not): no OUT.tmp left, OUT.part kept; with room, the same command finishes without sampling
  sfull="$work/sfull"; mkdir -p "$sfull"
  if mount -t tmpfs -o size=1000k tmpfs "$sfull" 2>/dev/null; then
    mounts+=("$sfull")
    scmd=($DDPM sample --checkpoint "$ck" --n 200 --sampler ddim --steps 2 --out "$sfull/s.h5")
    err=$("${scmd[@]}" 2>&1 >/dev/null); rc=$?
    if [ $rc -ne 0 ] && grep -q "s.h5.tmp: cannot write" <<<"$err" && [ ! -e "$sfull/s.h5.tmp" ] &&
       [ -f "$sfull/s.h5.part" ] && [ ! -e "$sfull/s.h5" ]; then
      pass "disk full while assembling samples: $(tail -1 <<<"$err"); s.h5.tmp removed, s.h5.part kept"
    else fail "disk full while assembling samples: rc=$rc: $err; left: $(ls "$sfull")"; fi
    mount -o remount,size=2000k "$sfull"
    out=$("${scmd[@]}" 2>&1); rc=$?
    if [ $rc -eq 0 ] && grep -q "200 images sampled by earlier runs" <<<"$out" && [ "$(ls "$sfull")" = s.h5 ] &&
       $PY -c "import h5py,sys; assert h5py.File(sys.argv[1],'r')['samples'].shape == (200, 1, 28, 28)" "$sfull/s.h5"; then
      pass "with room again the same command writes s.h5 from s.h5.part without sampling"
    else fail "finishing after the full disk: rc=$rc: $out; left: $(ls "$sfull")"; fi
  else fail "a second tmpfs could not be mounted (the first one could)"; fi
  # 4c. a stale latest.h5.tmp (a kill during a checkpoint write) fills the disk: its space counts
  #     as free, since the next write truncates it, so the resumed run is not refused
  stale="$work/stale"; mkdir -p "$stale"
  if mount -t tmpfs -o size=1400k tmpfs "$stale" 2>/dev/null; then
    mounts+=("$stale")
    $DDPM train "${tiny[@]}" --set train.max_steps=1 --out "$stale/run" >/dev/null 2>&1
    cp "$stale/run/checkpoints/latest.h5" "$stale/run/checkpoints/latest.h5.tmp"
    free_k=$(($(df -k --output=avail "$stale" | tail -1)))
    out=$($DDPM train "${tiny[@]}" --set train.max_steps=3 --out "$stale/run" --resume 2>&1); rc=$?
    if [ "$free_k" -lt 200 ] && [ $rc -eq 0 ] && grep -q "done: step 3" <<<"$out" &&
       [ "$(ls "$stale/run/checkpoints")" = latest.h5 ]; then
      pass "a stale latest.h5.tmp filling the disk (${free_k} KB free) does not refuse the resumed run"
    else fail "stale latest.h5.tmp: ${free_k} KB free, rc=$rc: $out; left: $(ls "$stale/run/checkpoints")"; fi
  else fail "a third tmpfs could not be mounted (the first one could)"; fi
  # 5. a run directory that cannot be written
  ro="$work/ro"; mkdir -p "$ro"
  if mount -t tmpfs -o ro,size=100k tmpfs "$ro" 2>/dev/null; then
    mounts+=("$ro")
    expect_error "read-only run directory" "$ro/run" $DDPM train --config configs/tiny.ini --out "$ro/run"
  else fail "a read-only tmpfs could not be mounted (a writable one could)"; fi
else
  skip "disk-full and read-only checks" "cannot mount a tmpfs here (needs root)"
fi

# 6. an output whose temporary name (OUT.tmp) would not fit in its buffer is refused, and a file
#    already at OUT is untouched (a name cut to 1,099 characters was OUT itself: written in place)
long="$work"
while [ ${#long} -lt 950 ]; do long="$long/$(printf 'd%.0s' {1..100})"; done
mkdir -p "$long"
long="$long/$(printf 'w%.0s' $(seq $((1099 - ${#long} - 1))))"
echo "not a checkpoint" >"$long"
err=$($DDPM export --checkpoint "$ck" --out "$long" 2>&1 >/dev/null); rc=$?
if [ ${#long} -eq 1099 ] && [ $rc -eq 1 ] && grep -q "path too long" <<<"$err" && [ "$(cat "$long")" = "not a checkpoint" ]; then
  pass "an output path of 1,099 characters is refused (path too long) and the file there is untouched"
else fail "long output path: length ${#long}, rc=$rc, file now: $(head -c 20 "$long" | tr -cd '[:print:]')"; fi

# 7. the smaller commands refuse, before any work, an output that would replace one of their
#    own files or cannot be written, and read what foreign files hold
cp "$ck" "$work/ck-copy.h5"
before=$(sha256sum <"$work/ck-copy.h5")
expect_error "export over its own checkpoint" "--out $work/ck-copy.h5 is the same file as $work/ck-copy.h5" \
  $DDPM export --checkpoint "$work/ck-copy.h5" --out "$work/ck-copy.h5"
[ "$(sha256sum <"$work/ck-copy.h5")" = "$before" ] && pass "the checkpoint is untouched (its Adam state kept)" \
  || fail "export over its own checkpoint changed it"
$PY -c "import h5py, numpy as np, sys; h5py.File(sys.argv[1], 'w')['x'] = np.random.default_rng(3).uniform(-1, 1, (130, 1, 28, 28)).astype(np.float32)" "$work/x130.h5"
expect_error "predict over its --x" "is the same file as $work/x130.h5" \
  $DDPM predict --checkpoint "$ck" --x "$work/x130.h5" --t 5 --out "$work/x130.h5"
expect_error "predict --out a directory" "predict: --out $work: is a directory" \
  $DDPM predict --checkpoint "$ck" --x "$work/x130.h5" --t 5 --out "$work"
expect_error "noise-strip --h5 the same file as its --out" "is the same file as" \
  $DDPM noise-strip --out "$ck" --h5 "$ck"
expect_error "classifier train --out a directory, before any training" "classifier: --out $work: is a directory" \
  $DDPM classifier train --out "$work"
expect_error "a directory as the config" "$work: cannot read config: Is a directory" $DDPM model --config "$work"
# predict evaluates the network in chunks of 128: 130 images give the rows of 128 + 2 and the
# same images evaluated alone (within float rounding)
run_ok $DDPM predict --checkpoint "$ck" --x "$work/x130.h5" --t 5 --out "$work/p130.h5"
$PY -c "import h5py, sys; x = h5py.File(sys.argv[1], 'r')['x'][()]; h5py.File(sys.argv[2], 'w')['x'] = x[126:]" "$work/x130.h5" "$work/x4.h5"
run_ok $DDPM predict --checkpoint "$ck" --x "$work/x4.h5" --t 5 --out "$work/p4.h5"
$PY - "$work/p130.h5" "$work/p4.h5" <<'PY' && pass "predict of 130 images in chunks: rows 126-129 equal those of the 4 alone" || fail "predict in chunks differs"
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["eps"][()]
b = h5py.File(sys.argv[2], "r")["eps"][()]
assert a.shape == (130, 1, 28, 28) and np.isfinite(a).all()
assert np.abs(a[126:] - b).max() < 1e-4 * max(1.0, np.abs(b).max()), np.abs(a[126:] - b).max()
PY
# inspect: variable-length UTF-8 string attributes (h5py's, and metrics.h5's), any rank, a null
# dataspace, a /params that is not a group
$PY - "$work/odd.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["kind"] = "sömething"
    f["d6"] = np.zeros((1, 2, 1, 2, 1, 2), np.float32)
    f.create_dataset("nul", data=h5py.Empty("f"))
    f["params"] = np.zeros(3)
PY
out=$($DDPM inspect "$work/odd.h5" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q '@kind = "sömething"' <<<"$out" && grep -q "/d6 *\[1, 2, 1, 2, 1, 2\]" <<<"$out" \
  && grep -q "/nul *(no values)" <<<"$out" && grep -q "3 datasets, 11 values in all" <<<"$out" \
  && pass "inspect of a foreign file: a UTF-8 kind, 6 dimensions, a null dataspace, /params a dataset" \
  || fail "inspect of a foreign file: rc $rc, $out"
out=$($DDPM inspect "$run/metrics.h5" 2>&1)
grep -q '@kind = "ddpm-metrics"' <<<"$out" && pass "inspect reads metrics.h5's kind" || fail "inspect metrics.h5: $(head -3 <<<"$out")"

finish "reliability"
