# cluster.sh: a single-node Slurm on localhost for the tests (sourced, not run).
#
#   slurm_up DIR     munged (private key and socket), slurmctld and slurmd, all state, logs and
#                    PID files under DIR; exports SLURM_CONF. If the node is not idle within 30 s
#                    it prints why (node state and reason, both daemons' logs), stops everything
#                    and tries once more on other ports; returns non-zero if that fails too.
#   slurm_down DIR   cancel every job, `scontrol shutdown`, stop munged by its PID file; a daemon
#                    still up after 30 s (munged: 5 s) is killed and named in SLURM_DOWN_KILLED.
#
# Debian's slurm-wlm (22.05) and munge, no systemd and no cgroups: processes are tracked with
# proctrack/linuxproc, tasks bound with task/affinity; MPI steps use PMIx (srun --mpi=pmix).
# Ports are chosen at random below Linux's ephemeral range (32768-60999), so that neither two test
# runs nor the outgoing connections of other programs take them.

slurm_up() {
  slurm_try_up "$1" && return 0
  echo "slurm did not come up; trying once more on other ports" >&2
  slurm_down "$1"
  rm -rf "$1"
  slurm_try_up "$1"
}

slurm_try_up() {
  local dir=$1 port node
  mkdir -p "$dir/munge" "$dir/munge-key" "$dir/state" "$dir/spool" "$dir/run"
  chmod 0755 "$dir" "$dir/munge" # munged checks that every directory above its socket is searchable
  chmod 0700 "$dir/munge-key"
  mungekey --create --keyfile="$dir/munge-key/munge.key" 2>"$dir/mungekey.log" || return 1
  munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge-key/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge-key/munged.seed" || return 1
  port=$(shuf -i 20000-32000 -n 1)
  # the node as slurmd sees it, at 127.0.0.1 (no name lookup) and without RealMemory (memory is
  # not scheduled here; a node reporting less than its line says would register as invalid)
  node="$(slurmd -C | head -1 | sed 's/ RealMemory=[0-9]*//') NodeAddr=127.0.0.1"
  : >"$dir/plugstack.conf"
  cat >"$dir/slurm.conf" <<CONF
ClusterName=ddpmtest
SlurmctldHost=$(hostname)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
JobRequeue=1
MinJobAge=5
SchedulerParameters=sched_interval=2,bf_interval=2
PlugStackConfig=$dir/plugstack.conf
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF" -c -i || return 1
  slurmd -f "$SLURM_CONF" || return 1
  for _ in $(seq 150); do
    sinfo -h -o %T 2>/dev/null | grep -q idle && return 0
    sleep 0.2
  done
  echo "slurm did not come up within 30 s; node state and reason:" >&2
  sinfo -N -h -o '%N %T %E' >&2 2>&1
  echo "slurmctld.log:" >&2
  tail -8 "$dir/slurmctld.log" >&2
  echo "slurmd.log:" >&2
  tail -8 "$dir/slurmd.log" >&2
  return 1
}

slurm_down() {
  local dir=$1
  SLURM_DOWN_KILLED=() # daemons that ignored `scontrol shutdown` (or munged SIGTERM) and were killed
  if [ -f "$dir/slurm.conf" ]; then
    export SLURM_CONF=$dir/slurm.conf
    if pid_alive "$dir/run/slurmctld.pid"; then
      scancel --full --quiet $(squeue -h -o %A 2>/dev/null) 2>/dev/null
      scontrol shutdown >/dev/null 2>&1
    fi
    for _ in $(seq 300); do # up to 30 s: slurmctld saves its state and stops slurmd first
      pid_alive "$dir/run/slurmctld.pid" || pid_alive "$dir/run/slurmd.pid" || break
      sleep 0.1
    done
    for f in "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid"; do
      pid_alive "$f" && kill -KILL "$(cat "$f")" 2>/dev/null && SLURM_DOWN_KILLED+=("$(basename "$f" .pid)")
    done
  fi
  if pid_alive "$dir/munge/munged.pid"; then
    kill "$(cat "$dir/munge/munged.pid")" 2>/dev/null
    for _ in $(seq 50); do pid_alive "$dir/munge/munged.pid" || break; sleep 0.1; done
    pid_alive "$dir/munge/munged.pid" && kill -KILL "$(cat "$dir/munge/munged.pid")" 2>/dev/null \
      && SLURM_DOWN_KILLED+=(munged)
  fi
  return 0
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
