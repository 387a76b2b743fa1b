#!/usr/bin/env bash
# test_slurm.sh: the batch scripts of jobs/ against a real single-node Slurm (slurmctld, slurmd
# and munged started here with all state in a temporary directory, stopped at the end): a 2-task
# training job; a job sent USR1 checkpoints, requeues itself, resumes and ends with the same
# weights as an uninterrupted one; scancel checkpoints and ends the job (not requeued); a job
# Slurm requeues (as a preemption does) resumes; LAUNCHER=mpirun; an array sweep; a train -> sample chain with
# --dependency=afterok; a sampling job sent USR1 resumes its images; in a 2-task allocation the
# batch shell's own process runs and unconnected srun tasks are refused; the scripts outside Slurm. configs/tiny.ini on real MNIST.
set -u
source "$(dirname "$0")/checks.sh"
source tests/slurm/cluster.sh
for cmd in slurmctld slurmd sbatch munged mungekey; do
  command -v $cmd >/dev/null || { fail "$cmd is missing (make slurm-deps installs it)"; finish "Slurm"; }
done
slurmdir=$work/slurm
chmod 0755 "$work" # munged wants every directory above its socket searchable
cleanup_slurm() { slurm_down "$slurmdir"; cleanup; }
trap cleanup_slurm EXIT
slurm_up "$slurmdir" && pass "single-node Slurm up: $(sinfo -h -o '%P %D %T %c cpus')" || { fail "Slurm did not start"; finish "Slurm"; }

# wait_job ID SECONDS: until the job has left the queue (completed, failed or cancelled)
wait_job() {
  local i
  for i in $(seq $((5 * $2))); do
    squeue -h -j "$1" 2>/dev/null | grep -q . || return 0
    sleep 0.2
  done
  return 1
}
steps=(--set train.max_steps=200 --set train.log_every=20)

# 1. outside Slurm each script stops with its message
for s in train sample sweep eval; do
  expect_error "jobs/$s.sbatch outside Slurm" "not running" env -u SLURM_JOB_ID -u SLURM_ARRAY_TASK_ID jobs/$s.sbatch configs/tiny.ini x
done

# 1b. usage errors: status 2 and one timestamped line; a MAX_RESTARTS that is not a number refused
for s in train sample sweep eval; do
  err=$(env SLURM_JOB_ID=1 SLURM_ARRAY_TASK_ID=0 SLURM_SUBMIT_DIR="$PWD" jobs/$s.sbatch 2>&1 >/dev/null); rc=$?
  [ $rc -eq 2 ] && grep -qE "^[0-9T:-]+Z .*usage: sbatch .*jobs/$s.sbatch" <<<"$err" \
    && pass "jobs/$s.sbatch without arguments: status 2, $err" || fail "jobs/$s.sbatch usage: rc=$rc $err"
done
expect_error "MAX_RESTARTS not a number" "MAX_RESTARTS=2O: expected a whole number" \
  env SLURM_JOB_ID=1 SLURM_SUBMIT_DIR="$PWD" MAX_RESTARTS=2O jobs/train.sbatch configs/tiny.ini

# 2. a 2-task training job completes with complete outputs
j1=$(RUN_DIR=$work/plain sbatch --parsable --ntasks=2 --output="$work/plain.log" \
  jobs/train.sbatch configs/tiny.ini "${steps[@]}")
wait_job "$j1" 120 || fail "job $j1 did not finish in 120 s"
grep -q "layout: 1 node, 2 ranks" "$work/plain.log" && grep -q "step finished" "$work/plain.log" \
  && pass "2-task training job: srun --mpi=pmix gave 2 MPI ranks and the step finished" \
  || fail "2-task job: $(tail -3 "$work/plain.log")"
$PY - "$work/plain" <<'PY' && pass "its outputs are complete (200 metrics rows, step-200 checkpoint, samples)" || fail "2-task job outputs"
import sys, h5py
d = sys.argv[1]
with h5py.File(d + "/checkpoints/latest.h5", "r") as f:
    assert f.attrs["step"] == 200 and set(f) == {"params", "ema", "adam"}
