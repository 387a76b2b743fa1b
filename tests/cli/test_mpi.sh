#!/usr/bin/env bash
# test_mpi.sh: data-parallel training and sampling under a real `mpirun -np 2` on MNIST with
# configs/tiny.ini: the same trajectory as one process (up to reduction order), exact resume
# with the same rank count and close resume with another, overlapped and blocking gradient sums
# agreeing bit for bit, samples identical to one process, all ranks stopping together on a
# signal (training, and sampling resumed on another rank count), and the guards (diverged weights, batch smaller than the ranks, files only some ranks can see).
set -u
source "$(dirname "$0")/checks.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# threads per rank as ddpm chooses them (cores per node / ranks per node), not the suite's
MPI2="env -u OMP_NUM_THREADS mpirun -np 2"
TINY=(--config configs/tiny.ini --set train.batch=31 --set train.max_steps=20)

# 1. P = 1 and P = 2 follow the same trajectory; batch 31 splits unevenly (16 + 15 images)
$DDPM train "${TINY[@]}" --out "$work/p1" >"$work/p1.log" 2>&1 || fail "P=1 run: $(tail -2 "$work/p1.log")"
$MPI2 $DDPM train "${TINY[@]}" --set train.bucket_kb=4 --out "$work/p2" >"$work/p2.log" 2>&1 \
  || fail "P=2 run: $(tail -2 "$work/p2.log")"
grep -q "layout: 1 node, 2 ranks (2 on this node), [0-9]* threads\{0,1\} per rank (cores per node / ranks per node)" "$work/p2.log" \
  && pass "layout line: $(grep layout: "$work/p2.log")" || fail "layout line missing: $(head -3 "$work/p2.log")"
grep -q "gradient sum over 2 ranks: .* ([0-9][0-9]* buckets)" "$work/p2.log" \
  && pass "bucketed allreduce: $(grep -o '([0-9]* buckets)' "$work/p2.log")" || fail "timing line: $(grep timing: "$work/p2.log")"
[ "$(grep -c '^training:' "$work/p2.log")" -eq 1 ] && pass "only rank 0 prints" || fail "several ranks print"
$PY - "$work/p1" "$work/p2" <<'PY' && pass "P=1 vs P=2: losses within 1e-5, weights within 1e-4 after 20 steps" || fail "P=1 vs P=2 differ"
import sys, h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
with h5py.File(a + "/metrics.h5", "r") as f, h5py.File(b + "/metrics.h5", "r") as g:
    la, lb = f["loss"][:], g["loss"][:]
    assert len(la) == len(lb) == 20
    rel = np.abs(la - lb) / la
    print(f"     loss: max relative difference {rel.max():.2e} over 20 steps")
    assert rel.max() < 1e-5
with h5py.File(a + "/checkpoints/latest.h5", "r") as f, h5py.File(b + "/checkpoints/latest.h5", "r") as g:
    worst = 0.0
    for grp in ("params", "ema", "adam/m"):
        for k in f[grp]:
            x, y = f[grp][k][()], g[grp][k][()]
            assert np.isfinite(x).all() and np.isfinite(y).all(), (grp, k) # max() would skip a NaN
            worst = max(worst, np.abs(x - y).max() / (np.abs(x).max() + 1e-12))
    print(f"     weights: max difference {worst:.2e} relative to each tensor's largest value")
    assert 0 < worst < 1e-4 or worst == 0
PY

# 2. the overlapped (bucketed) and the blocking gradient sums give the same bits
$MPI2 $DDPM train "${TINY[@]}" --set train.allreduce=blocking --out "$work/p2b" >"$work/p2b.log" 2>&1 \
  || fail "P=2 blocking run: $(tail -2 "$work/p2b.log")"
