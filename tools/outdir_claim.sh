# tools/outdir_claim.sh, sourced by the scoring scripts (recipe.sh, quality.sh, guidance.sh):
# their reruns resume, skipping every result file that exists, so a folder must never mix the
# results of two checkpoints (or of two N, where names do not carry N). DIR/checkpoint.txt names
# what a folder's files came from: the checkpoint's path and SHA-256, plus whatever else the
# script's file names leave out.

# outdir_identity CHECKPOINT [EXTRA]: the line checkpoint.txt holds
outdir_identity() {
  local sum
  sum=$(sha256sum < "$1" | cut -d' ' -f1) || return 1
  echo "$1 $sum${2:+ $2}"
}

# outdir_same A B: whether two identity lines name the same checkpoint contents and extras (the
# path may be written another way: ./ck.h5, /abs/ck.h5)
outdir_same() {
  local sum='[0-9a-f]{64}( .*)?$'
  [ "$(grep -oE "$sum" <<<"$1")" = "$(grep -oE "$sum" <<<"$2")" ]
}

# outdir_check SCRIPT DIR IDENTITY: refuse (exit 2) a DIR whose files came from something else,
# or that holds files but no checkpoint.txt; an empty or missing DIR is free, and so is one that
# holds only its label (a first run stopped before any result)
outdir_check() {
  local held=$2/checkpoint.txt
  if [ -e "$2" ] && [ ! -d "$2" ]; then
    echo "$1: $2 is not a folder" >&2
    exit 2
  elif [ "$(ls -A "$2" 2>/dev/null)" = checkpoint.txt ]; then
    return 0
  elif [ -s "$held" ]; then
    outdir_same "$(cat "$held")" "$3" && return 0
    echo "$1: $2 holds the results of $(cat "$held"), not of $3: give another folder" >&2
    exit 2
  elif [ -n "$(ls -A "$2" 2>/dev/null)" ]; then
    echo "$1: $2 holds files but no checkpoint.txt: whose samples are they? Give another folder" >&2
    exit 2
  fi
}

# outdir_claim DIR IDENTITY: create DIR and label it (after outdir_check); a label of the same
# checkpoint and extras is kept as written
outdir_claim() {
  mkdir -p "$1" || return 1
  [ -s "$1/checkpoint.txt" ] && outdir_same "$(cat "$1/checkpoint.txt")" "$2" && return 0
  echo "$2" > "$1/checkpoint.txt"
}

# outdir_take SCRIPT CHECKPOINT OUTDIR N: for scripts whose result names carry neither N nor the
# checkpoint: check both arguments, then label OUTDIR with both (refusing another's folder)
outdir_take() {
  case $4 in ''|*[!0-9]*) echo "$1: N = '$4' is not a number of images" >&2; exit 2 ;; esac
  [ -r "$2" ] || { echo "$1: cannot read checkpoint $2" >&2; exit 2; }
  local id
  id=$(outdir_identity "$2" "N=$4")
  outdir_check "$1" "$3" "$id"
  outdir_claim "$3" "$id"
}