with h5py.File(d + "/metrics.h5", "r") as f:
    assert len(f["step"]) == 200 and f["step"][-1] == 200
with h5py.File(d + "/samples/generated.h5", "r") as f:
    assert f["samples"].shape == (16, 1, 28, 28)
PY

# 3. USR1 to the batch shell (what --signal=B:USR1@N sends before the time limit): checkpoint,
# requeue, resume; the weights end equal, bit for bit, to those of the uninterrupted job
j2=$(RUN_DIR=$work/pre sbatch --parsable --ntasks=2 --output="$work/pre.log" \
  jobs/train.sbatch configs/tiny.ini "${steps[@]}")
# a job waiting on it with afterok starts only once the requeued job has finished: it reads the
# final checkpoint's step (it would read the stopped run's step had it started at the requeue)
jd=$(sbatch --parsable --dependency=afterok:"$j2" --output="$work/pre-after.log" --wrap \
  "$PY -c \"import h5py; print('step', h5py.File('$work/pre/checkpoints/latest.h5', 'r').attrs['step'])\"")
for _ in $(seq 300); do grep -q "^epoch 1 step" "$work/pre.log" 2>/dev/null && break; sleep 0.2; done
scancel --batch --signal=USR1 "$j2"
wait_job "$j2" 150 || fail "preempted job $j2 did not finish in 150 s"
wait_job "$jd" 60 || fail "the afterok job $jd after $j2 did not finish in 60 s"
grep -qx "step 200" "$work/pre-after.log" \
  && pass "afterok through a self-requeued job: the dependant ran once it had finished (it read step 200)" \
  || fail "afterok through a requeue: $(cat "$work/pre-after.log")"
grep -q "SIGUSR1 received" "$work/pre.log" && grep -q "stopped by User defined signal 1 after step" "$work/pre.log" \
  && grep -q "requeueing job $j2" "$work/pre.log" && grep -q "start (restart 1)" "$work/pre.log" \
  && grep -q "resuming .* at step" "$work/pre.log" && grep -q "step finished" "$work/pre.log" \
  && pass "USR1: $(grep -o 'stopped by .* after step [0-9]*' "$work/pre.log"), requeued, resumed, finished" \
  || fail "preemption: $(grep -v '^epoch' "$work/pre.log" | tail -6)"
ok=1
for g in /params /ema /adam; do
  same_h5 "$work/plain/checkpoints/latest.h5" "$work/pre/checkpoints/latest.h5" $g $g || ok=0
done
[ $ok = 1 ] && pass "preempted + resumed job ends with the uninterrupted job's weights, EMA and Adam state (bit for bit)" \
  || fail "preempted job's final state differs"

# 3b. scancel (TERM to the batch shell and the step): ddpm checkpoints, and the job ends: it is
# not requeued (a cancelled job requeued by its own script would come back, up to MAX_RESTARTS
# times); its log says how to continue
j3=$(RUN_DIR=$work/cancel sbatch --parsable --ntasks=2 --output="$work/cancel.log" \
  jobs/train.sbatch configs/tiny.ini --set train.max_steps=100000 --set train.log_every=20)
for _ in $(seq 300); do grep -q "^epoch 1 step" "$work/cancel.log" 2>/dev/null && break; sleep 0.2; done
scancel "$j3"
wait_job "$j3" 60 || fail "cancelled job $j3 still queued after 60 s"
sleep 2 # a requeued job would be pending again by now
# (ddpm sees TERM from scancel or USR1 from the batch shell, whichever reaches it first)
[ -z "$(squeue -h -j "$j3" 2>/dev/null)" ] && grep -qE "stopped by (Terminated|User defined signal 1) after step" "$work/cancel.log" \
  && grep -q "stopped by SIGTERM with its progress saved: not requeueing .*to continue later: RUN_DIR=$work/cancel sbatch jobs/train.sbatch configs/tiny.ini" "$work/cancel.log" \
  && ! grep -q "start (restart 1)" "$work/cancel.log" && [ -s "$work/cancel/checkpoints/latest.h5" ] \
  && pass "scancel: $(grep -oE 'stopped by .* after step [0-9]*' "$work/cancel.log"), checkpoint written, the job stays cancelled" \
  || fail "scancel: $(grep -v '^epoch' "$work/cancel.log" | tail -4)"