grep -q "(1 bucket)" "$work/p2b.log" && pass "blocking mode: one allreduce" || fail "blocking timing line: $(grep timing: "$work/p2b.log")"
same_tensors() { for g in /params /ema /adam; do same_h5 "$1" "$2" $g $g || return 1; done; }
same_tensors "$work/p2/checkpoints/latest.h5" "$work/p2b/checkpoints/latest.h5" \
  && pass "overlap (4 KiB buckets) and blocking allreduce: identical checkpoints" || fail "overlap vs blocking differ"

# 3. resume under MPI: same P bit for bit; another P close
$MPI2 $DDPM train "${TINY[@]}" --set train.max_steps=9 --set train.bucket_kb=4 --out "$work/r2" >/dev/null 2>&1
cp -r "$work/r2" "$work/r1"
$MPI2 $DDPM train "${TINY[@]}" --set train.bucket_kb=4 --out "$work/r2" --resume >"$work/r2.log" 2>&1 \
  || fail "P=2 resume: $(tail -2 "$work/r2.log")"
same_h5 "$work/p2/checkpoints/latest.h5" "$work/r2/checkpoints/latest.h5" \
  && pass "P=2 stopped at step 9 and resumed: bit-identical to the uninterrupted P=2 run" \
  || fail "P=2 resume is not exact"
$PY - "$work/p2" "$work/r2" <<'PY' && pass "the resumed run's epoch mean covers the whole epoch (equal to the uninterrupted run's)" || fail "epoch mean after resume differs"
import sys, h5py
a, b = (h5py.File(d + "/metrics.h5", "r")["epoch/mean_loss"][:] for d in sys.argv[1:])
assert len(a) == len(b) == 1 and a[0] == b[0], (a, b)
PY
$DDPM train "${TINY[@]}" --out "$work/r1" --resume >"$work/r1.log" 2>&1 || fail "P=1 resume: $(tail -2 "$work/r1.log")"
$PY - "$work/p2" "$work/r1" <<'PY' && pass "a P=2 checkpoint resumed on P=1: within 1e-4 of the P=2 run" || fail "P=2 -> P=1 resume differs"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1] + "/checkpoints/latest.h5", "r") as f, h5py.File(sys.argv[2] + "/checkpoints/latest.h5", "r") as g:
    assert f.attrs["step"] == g.attrs["step"] == 20
    assert all(np.isfinite(h["params"][k][()]).all() for h in (f, g) for k in f["params"]), "non-finite weights" # max() would skip a NaN
    worst = max(np.abs(f["params"][k][()] - g["params"][k][()]).max() / np.abs(f["params"][k][()]).max() for k in f["params"])
    print(f"     max difference {worst:.2e}")
    assert worst < 1e-4
PY

