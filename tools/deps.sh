#!/usr/bin/env bash
# deps.sh check|install|figures|slurm|valgrind: find (or install from Debian's archive) what ddpm builds
# and tests with. `check` is quiet and exits 1 when something is missing; `install` apt-gets only
# what is missing; `figures` does the same for the plotting tools (python3-matplotlib), `slurm`
# for the Slurm daemons and munge that tests/cli/test_slurm.sh starts (never needed to build or
# run ddpm, so a cluster's login node without slurmctld still builds).
set -euo pipefail
mode=${1:-check}
case $mode in
  check | install | figures | slurm | valgrind) ;;
  *) echo "deps: unknown mode '$mode' (check, install, figures, slurm or valgrind)" >&2; exit 2 ;;
esac

# header-or-command probe -> Debian package
need=(
  "cmd:mpicc openmpi-bin"
  "cmd:mpicc libopenmpi-dev"
  "pc:hdf5-openmpi libhdf5-openmpi-dev"
  "cmd:h5dump hdf5-tools"
  "cmd:pkg-config pkg-config"
  "file:/usr/include/x86_64-linux-gnu/blis-openmp/blis.h libblis-openmp-dev"
  "file:/usr/include/zlib.h zlib1g-dev"
  "file:/usr/include/png.h libpng-dev"
  "file:/usr/include/ini.h libinih-dev"
  "file:/usr/include/Random123/philox.h librandom123-dev"
  "file:/usr/include/cmocka.h libcmocka-dev"
  "file:/usr/include/lapacke.h liblapacke-dev"
  "py:torch python3-torch"
  "py:h5py python3-h5py"
  "py:numpy python3-numpy"
  "cmd:npm npm"
  "cmd:clang clang"
  "cmd:strace strace"
  "file:/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz dataset-fashion-mnist"
)

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

missing=()
for item in "${need[@]}"; do
  probe=${item%% *}; pkg=${item#* }
  kind=${probe%%:*}; what=${probe#*:}
  case $kind in
    cmd)  command -v "$what" >/dev/null 2>&1 && continue ;;
    pc)   pkg-config --exists "$what" 2>/dev/null && continue ;;
    file) [ -e "$what" ] && continue ;;
    py)   [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import $what" >/dev/null 2>&1 && continue ;;
  esac
  [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$mode" = check ]; then
  echo "deps: missing ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing ${missing[*]} and no apt-get here: load your site's modules (see README)" >&2
  exit 1
fi
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
