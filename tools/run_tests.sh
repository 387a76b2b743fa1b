#!/usr/bin/env bash
# run_tests.sh BIN...: run each test binary, print a summary, exit non-zero if any failed.
# Tests find the PyTorch fixture through DDPM_REFERENCE (default build/ref/reference.h5).
set -u
export DDPM_REFERENCE=${DDPM_REFERENCE:-build/ref/reference.h5}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# the tests start their own MPI jobs and Slurm: nothing of a launcher the suite itself runs under
for v in $(compgen -e | grep -E '^(SLURM_|PMIX_|PMI_|OMPI_COMM_WORLD_|OMPI_MCA_ess)'); do unset "$v"; done
failed=()
for t in "$@"; do
  echo "== $t"
  start=$(date +%s)
  if "$t"; then echo "-- $t passed ($(( $(date +%s) - start )) s)"
  else echo "-- $t FAILED"; failed+=("$t"); fi
done
echo
if [ ${#failed[@]} -ne 0 ]; then echo "FAILED: ${failed[*]}"; exit 1; fi
echo "all ${#} test programs passed"