# 4. sampling: each rank its chunks, one file written together (parallel HDF5), the same bits
ck="$work/p1/checkpoints/latest.h5"
run_ok $DDPM sample --checkpoint "$ck" --n 20 --batch 8 --trajectory --out "$work/s1.h5" --png "$work/s1.png"
run_ok $MPI2 $DDPM sample --checkpoint "$ck" --n 20 --batch 8 --trajectory --out "$work/s2.h5" --png "$work/s2.png"
same_h5 "$work/s1.h5" "$work/s2.h5" && pass "P=2 samples (with trajectory) identical to P=1" || fail "P=2 samples differ from P=1"
run_ok $DDPM sample --checkpoint "$ck" --n 20 --batch 8 --sampler dpmpp2m --steps 5 --out "$work/d1.h5"
run_ok $MPI2 $DDPM sample --checkpoint "$ck" --n 20 --batch 8 --sampler dpmpp2m --steps 5 --out "$work/d2.h5"
same_h5 "$work/d1.h5" "$work/d2.h5" && pass "P=2 dpmpp2m samples identical to P=1" || fail "P=2 dpmpp2m samples differ from P=1"
# a sampling run stopped on 2 ranks (SIGUSR1 to mpirun, which passes it on) resumes on 1, and one
# stopped on 1 rank resumes on 2: the images of an uninterrupted run either way
run_ok $DDPM sample --checkpoint "$ck" --n 400 --batch 4 --sampler ddpm --out "$work/r1.h5"
for way in "2 1" "1 2"; do
  read -r p_stop p_resume <<<"$way"
  L1=$([ $p_stop = 2 ] && echo "$MPI2"); L2=$([ $p_resume = 2 ] && echo "$MPI2")
  rm -f "$work/r.h5" "$work/r.h5.part"
  # stopped after its first round of chunks (a progress line after each): never before any
  # chunk is done, never after the last, at any speed of the machine
  $L1 $DDPM sample --checkpoint "$ck" --n 400 --batch 4 --sampler ddpm --progress 0 --out "$work/r.h5" >"$work/r.log" 2>&1 & pid=$!
  for _ in $(seq 600); do grep -q "^progress:" "$work/r.log" 2>/dev/null && break; sleep 0.05; done
  kill -USR1 $pid; wait $pid; rc=$?
  rdone=$($PY -c "import h5py, sys; print(int(h5py.File(sys.argv[1], 'r')['done_chunks'][:].sum()))" "$work/r.h5.part" 2>/dev/null)
  [ $rc -eq 75 ] && [ -n "$rdone" ] && [ "$rdone" -gt 0 ] \
    && $L2 $DDPM sample --checkpoint "$ck" --n 400 --batch 4 --sampler ddpm --out "$work/r.h5" >"$work/r2.log" 2>&1 \
    && grep -q "resuming $work/r.h5.part: $rdone of 100 chunks of 4 images already done" "$work/r2.log" \
    && [ ! -e "$work/r.h5.part" ] && same_h5 "$work/r1.h5" "$work/r.h5" 2>/dev/null \
    && pass "sampling stopped on $p_stop rank(s) ($(grep -o '[0-9]* of 400 images done' "$work/r.log")), resumed on $p_resume: the uninterrupted images" \
    || fail "sampling stopped on $p_stop, resumed on $p_resume: rc $rc, $(tail -2 "$work/r.log")"
done
# chunks stopped part-way on 2 ranks (one round of two chunks, SIGUSR1 raised in each rank at
# step A by the hidden hook DDPM_TEST_STOP_CHECK), resumed on 1 rank and stopped again B steps
# into chunk 0, finished on 2: the uninterrupted run's file, through two stops mid-chunk and two
# changes of rank count. DDPM: chunk 0 holds the --trajectory images, stopped past their 1st and
# 2nd frames (after steps 12 and 23 of 100); dpmpp2m (its last x0 estimate in /x0_prev) in chunks
# of 4, the 8 trajectory images split over the two chunks stopped (frames after steps 3, 5, 7)
for way in "15 10 256 128 100 --sampler ddpm" "5 3 16 4 20 --sampler dpmpp2m --steps 20"; do
  read -r A B N BATCH K wopt <<<"$way"
  pw=(--checkpoint "$ck" --n $N --batch $BATCH --seed 4 --trajectory $wopt)
  rm -f "$work/pw1.h5" "$work/pw.h5"
  run_ok $DDPM sample "${pw[@]}" --out "$work/pw1.h5"
  DDPM_TEST_STOP_CHECK=$A $MPI2 $DDPM sample "${pw[@]}" --out "$work/pw.h5" >"$work/pw-a.log" 2>&1; rc1=$?
  DDPM_TEST_STOP_CHECK=$B $DDPM sample "${pw[@]}" --out "$work/pw.h5" >"$work/pw-b.log" 2>&1; rc2=$?
  steps=$($PY -c "import h5py, sys; print(*h5py.File(sys.argv[1], 'r')['steps_done'][:2])" "$work/pw.h5.part" 2>/dev/null)
  [ $rc1 -eq 75 ] && [ $rc2 -eq 75 ] && grep -q "0 of $N images done and 2 chunks part-way" "$work/pw-a.log" \
    && grep -q "0 of $((N / BATCH)) chunks of $BATCH images already done, 2 part-way (steps $A-$A of $K)" "$work/pw-b.log" \
    && [ "$steps" = "$((A + B)) $A" ] \
    && $MPI2 $DDPM sample "${pw[@]}" --out "$work/pw.h5" >"$work/pw-c.log" 2>&1 \
    && grep -q "0 of $((N / BATCH)) chunks of $BATCH images already done, 2 part-way (steps $A-$((A + B)) of $K)" "$work/pw-c.log" \
    && same_h5 "$work/pw1.h5" "$work/pw.h5" \
    && pass "$wopt: chunks stopped part-way on 2 ranks (step $A), again on 1 (steps then: $steps), finished on 2: the uninterrupted file, trajectory and all" \
    || fail "part-way under MPI ($wopt): rc $rc1 $rc2; $(grep stopped "$work/pw-a.log"); $(grep -E 'resuming|stopped' "$work/pw-b.log"); steps $steps"
