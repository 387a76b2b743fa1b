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
#   requeue_if_stopped    after run_step: on exit 75 (stopped, not finished) requeue this job,
#                         which resumes from the run's latest.h5 (train) or OUT.h5.part
#                         (sample); at most MAX_RESTARTS times. If Slurm refuses the requeue,
#                         the job exits 75, so that an `afterok` dependant does not start.
#   usage_error MESSAGE   a timestamped usage line on stderr, exit 2
#
# The signal traps are set when this file is sourced, so a USR1 or TERM during the script's
# first lines is remembered and passed on once the step exists.

DDPM=${DDPM:-bin/ddpm}
LAUNCHER=${LAUNCHER:-srun}
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
    srun) srun --mpi=pmix --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" "$@" & ;;
    mpirun) mpirun "$@" & ;;
    *) say "LAUNCHER=$LAUNCHER: expected srun or mpirun"; exit 2 ;;
  esac
  _step=$!
  # a signal that came before the step existed (Slurm checks signal times every ~30 s, so it
  # can be early): pass it on once the tasks can have started, and again a few times in case
  # they had not (srun forwards a signal only to tasks already running); ddpm installs its
  # handler first thing and takes a repeat as the same request
  if [ -n "$STOP_SIGNAL" ]; then
    for pause in 1 2 4 8 16; do
      sleep $pause
      kill -0 "$_step" 2>/dev/null || break
      kill -USR1 "$_step" 2>/dev/null
    done
  fi
  # bash runs traps only between commands: `wait` returns early on each signal, so wait again
  # until the step is gone, then once more for its exit status
  while kill -0 "$_step" 2>/dev/null; do wait "$_step"; done
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
  if [ "${SLURM_RESTART_COUNT:-0}" -ge "$MAX_RESTARTS" ]; then
    say "stopped with its progress saved, but restarted ${SLURM_RESTART_COUNT:-0} times already (MAX_RESTARTS=$MAX_RESTARTS): not requeueing; resubmit to continue"
    exit "$STOPPED"
  fi
  say "stopped with its progress saved: requeueing job $SLURM_JOB_ID to resume"
  if ! scontrol requeue "$SLURM_JOB_ID"; then
    say "scontrol requeue refused (a job submitted with --no-requeue?): progress saved; resubmit to continue"
    exit "$STOPPED"
  fi
  exit 0
}
