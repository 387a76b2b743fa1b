# checks.sh: shared by the end-to-end test scripts (sourced, not run). Sets DDPM, PY, work (a
# temporary directory removed at exit, after unmounting anything listed in `mounts`), and the
# pass/fail/expect_error/run_ok helpers; `finish` prints the summary and sets the exit status.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DDPM=bin/ddpm
PY=/usr/bin/python3
export HDF5_USE_FILE_LOCKING=FALSE
work=$(mktemp -d)
mounts=()
cleanup() { for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
fails=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
# expect_error "what" "needle" cmd...: non-zero exit and exactly one stderr line containing needle
expect_error() {
  local what=$1 needle=$2; shift 2
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && [ -n "$err" ] && grep -qF -- "$needle" <<<"$err" && [ "$(wc -l <<<"$err")" -eq 1 ]; then
    pass "$what: $err"
  else
    fail "$what: rc=$rc, stderr: $err"
  fi
}
# same_h5 A B [OBJ_A OBJ_B]: the two files (or objects) hold the same values and attributes
# (h5diff -c) and the same datasets with the same shapes and types: h5diff alone exits 0 for
# datasets of other shapes ("not comparable") or other types holding equal values
same_h5() {
  local out
  out=$(h5diff -c "$@" 2>&1) || return 1
  ! grep -qi "not comparable" <<<"$out" || return 1
  $PY - "$1" "$2" "${3:-/}" "${4:-${3:-/}}" <<'PY'
import sys, h5py
def layout(path, obj):
    o, found = h5py.File(path, "r")[obj], {}
    if isinstance(o, h5py.Dataset):
        return {"": (o.shape, o.dtype.str)}
    o.visititems(lambda n, x: found.__setitem__(n, (x.shape, x.dtype.str)) if isinstance(x, h5py.Dataset) else None)
    return found
sys.exit(0 if layout(sys.argv[1], sys.argv[3]) == layout(sys.argv[2], sys.argv[4]) else 1)
PY
}
# run_ok cmd...: the command must succeed (its output is dropped); returns 1 after reporting a
# failure, so that `run_ok X && pass ...` never passes after it
run_ok() { "$@" >/dev/null 2>"$work/run_ok.err" && return 0; fail "$* exited $?: $(tail -2 "$work/run_ok.err")"; return 1; }
# skip "what" "why": a check this machine cannot run; counted and named again by finish, so a
# skipped check never reads as a passed one
skipped=()
skip() { echo "SKIP $1: $2"; skipped+=("$1"); }
finish() {
  echo
  if [ $fails -eq 0 ]; then
    if [ ${#skipped[@]} -eq 0 ]; then echo "all $1 checks passed"
    else echo "the $1 checks run passed; ${#skipped[@]} NOT RUN here: ${skipped[*]}"; fi
    exit 0
  fi
  echo "$fails check(s) FAILED"; exit 1
}