# 3c. Slurm requeueing a running job (what a preemption with PreemptMode=REQUEUE does): TERM,
# ddpm checkpoints, the script leaves the requeue to Slurm, and the requeued job resumes to the
# uninterrupted job's weights
j3=$(RUN_DIR=$work/slreq sbatch --parsable --ntasks=2 --output="$work/slreq.log" \
  jobs/train.sbatch configs/tiny.ini "${steps[@]}")
for _ in $(seq 300); do grep -q "^epoch 1 step" "$work/slreq.log" 2>/dev/null && break; sleep 0.2; done
scontrol requeue "$j3"
wait_job "$j3" 150 || fail "job $j3 requeued by Slurm did not finish in 150 s"
ok=1
for g in /params /ema /adam; do
  same_h5 "$work/plain/checkpoints/latest.h5" "$work/slreq/checkpoints/latest.h5" $g $g 2>/dev/null || ok=0
done
[ $ok = 1 ] && grep -q "SIGTERM received" "$work/slreq.log" && grep -q "not requeueing" "$work/slreq.log" \
  && grep -q "start (restart 1)" "$work/slreq.log" && grep -q "resuming .* at step" "$work/slreq.log" \
  && grep -q "step finished" "$work/slreq.log" \
  && pass "requeued by Slurm (scontrol requeue): checkpoint on TERM, $(grep -o 'resuming .* at step [0-9]*' "$work/slreq.log" | sed 's/.* at //'), the uninterrupted job's weights" \
  || fail "requeue by Slurm: weights equal $ok; $(grep -v '^epoch' "$work/slreq.log" | tail -5)"
# 3d. LAUNCHER=mpirun inside the allocation: 2 ranks, each on its --cpus-per-task cores (root
# here: Open MPI's mpirun wants to be told that is meant)
j3=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 LAUNCHER=mpirun RUN_DIR=$work/mpirun sbatch --parsable --ntasks=2 --output="$work/mpirun.log" \
  jobs/train.sbatch configs/tiny.ini --set train.max_steps=20)
wait_job "$j3" 120 || fail "LAUNCHER=mpirun job $j3 did not finish in 120 s"
grep -q "layout: 1 node, 2 ranks" "$work/mpirun.log" && grep -q "step finished" "$work/mpirun.log" \
  && pass "LAUNCHER=mpirun: 2 MPI ranks, the step finished" || fail "LAUNCHER=mpirun: $(tail -3 "$work/mpirun.log")"

# 4. an array sweep: one complete run per task, each with its own overrides, at most 2 at a time
j3=$(RUN_ROOT=$work/sweep sbatch --parsable --array=0-2%2 --output="$work/sweep-%a.log" \
  jobs/sweep.sbatch configs/tiny.ini "train.max_steps=40 train.lr=1e-3" \
  "train.max_steps=40 train.lr=5e-4" "train.max_steps=40 train.lr=2e-3 train.ema=0.9")
wait_job "$j3" 120 || fail "sweep $j3 did not finish in 120 s"
$PY - "$work/sweep" "$j3" <<'PY' && pass "sweep: three runs, each complete with its own overrides" || fail "sweep: $(tail -2 "$work"/sweep-*.log)"
import sys, h5py
root, job = sys.argv[1], sys.argv[2]
for i, lr in enumerate(["0.001", "0.0005", "0.002"]):
    d = f"{root}/tiny-{job}_{i}"
    with h5py.File(d + "/checkpoints/latest.h5", "r") as f:
        assert f.attrs["step"] == 40, d
    text = open(d + "/config.ini").read()
    assert f"lr = {lr}\n" in text, (d, [l for l in text.splitlines() if l.startswith("lr")])
    assert ("ema = 0.9\n" in text) == (i == 2)