done
cmp -s "$work/s1.png" "$work/s2.png" && cmp -s "$work/s1_trajectory.png" "$work/s2_trajectory.png" \
  && pass "P=2 grid and trajectory PNGs identical to P=1" || fail "PNGs differ"
# every rank syncs the rows it wrote into the samples file before rank 0 gives it its name (rank
# 0's fsync covers only its own node's cache of a file on a shared file system)
strace -f -y -e trace=fsync,fdatasync,rename -o "$work/ms.trace" $MPI2 $DDPM sample --checkpoint "$ck" --n 20 --batch 8 \
  --sampler ddim --steps 2 --out "$work/ms.h5" >/dev/null 2>&1
out=$($PY - "$work/ms.trace" <<'PY' 2>&1
import re, sys
synced = set()
for line in open(sys.argv[1]):
    if re.search(r'rename\(".*ms\.h5\.tmp", ".*ms\.h5"\) = 0', line):
        break
    m = re.match(r"(\d+) +f(data)?sync\(\d+<[^>]*/ms\.h5\.tmp>", line)
    if m:
        synced.add(m.group(1))
else:
    sys.exit("no rename of ms.h5.tmp")
assert len(synced) == 2, f"processes that synced ms.h5.tmp before its rename: {sorted(synced)}"
print(len(synced))
PY
) && pass "samples file: both ranks sync it before its rename" || fail "samples file sync: $out"
left=$(find "$work" -name '*.tmp*')
[ -z "$left" ] && pass "no temporary files left (checkpoints, samples, PNGs)" || fail "temporary files left: $left"

# 5. a signal to one rank stops every rank at the same step with one checkpoint, exit 75
$MPI2 $DDPM train --config configs/tiny.ini --set train.max_steps=100000 --out "$work/sig" >"$work/sig.log" 2>&1 &
launcher=$!
( sleep 300; kill -KILL $launcher ) >/dev/null 2>&1 & watchdog=$! # a run no signal reached ends here
for _ in $(seq 300); do grep -q "^epoch 1 step" "$work/sig.log" 2>/dev/null && break; sleep 0.2; done
rank=$(pgrep -P $launcher -f "ddpm train" | tail -1)
[ -n "$rank" ] && kill -USR1 "$rank"
wait $launcher; rc=$?
wsleep=$(pgrep -P $watchdog sleep); kill $watchdog $wsleep 2>/dev/null
[ $rc -eq 75 ] && grep -q "stopped by User defined signal 1 after step" "$work/sig.log" \
  && pass "SIGUSR1 to one rank: all stop, exit 75: $(grep stopped "$work/sig.log")" || fail "signal under MPI: rc=$rc $(tail -3 "$work/sig.log")"
$PY - "$work/sig" <<'PY' && pass "the stop checkpoint is complete and matches metrics.h5" || fail "stop checkpoint"
import sys, h5py
with h5py.File(sys.argv[1] + "/checkpoints/latest.h5", "r") as f, h5py.File(sys.argv[1] + "/metrics.h5", "r") as g:
    assert f.attrs["step"] > 0 and f.attrs["step"] == g["step"][-1], (f.attrs["step"], g["step"][-1])
PY

