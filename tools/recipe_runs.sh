#!/usr/bin/env bash
# tools/recipe_runs.sh [ROW ...]: train the runs of the recipe table (results/recipe.md) one
# after another. Each row is configs/unet-s.ini with one change, trained into
# results/runs/recipe-ROW; the row "unet-m" (or "all") is configs/unet-m.ini (every change at
# once) into results/runs/unet-m. Every run starts with --resume, so running the script again after an
# interruption (the end of a session, a kill) continues where each run stopped, and finished
# runs return at once. A run that fails stops the script.
#
#   changes: cosine t1000 scaled larger dropout ema lrwarmup v
#   (scaled: the linear betas of T = 1000 scaled to T = 300, x 1000/300, as Ho et al. scale them;
#   v: the network learns v = sqrt(abar) eps - sqrt(1-abar) x0 instead of eps)
#   default: the table's rows, in this order: ema t1000 scaled cosine cosine+dropout
#   cosine+lrwarmup cosine+larger cosine+v cosine+larger+v unet-m
#   Changes joined by + make one row with all of them: cosine+dropout trains into
#   results/runs/recipe-cosine+dropout (a change on top of the cosine row instead of the reference).
#   LAUNCHER  how to start ddpm (default: mpirun -np 2 with the root flags; "" for one process)
#   BASE      the config the one-change rows start from (default configs/unet-s.ini)
#   EXTRA     more train options for every run (e.g. "--set train.max_steps=2" for a trial,
#             with OUT elsewhere: a later real run would resume from the trial's checkpoints;
#             refused with the default OUT unless WEIGHTS is given)
#   OUT       the folder of the run directories (default results/runs)
#   WEIGHTS   where each finished run's weights go, as WEIGHTS/ROW/final.h5 (and WEIGHTS/unet-m):
#             `ddpm export` (params + EMA, no optimiser state, ~6 MB for unet-s), written when the
#             run's checkpoint is newer. Commit them: run directories are not tracked and do not
#             outlive the machine (default: results when OUT is the default, else none, so that
#             a trial elsewhere never overwrites committed weights; "" for none)
# Run it from the repository root.
set -eu
BASE=${BASE:-configs/unet-s.ini}
OUT=${OUT:-results/runs}
EXTRA=${EXTRA:-}
if [ -z "${WEIGHTS+x}" ]; then
  # a trial (EXTRA such as max_steps=2) into the real run folders would export its weights over
  # the committed ones (and a later real run would resume from it): say where it goes
  if [ -n "$EXTRA" ] && [ "$OUT" = results/runs ]; then
    echo "recipe_runs.sh: EXTRA='$EXTRA' with the default OUT would train into results/runs and export over results/ROW/final.h5: give OUT (a trial's folder), or WEIGHTS=results to mean it" >&2
    exit 2
  fi
  if [ "$OUT" = results/runs ]; then WEIGHTS=results; else WEIGHTS=; fi
fi
if [ -z "${LAUNCHER+x}" ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  LAUNCHER="env -u OMP_NUM_THREADS mpirun -np 2"
fi
one_change() { # the --set options of one change
  case $1 in
    cosine) echo "--set diffusion.schedule=cosine" ;;
    t1000) echo "--set diffusion.T=1000" ;;
    scaled) echo "--set diffusion.beta_start=0.000333333 --set diffusion.beta_end=0.0666667" ;;
    larger) echo "--set model.res_blocks=2 --set model.attn_res=7" ;;
    dropout) echo "--set model.dropout=0.1" ;;
    ema) echo "--set train.ema=0.9999 --set train.ema_warmup=1" ;;
    lrwarmup) echo "--set train.warmup_steps=500" ;;
    v) echo "--set diffusion.prediction=v" ;;
    *) return 1 ;;
  esac
}
change() { # the --set options of a row: one change, or changes joined by + (cosine+dropout)
  local part out=""
  case $1 in +* | *+ | *++*) return 1 ;; esac
  local IFS=+
  for part in $1; do
    [ -n "$part" ] || return 1
    out="$out $(one_change "$part")" || return 1
  done
  echo "${out# }"
}
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(ema t1000 scaled cosine cosine+dropout cosine+lrwarmup cosine+larger
                                cosine+v cosine+larger+v unet-m)
for row in "${rows[@]}"; do # check every name before training anything
  [ "$row" = all ] || [ "$row" = unet-m ] || change "$row" >/dev/null ||
    { echo "recipe_runs.sh: unknown row '$row' (one change: cosine t1000 scaled larger dropout ema lrwarmup v; changes joined by +; or unet-m, all of them)" >&2; exit 2; }
done
for row in "${rows[@]}"; do
  if [ "$row" = all ] || [ "$row" = unet-m ]; then
    name=unet-m run=$OUT/unet-m
    args="--config configs/unet-m.ini --out $run"
  else
    name=$row run=$OUT/recipe-$row
    args="--config $BASE $(change "$row") --out $run"
  fi
  echo "$(date -u +%FT%TZ) recipe_runs.sh: $row: bin/ddpm train $args --resume $EXTRA" >&2
  # word splitting of LAUNCHER, args and EXTRA is intended: none of their words has spaces
  # shellcheck disable=SC2086
  $LAUNCHER bin/ddpm train $args --resume $EXTRA
  [ -n "$WEIGHTS" ] || continue
  w=$WEIGHTS/$name/final.h5
  if [ ! -e "$w" ] || [ "$run/checkpoints/latest.h5" -nt "$w" ]; then
    mkdir -p "$WEIGHTS/$name"
    bin/ddpm export --checkpoint "$run/checkpoints/latest.h5" --out "$w"
    echo "$(date -u +%FT%TZ) recipe_runs.sh: $row: weights in $w" >&2
  fi
done