PY

# 5. a chain: sample runs only after train succeeded (afterok), from the checkpoint it wrote, and
# eval after sample
j4=$(RUN_DIR=$work/chain sbatch --parsable --ntasks=2 --output="$work/chain-train.log" \
  jobs/train.sbatch configs/tiny.ini --set train.max_steps=40)
j5=$(sbatch --parsable --ntasks=2 --dependency=afterok:"$j4" --output="$work/chain-sample.log" \
  jobs/sample.sbatch "$work/chain/checkpoints/latest.h5" "$work/chain/s.h5" --n 20 --batch 8)
j9=$(sbatch --parsable --ntasks=2 --dependency=afterok:"$j5" --output="$work/chain-eval.log" \
  jobs/eval.sbatch "$work/chain/s.h5" "$work/chain/fid.json")
wait_job "$j9" 180 || fail "chain $j4 -> $j5 -> $j9 did not finish in 180 s"
t_train=$(grep "step finished" "$work/chain-train.log" | cut -d' ' -f1)
t_sample=$(grep "sampling" "$work/chain-sample.log" | cut -d' ' -f1)
t_done=$(grep "done:" "$work/chain-sample.log" | cut -d' ' -f1)
t_eval=$(grep "scoring" "$work/chain-eval.log" | cut -d' ' -f1)
[ -s "$work/chain/s.h5" ] && [ -n "$t_train" ] && [ -n "$t_sample" ] && [[ ! "$t_sample" < "$t_train" ]] \
  && pass "chain: train finished at $t_train, sample started at $t_sample and wrote its file" \
  || fail "chain: train '$t_train' sample '$t_sample': $(tail -2 "$work/chain-sample.log")"
[ -s "$work/chain/fid.json" ] && [ -n "$t_eval" ] && [ -n "$t_done" ] && [[ ! "$t_eval" < "$t_done" ]] \
  && pass "chain: eval started at $t_eval after sampling, FID $($PY -c "import json,sys; print(round(json.load(open(sys.argv[1]))['fid'], 1))" "$work/chain/fid.json") (N = 20) in its JSON" \
  || fail "chain eval: $(tail -3 "$work/chain-eval.log")"
# j7 held until j8 depends on it: a j7 that failed and left the queue (MinJobAge) before j8's
# submission would count as a lifted dependency
j7=$(sbatch --parsable --hold --ntasks=1 --output="$work/bad.log" jobs/sample.sbatch "$work/none.h5" "$work/bad.h5")
j8=$(sbatch --parsable --ntasks=1 --dependency=afterok:"$j7" --output="$work/after-bad.log" \
  jobs/sample.sbatch "$work/chain/checkpoints/latest.h5" "$work/after-bad.h5")
scontrol release "$j7"
wait_job "$j7" 60
sleep 4
reason=$(squeue -h -j "$j8" -o %r 2>/dev/null)
[ ! -e "$work/after-bad.h5" ] && [ "$reason" = DependencyNeverSatisfied ] \
  && pass "a job after a failed one does not run ($reason)" || fail "afterok on a failed job: reason '$reason'"
scancel "$j8" 2>/dev/null

# 5a. inside a 2-task allocation: one process started by the batch shell itself runs (it sees the
# allocation's SLURM_NTASKS = 2 but is one process), two srun tasks MPI does not connect are refused
j10=$(sbatch --parsable --ntasks=2 --output="$work/launch.log" --wrap "set -x; \
  $DDPM export --checkpoint $work/chain/checkpoints/latest.h5 --out $work/launch-w.h5; \
  srun --mpi=none -n 2 $DDPM sample --checkpoint $work/launch-w.h5 --n 4 --out $work/launch-s.h5")
wait_job "$j10" 60 || fail "job $j10 did not finish in 60 s"
[ -s "$work/launch-w.h5" ] && grep -q "srun started 2 tasks (SLURM_STEP_NUM_TASKS) but this process is not connected" "$work/launch.log" \
  && [ ! -e "$work/launch-s.h5" ] \
  && pass "2-task allocation: the batch shell's own process runs, srun --mpi=none -n 2 refused" \
  || fail "launch detection in a 2-task allocation: $(grep -v '^+' "$work/launch.log" | tail -3)"