# 6. guards: one rank's weights perturbed (test hook) is caught at the next check; batch < ranks
# a checkpoint is due at step 5 too (checkpoint_every): the check must come before it
err=$(DDPM_TEST_PERTURB=1:3 $MPI2 $DDPM train "${TINY[@]}" --set train.check_every=5 --set train.checkpoint_every=5 --out "$work/div" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "step 5: the ranks no longer hold the same weights" <<<"$err"; then
  pass "diverged ranks stop the run at the next check (step 5)"
else
  fail "divergence guard: rc=$rc $(grep ddpm <<<"$err" | head -2)"
fi
[ ! -e "$work/div/checkpoints/latest.h5" ] && pass "no checkpoint written from diverged weights" || fail "a checkpoint was written"
# ... and checked before the checkpoint a stop signal writes (no check_every, no checkpoint_every)
DDPM_TEST_PERTURB=1:3 $MPI2 $DDPM train --config configs/tiny.ini --set train.max_steps=100000 --set train.check_every=0 \
  --out "$work/divsig" >"$work/divsig.log" 2>&1 &
launcher=$!
( sleep 300; kill -KILL $launcher ) >/dev/null 2>&1 & watchdog=$!
for _ in $(seq 300); do grep -q "^epoch 1 step" "$work/divsig.log" 2>/dev/null && break; sleep 0.2; done
rank=$(pgrep -P $launcher -f "ddpm train" | tail -1)
[ -n "$rank" ] && kill -USR1 "$rank"
wait $launcher; rc=$?
wsleep=$(pgrep -P $watchdog sleep); kill $watchdog $wsleep 2>/dev/null
at=$(grep -o "step [0-9]*: the ranks no longer hold the same weights" "$work/divsig.log" | grep -o "[0-9]*" | head -1)
[ -n "$rank" ] && [ $rc -ne 0 ] && [ $rc -ne 75 ] && [ -n "$at" ] && [ "$at" -ge 50 ] \
  && [ ! -e "$work/divsig/checkpoints/latest.h5" ] \
  && pass "diverged ranks stopped by a signal (no check_every): caught at the stop (step $at), no checkpoint written" \
  || fail "divergence before a stop checkpoint: rc=$rc $(grep -E 'ddpm|stopped' "$work/divsig.log" | head -2)"
# a NaN stops every rank: rank 0's buffered rows reach metrics.h5 before any rank's exit ends the job
err=$(DDPM_TEST_NAN=23:60 $MPI2 $DDPM train "${TINY[@]}" --set train.max_steps=60 --out "$work/nanmpi" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "step 23: non-finite value in the loss" <<<"$err" \
  && $PY -c "import h5py, sys; s = h5py.File(sys.argv[1], 'r')['step'][:]; assert list(s) == list(range(1, 23)), s" "$work/nanmpi/metrics.h5" \
  && pass "NaN under MPI: every rank stops, metrics.h5 holds steps 1-22" \
  || fail "NaN under MPI: rc=$rc $(grep ddpm <<<"$err" | head -2)"
err=$($MPI2 $DDPM train "${TINY[@]}" --set train.batch=1 --out "$work/b1" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "batch 1 is smaller than the 2 MPI ranks" <<<"$err" \
  && pass "batch smaller than the ranks refused" || fail "batch < ranks: rc=$rc $(grep ddpm <<<"$err" | head -2)"

# 7. a run directory or progress file that only some ranks can see, or that each rank has its
# own copy of (node-local disk): rank 1 runs in its own mount namespace with a tmpfs over the
# directory, empty or holding another file of the same name; every rank stops naming the
# file, nothing is written (a watchdog timeout ends a run whose ranks went separate ways)
one_blind() { # DIR FILE CMD...: rank 0 runs CMD, rank 1 runs it with a tmpfs over DIR that is
  # empty, or holds a copy of FILE (another file of the same name) when FILE is not "-"
  local dir=$1 file=$2; shift 2
  timeout 120 env -u OMP_NUM_THREADS mpirun -np 1 "$@" : -np 1 unshare -m --propagation private \
    sh -c 'd=$0 f=$1; shift; mount -t tmpfs tmpfs "$d" && { [ "$f" = - ] || cp "$f" "$d/"; } && exec "$@"' "$dir" "$file" "$@"
}
if ! unshare -m --propagation private sh -c "mount -t tmpfs tmpfs '$work' && umount '$work'" 2>/dev/null; then
  skip "files only some ranks can see" "no mount namespace with a tmpfs here (needs root)"
else
cp -r "$work/r2" "$work/vis"
mkdir -p "$work/vis-out"
sums() { sha256sum "$work/vis/checkpoints/"* "$work/vis/metrics.h5" "$work/vis-out/"*; }
DDPM_TEST_STOP_CHECK=3 $DDPM sample --checkpoint "$ck" --n 8 --batch 4 --sampler ddim --steps 10 --out "$work/vis-out/s.h5" >/dev/null 2>&1
before=$(sums)
err=$(one_blind "$work/vis/checkpoints" - $DDPM train "${TINY[@]}" --set train.max_steps=30 --out "$work/vis" --resume 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "latest.h5: visible to some ranks but not to others (rank [01] .*): the run directory must be on a file system every rank shares" <<<"$err" \
  && [ "$(sums)" = "$before" ] \
  && pass "a checkpoint only rank 0 can see: the run stops naming it, before any rank writes" \
  || fail "checkpoint seen by one rank: rc=$rc $(grep ddpm <<<"$err" | head -2)"
err=$(one_blind "$work/vis-out" - $DDPM sample --checkpoint "$ck" --n 8 --batch 4 --sampler ddim --steps 10 --out "$work/vis-out/s.h5" 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "s.h5.part: visible to some ranks but not to others (rank [01] .*): the output must be on a file system every rank shares" <<<"$err" \
  && [ -e "$work/vis-out/s.h5.part" ] && [ "$(sums)" = "$before" ] \
  && pass "a sampling progress file only rank 0 can see: the run stops naming it, the file untouched" \
  || fail "progress file seen by one rank: rc=$rc $(grep ddpm <<<"$err" | head -2)"
# each rank its own file of the same name (a copy per node): rank 1 reads the P = 1 run's
# latest.h5 (same config and step, other weights), or a progress file with fewer chunks done
err=$(one_blind "$work/vis/checkpoints" "$work/r1/checkpoints/latest.h5" $DDPM train "${TINY[@]}" --set train.max_steps=30 --out "$work/vis" --resume 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "latest.h5: the ranks read different checkpoints (step 20 here): the run directory must be on a file system every rank shares" <<<"$err" \
  && [ "$(sums)" = "$before" ] \
  && pass "a checkpoint of the same name but other weights on rank 1: the run stops naming it, before any rank writes" \
  || fail "a different checkpoint on one rank: rc=$rc $(grep ddpm <<<"$err" | head -2)"
mkdir -p "$work/vis-old" && cp "$work/vis-out/s.h5.part" "$work/vis-old/"
DDPM_TEST_STOP_CHECK=2 $DDPM sample --checkpoint "$ck" --n 8 --batch 4 --sampler ddim --steps 10 --out "$work/vis-out/s.h5" >/dev/null 2>&1
before=$(sums)
err=$(one_blind "$work/vis-out" "$work/vis-old/s.h5.part" $DDPM sample --checkpoint "$ck" --n 8 --batch 4 --sampler ddim --steps 10 --out "$work/vis-out/s.h5" 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "s.h5.part: the ranks read different progress files (other chunks done or part-way): the output must be on a file system every rank shares" <<<"$err" \
  && [ "$(sums)" = "$before" ] \
  && pass "a progress file of the same name but other chunks done on rank 1: the run stops naming it, the file untouched" \
  || fail "a different progress file on one rank: rc=$rc $(grep ddpm <<<"$err" | head -2)"
fi

finish "MPI"
