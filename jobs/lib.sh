# jobs/lib.sh: what the batch scripts share (sourced by them from $DDPM_HOME/jobs, where
# DDPM_HOME defaults to the directory sbatch was called from: submit from the repository root,
# or set DDPM_HOME).
#
#   say MESSAGE...        a timestamped line in the job log
#   set_threads           OMP_NUM_THREADS from --cpus-per-task; BLIS one thread per call
#   run_step CMD...       CMD as a job step (srun --mpi=pmix, or mpirun with LAUNCHER=mpirun), in
#                         the background so that the batch shell can run its signal traps: USR1
#                         or TERM to the batch shell is passed on as USR1 to the step (ddpm train
#                         then checkpoints at the next step boundary, ddpm sample saves its
#                         finished chunks, and both exit 75). Sets STEP_RC.
#   requeue_if_stopped    after run_step: on exit 75 (stopped, not finished) after USR1 (the
#                         time-limit warning, or `scancel --batch -s USR1`) requeue this job,
#                         which resumes from the run's latest.h5 (train) or OUT.h5.part
#                         (sample); at most MAX_RESTARTS times. After TERM (scancel, a
#                         preemption, the time limit itself) the job is not requeued by the
#                         script: scancel means cancel, and a preemption with PreemptMode=REQUEUE
#                         is requeued by Slurm. When it does not requeue (or Slurm refuses), the
#                         job exits 75, so that an `afterok` dependant does not start, and says
#                         how to continue (CONTINUE, set by the script).
#   usage_error MESSAGE   a timestamped usage line on stderr, exit 2
#
# The signal traps are set when this file is sourced, so a USR1 or TERM during the script's
# first lines is remembered and passed on once the step exists.

DDPM=${DDPM:-${DDPM_HOME:-${SLURM_SUBMIT_DIR:-.}}/bin/ddpm}
LAUNCHER=${LAUNCHER:-srun}
SRUN_MPI=${SRUN_MPI:-pmix} # srun --mpi=SRUN_MPI: the PMI plugin the site's MPI works with
MAX_RESTARTS=${MAX_RESTARTS:-20}
case $MAX_RESTARTS in
  '' | *[!0-9]*) echo "jobs/lib.sh: MAX_RESTARTS=$MAX_RESTARTS: expected a whole number" >&2; exit 2 ;;
esac
STOPPED=75 # ddpm train's and sample's exit status after a signal: progress saved, rerun resumes

say() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) ${SLURM_JOB_NAME:-job} ${SLURM_JOB_ID:-}: $*"; }
usage_error() { say "usage: $*" >&2; exit 2; }

set_threads() {
  export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
  # ddpm threads its layers over images and calls BLIS single-threaded inside them
  export BLIS_NUM_THREADS=1
}

_on_signal() {
  STOP_SIGNAL=$1
  say "SIG$1 received: asking the job step to checkpoint and stop"
  [ -n "${_step:-}" ] && kill -USR1 "$_step" 2>/dev/null
}

STOP_SIGNAL=
_step=
trap '_on_signal USR1' USR1
trap '_on_signal TERM' TERM

run_step() {
  case $LAUNCHER in
    # Slurm from 22.05 on may not pass sbatch's --cpus-per-task on to srun's tasks: give it
    # again, or a task could be bound to one CPU while ddpm starts SLURM_CPUS_PER_TASK threads
    srun) srun --mpi="$SRUN_MPI" --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" "$@" & ;;
    # each rank on its --cpus-per-task cores, as srun binds them
    mpirun) mpirun --map-by "slot:PE=${SLURM_CPUS_PER_TASK:-1}" "$@" & ;;
    *) say "LAUNCHER=$LAUNCHER: expected srun or mpirun"; exit 2 ;;
  esac
  _step=$!
  # bash runs traps only between commands: `wait` returns early on each signal, so wait again
  # until the step is gone, then once more for its exit status. Once a signal has come (before
  # the step existed, or while its tasks may still be starting: srun forwards a signal only to
  # tasks already running), pass it on again after 1, 3, 7, 15 and 31 s while the step runs;
  # ddpm installs its handler first thing and takes a repeat as the same request
  local resent=0 second
  while kill -0 "$_step" 2>/dev/null; do
    if [ -n "$STOP_SIGNAL" ] && [ $resent = 0 ]; then
      resent=1
      for second in $(seq 31); do # looking every second: the job ends as soon as the step does
        sleep 1
        kill -0 "$_step" 2>/dev/null || break
        case $second in 1 | 3 | 7 | 15 | 31) kill -USR1 "$_step" 2>/dev/null ;; esac
      done
    else
      wait "$_step"
    fi
  done
  wait "$_step"
  STEP_RC=$?
}

requeue_if_stopped() {
  if [ "$STEP_RC" -eq 0 ]; then
    say "step finished"
    return 0
  fi
  if [ "$STEP_RC" -ne "$STOPPED" ]; then
    say "step failed with exit status $STEP_RC"
    exit "$STEP_RC"
  fi
  local again=${CONTINUE:-resubmit the job with the same arguments}
  if [ "$STOP_SIGNAL" = TERM ]; then
    say "stopped by SIGTERM with its progress saved: not requeueing (a scancel ends the job; a preemption that requeues it resumes; to continue later: $again)"
    exit "$STOPPED"
  fi
  if [ "${SLURM_RESTART_COUNT:-0}" -ge "$MAX_RESTARTS" ]; then
    say "stopped with its progress saved, but restarted ${SLURM_RESTART_COUNT:-0} times already (MAX_RESTARTS=$MAX_RESTARTS): not requeueing; to continue: $again"
    exit "$STOPPED"
  fi
  say "stopped with its progress saved: requeueing job $SLURM_JOB_ID to resume"
  if ! scontrol requeue "$SLURM_JOB_ID"; then
    say "scontrol requeue refused (a job submitted with --no-requeue?): progress saved; to continue: $again"
    exit "$STOPPED"
  fi
  exit 0
}