# 5c. a hybrid job: --cpus-per-task=2 gives the task 2 threads (OMP_NUM_THREADS from
# SLURM_CPUS_PER_TASK) on the 2 CPUs it is bound to, without the warning about threads over its
# binding. (jobs/lib.sh passes --cpus-per-task to srun for Slurm versions whose steps do not
# inherit it; Debian's 22.05 here gives a one-task step all the job's CPUs either way, so this
# checks the threads and binding, not that flag.)
j11=$(RUN_DIR=$work/cpt sbatch --parsable --ntasks=1 --cpus-per-task=2 --output="$work/cpt.log" \
  jobs/train.sbatch configs/tiny.ini --set train.max_steps=5)
wait_job "$j11" 60 || fail "job $j11 did not finish in 60 s"
grep -q "1 rank (1 on this node), 2 threads per rank (SLURM_CPUS_PER_TASK)" "$work/cpt.log" \
  && ! grep -q "bound to fewer cores" "$work/cpt.log" && grep -q "step finished" "$work/cpt.log" \
  && pass "--cpus-per-task=2: the task runs 2 threads bound to 2 CPUs" \
  || fail "--cpus-per-task=2: $(grep -v '^epoch' "$work/cpt.log" | tail -4)"

# 5b. a sampling job sent USR1 keeps its finished chunks, requeues itself and finishes from them:
# the same bits as an uninterrupted sampling of the same images
sopts=(--n 600 --batch 8 --sampler ddpm --seed 9)
j6=$(sbatch --parsable --ntasks=2 --output="$work/pre-sample.log" \
  jobs/sample.sbatch "$work/chain/checkpoints/latest.h5" "$work/pre-s.h5" "${sopts[@]}")
for _ in $(seq 300); do [ -e "$work/pre-s.h5.part" ] && break; sleep 0.2; done
sleep 1
scancel --batch --signal=USR1 "$j6"
wait_job "$j6" 150 || fail "preempted sampling job $j6 did not finish in 150 s"
run_ok $DDPM sample --checkpoint "$work/chain/checkpoints/latest.h5" --out "$work/plain-s.h5" "${sopts[@]}"
grep -q "stopped by a signal with [0-9]* of 600 images done" "$work/pre-sample.log" \
  && grep -q "requeueing job $j6" "$work/pre-sample.log" && grep -q "restart 1" "$work/pre-sample.log" \
  && grep -q "resuming .*pre-s.h5.part" "$work/pre-sample.log" && grep -q "done: .*pre-s.h5" "$work/pre-sample.log" \
  && [ ! -e "$work/pre-s.h5.part" ] \
  && pass "sampling job USR1: $(grep -o 'stopped by a signal with [0-9]* of 600' "$work/pre-sample.log") images done, requeued, resumed, finished" \
  || fail "sampling preemption: $(grep -v layout "$work/pre-sample.log" | tail -6)"
same_h5 "$work/plain-s.h5" "$work/pre-s.h5" /samples /samples \
  && pass "preempted + resumed sampling job's images equal an uninterrupted run's (bit for bit)" \
  || fail "preempted sampling job's images differ"

# 6. teardown: no daemons left
slurm_down "$slurmdir"
alive=0
for f in "$slurmdir"/run/*.pid "$slurmdir"/munge/munged.pid; do pid_alive "$f" && alive=1; done
[ $alive = 0 ] && pass "teardown: slurmctld, slurmd and munged stopped" || fail "daemons left running"
[ ${#SLURM_DOWN_KILLED[@]} -eq 0 ] && pass "teardown: scontrol shutdown stopped both Slurm daemons (none needed SIGKILL)" \
  || fail "teardown: ${SLURM_DOWN_KILLED[*]} did not stop (scontrol shutdown, munged SIGTERM) and had to be killed"
finish "Slurm"
