#!/usr/bin/env bash
# test_tools.sh: the HDF5 layout of every file kind against docs/hdf5-layout.md (h5dump -H), and
# the analysis tools in tools/ on real outputs: plot_metrics.py, show_samples.py, torch_load.py,
# recipe.sh, quality.sh, guidance.sh, recipe_runs.sh, plot_recipe.py, average_weights.py and
# device_recipe.sh.
set -u
source "$(dirname "$0")/checks.sh"
LAYOUT="$PY tests/cli/hdf5_layout.py check docs/hdf5-layout.md"

# one file of each kind, from a short real run
run_ok $DDPM train --config configs/tiny.ini --set train.max_steps=4 --out "$work/run"
ck="$work/run/checkpoints/latest.h5"
run_ok $DDPM export --checkpoint "$ck" --out "$work/weights.h5"
run_ok $DDPM sample --checkpoint "$ck" --n 6 --trajectory --out "$work/s.h5"
# a sampling progress file: the part a stopped run leaves (SIGUSR1 once the file exists)
$DDPM sample --checkpoint "$ck" --n 400 --batch 2 --sampler ddpm --trajectory --out "$work/cut.h5" >/dev/null 2>&1 & pid=$!
for _ in $(seq 200); do [ -e "$work/cut.h5.part" ] && break; sleep 0.05; done
kill -USR1 $pid; wait $pid
# and one of a dpmpp2m chunk stopped part-way (at its 3rd step: /x0_prev)
DDPM_TEST_STOP_CHECK=3 $DDPM sample --checkpoint "$ck" --n 4 --sampler dpmpp2m --steps 10 --out "$work/dp.h5" >/dev/null 2>&1
$PY -c "import h5py, numpy as np, sys; h5py.File(sys.argv[1], 'w')['x'] = np.zeros((2, 1, 28, 28), np.float32)" "$work/x.h5"
run_ok $DDPM predict --checkpoint "$ck" --x "$work/x.h5" --t 7 --out "$work/p.h5"
run_ok $DDPM noise-strip --config configs/tiny.ini --n 2 --frames 3 --out "$work/ns.png" --h5 "$work/ns.h5"
run_ok $DDPM train --config configs/tiny.ini --set model.classes=10 --set train.max_steps=4 --out "$work/cond"
run_ok $DDPM sample --checkpoint "$work/cond/checkpoints/latest.h5" --n 6 --classes 0-2 --guidance 1 --out "$work/cs.h5"
run_ok $DDPM sample --checkpoint "$work/cond/checkpoints/latest.h5" --n 6 --classes 0-2 --trajectory --out "$work/cst.h5"
for pair in "Checkpoint:$ck" "Weights only:$work/weights.h5" "Samples:$work/s.h5" \
            "Samples:$work/run/samples/generated.h5" "Conditional samples:$work/cst.h5" \
            "Conditional samples:$work/cs.h5" "Checkpoint:$work/cond/checkpoints/latest.h5" \
            "Metrics:$work/run/metrics.h5" "Classifier:results/classifier/mnist-classifier.h5" \
            "Prediction:$work/p.h5" "Sampling progress:$work/cut.h5.part" \
            "Sampling progress:$work/dp.h5.part" "Noise strip:$work/ns.h5"; do
  kind=${pair%%:*}; file=${pair#*:}
  $LAYOUT "$kind:" "$file" && pass "$kind file matches docs/hdf5-layout.md (h5dump -H)" || fail "$kind file differs from docs/hdf5-layout.md"
done
# the optional objects of the progress table are there when they should be
$PY - "$work/cut.h5.part" "$work/dp.h5.part" "$work/s.h5" "$work/cst.h5" "$work/run/samples/generated.h5" <<'PY' \
  && pass "the files hold their optional objects where they belong (a trajectory with --trajectory only; a dpmpp2m chunk's /x0_prev)" || fail "an optional object is missing where it belongs"
import sys, h5py
with h5py.File(sys.argv[1], "r") as cut, h5py.File(sys.argv[2], "r") as dp:
    assert "trajectory" in cut and "trajectory_t" in cut and "x0_prev" not in cut
    assert "x0_prev" in dp and "trajectory" not in dp and dp["steps_done"][0] == 3
for p, want in ((sys.argv[3], True), (sys.argv[4], True), (sys.argv[5], False)):
    with h5py.File(p, "r") as f:
        assert ("trajectory" in f) == ("trajectory_t" in f) == want, p
PY
cp "$work/s.h5" "$work/odd.h5"
$PY -c "import h5py, sys; h5py.File(sys.argv[1], 'a').attrs['surprise'] = 1" "$work/odd.h5"
out=$($LAYOUT "Samples:" "$work/odd.h5" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "attributes .*'surprise'" <<<"$out" && pass "the layout check catches an undocumented attribute" \
  || fail "an undocumented attribute: rc=$rc, $(head -2 <<<"$out")"

# tools
$PY tools/plot_metrics.py "$work/run" >"$work/plot.log" 2>&1 && [ -s "$work/run/metrics.png" ] \
  && pass "plot_metrics.py: $(cat "$work/plot.log")" || fail "plot_metrics.py: $(cat "$work/plot.log")"
$PY tools/plot_metrics.py "$work/run" "$work/loss.png" --loss-only >/dev/null 2>&1 && [ -s "$work/loss.png" ] \
  && pass "plot_metrics.py --loss-only" || fail "plot_metrics.py --loss-only"
# its moving average skips NaN rows (skipped steps, a metrics.h5 made again after a loss) instead
# of blanking a window after each; steps per epoch from final.h5 where no checkpoint is kept
$PY - <<'PY' && pass "plot_metrics.py: NaN rows left out of the moving average; steps per epoch from final.h5 (results/unet-s: 468)" \
  || fail "plot_metrics.py helpers"
import sys, numpy as np
sys.path.insert(0, "tools")
import plot_metrics as pm
x = np.r_[np.full(150, np.nan), np.arange(1.0, 301.0)]
avg = pm.moving_average(x, 100)
assert np.isnan(avg[:51]).all() and np.isfinite(avg[51:]).all(), avg[45:60]
assert avg[51] == 1.0 and avg[-1] == np.mean(np.arange(201.0, 301.0)), (avg[51], avg[-1])
assert pm.steps_per_epoch("results/unet-s") == 468
PY
# plot_epochs.py: epochs in numeric order past 999, the weights named from the files
$PY -c "
import h5py, numpy as np, os, sys
os.makedirs(sys.argv[1] + '/samples')
for e in (2, 1000, 1):
    with h5py.File(f'{sys.argv[1]}/samples/epoch_{e:03d}.h5', 'w') as f:
        f['samples'] = np.zeros((8, 1, 28, 28), np.float32); f.attrs['weights'] = 'model'
" "$work/ep"
out=$($PY tools/plot_epochs.py "$work/ep" "$work/ep.png" 2>&1)
[ "$out" = "$work/ep.png: 3 epochs (1, 2, 1000), raw weights" ] && [ -s "$work/ep.png" ] \
  && pass "plot_epochs.py: $out" || fail "plot_epochs.py: $out"
$PY tools/plot_metrics.py --help | grep -q "^plot_metrics.py RUN_DIR" && pass "plot_metrics.py --help prints its usage" || fail "plot_metrics.py --help"
expect_error "plot_metrics.py on a folder without metrics.h5" "$work/nothing/metrics.h5: no such file" $PY tools/plot_metrics.py "$work/nothing"
$PY tools/show_samples.py "$work/s.h5" "$work/grid.png" >"$work/show.log" 2>&1 && [ -s "$work/grid.png" ] \
  && pass "show_samples.py: $(cat "$work/show.log")" || fail "show_samples.py: $(cat "$work/show.log")"
out=$($PY tools/show_samples.py "$work/p.h5" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "has no dataset /samples" <<<"$out" && pass "show_samples.py refuses a file without /samples: $out" \
  || fail "show_samples.py on a file without /samples: rc=$rc, $out"
out=$($PY tools/torch_load.py results/unet-s/final.h5 --check 2>&1) && pass "torch_load.py --check: $out" \
  || fail "torch_load.py --check: $out"
run_ok $DDPM train --config configs/unet-s-cond.ini --set train.max_steps=3 --set sample.n=2 --set sample.steps=2 --out "$work/scond"
out=$($PY tools/torch_load.py "$work/scond/checkpoints/latest.h5" --check 2>&1) \
  && pass "torch_load.py --check, class-conditional unet-s (PyTorch nn.Embedding on the time embedding): $(tr '\n' ' ' <<<"$out")" \
  || fail "torch_load.py --check conditional: $out"
run_ok $DDPM train --config configs/unet-s.ini --set diffusion.prediction=v --set train.max_steps=2 --set sample.n=2 --set sample.steps=2 --out "$work/sv"
out=$($PY tools/torch_load.py "$work/sv/checkpoints/latest.h5" --check 2>&1) \
  && pass "torch_load.py --check, v-prediction unet-s (the network's output, /v of ddpm predict): $out" \
  || fail "torch_load.py --check v-prediction: $out"
out=$($PY tools/torch_load.py "$ck" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "the PyTorch mirror" <<<"$out" && pass "torch_load.py refuses another architecture: $out" \
  || fail "torch_load.py with a tiny checkpoint: rc=$rc, $out"
# recipe.sh: the table's numbers are the JSON of `ddpm eval`; a rerun resumes without sampling;
# N_DDPM < N adds the DDIM-50 eta 0 column at N; another checkpoint under a used name is refused
if N_DDPM=8 tools/recipe.sh "$work/recipe" 12 tiny="$ck" >"$work/recipe.md" 2>"$work/recipe.err"; then
  $PY - "$work/recipe" "$work/recipe.md" <<'PY' && pass "recipe.sh: one row per run, FIDs, the eta 0 / DDPM ratio at one N, precision/recall from ddpm eval's JSON, T and schedule from the checkpoint" || fail "recipe.sh table: $(cat "$work/recipe.md")"
import json, sys
out, md = sys.argv[1], open(sys.argv[2]).read().splitlines()
head = [l for l in md if l.startswith("| run |")][0]
assert "DDPM, T steps (N = 8)" in head and "DDIM-50 eta 0 (N = 12)" in head and "DDIM-50 eta 1 (N = 12)" in head, head
row = [l for l in md if l.startswith("| tiny |")]
assert len(row) == 1, md
cells = [c.strip() for c in row[0].strip("|").split("|")]
j = lambda s, n: json.load(open(f"{out}/tiny/{s}-clip-n{n}.json"))
import h5py
with h5py.File(f"{out}/tiny/ddpm-clip-n8.h5", "r") as f:
    assert int(f.attrs["clip"]) == 1 and f.attrs["sampler"] in ("ddpm", b"ddpm"), dict(f.attrs)
assert "x0 estimates clamped" in "\n".join(md)
ddpm, e0 = j("ddpm", 8), j("ddim50-eta0", 8)
assert ddpm["n"] == 8 and e0["n"] == 8 and j("ddim50-eta1", 12)["n"] == 12
assert cells[1] == "100, linear", cells
assert abs(float(cells[2]) - ddpm["fid"]) <= 0.051 and abs(float(cells[3]) - e0["fid"]) <= 0.051, cells
assert abs(float(cells[4]) - e0["fid"] / ddpm["fid"]) <= 0.0051, cells
assert abs(float(cells[5]) - j("ddim50-eta0", 12)["fid"]) <= 0.051 and abs(float(cells[6]) - j("ddim50-eta1", 12)["fid"]) <= 0.051, cells
assert cells[7] == f"{ddpm['precision']:.3f} / {ddpm['recall']:.3f}", cells
PY
  before=$(stat -c %Y "$work/recipe/tiny/ddpm-clip-n8.h5")
  rm "$work/recipe/tiny/ddpm-clip-n8.json" # scored again from the samples file, not sampled again
  sleep 1
  N_DDPM=8 tools/recipe.sh "$work/recipe" 12 tiny="$ck" >"$work/recipe2.md" 2>/dev/null \
    && cmp -s <(grep '^|' "$work/recipe.md") <(grep '^|' "$work/recipe2.md") \
    && [ "$(stat -c %Y "$work/recipe/tiny/ddpm-clip-n8.h5")" = "$before" ] \
    && [ -s "$work/recipe/tiny/ddpm-clip-n8.json" ] \
    && pass "recipe.sh rerun: same table, nothing sampled again (a missing score recomputed from the samples file)" || fail "recipe.sh rerun: $(cat "$work/recipe2.md")"
  out=$(tools/recipe.sh "$work/recipe" 12 tiny="$work/weights.h5" 2>&1); rc=$?
  [ $rc -ne 0 ] && grep -q "holds the results of .*, not of $work/weights.h5 " <<<"$out" \
    && pass "recipe.sh refuses a name that holds another checkpoint's samples: $out" || fail "recipe.sh, two checkpoints under one name: rc=$rc, $out"
  # plot_recipe.py: the bars of the same table, at one N for all three samplers
  tools/recipe.sh "$work/recipe" 12 tiny="$ck" >/dev/null 2>&1 \
    && $PY tools/plot_recipe.py "$work/recipe" "$work/recipe.png" --n 12 >"$work/plotr.log" 2>&1 && [ -s "$work/recipe.png" ] \
    && $PY - "$work/recipe/tiny" "$work/plotr.log" <<'PY' && pass "plot_recipe.py: $(head -1 "$work/plotr.log")" || fail "plot_recipe.py: $(cat "$work/plotr.log")"
import json, sys
d, log = sys.argv[1], open(sys.argv[2]).read()
f = [json.load(open(f"{d}/{k}-clip-n12.json"))["fid"] for k in ("ddpm", "ddim50-eta0", "ddim50-eta1")]
want = f"tiny: DDPM {f[0]:.1f}, DDIM-50 eta 0 {f[1]:.1f}, eta 1 {f[2]:.1f}"
assert want in log, (want, log)
PY
  # a row without a DDPM score at its N (the N = 10,000 columns) is drawn with the bars it has
  mkdir -p "$work/recipe-part/tiny" && cp "$work"/recipe/tiny/ddim50-eta*-clip-n12.json "$work/recipe-part/tiny/"
  $PY tools/plot_recipe.py "$work/recipe-part" "$work/part.png" --n 12 >"$work/plotp.log" 2>&1 && [ -s "$work/part.png" ] \
    && grep -q "^tiny: DDPM -, DDIM-50 eta 0 $(sed -n 's/.*eta 0 \([0-9.]*\),.*/\1/p' "$work/plotr.log"), eta 1" "$work/plotp.log" \
    && pass "plot_recipe.py draws a row without its DDPM score: $(head -1 "$work/plotp.log")" || fail "plot_recipe.py, partial row: $(cat "$work/plotp.log")"
  out=$($PY tools/plot_recipe.py "$work/recipe" "$work/r.png" --n 99 2>&1); rc=$?
  [ $rc -ne 0 ] && grep -q "has N = 99 scores\|has no N = 99 score" <<<"$out" \
    && pass "plot_recipe.py refuses an N no row was scored at: $out" || fail "plot_recipe.py --n 99: rc=$rc, $out"
else
  fail "recipe.sh: $(tail -3 "$work/recipe.err")"
fi
out=$(tools/recipe.sh "$work/recipe" 12 "$ck" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "is not NAME=CHECKPOINT" <<<"$out" && pass "recipe.sh refuses an argument that is not NAME=CHECKPOINT: $out" \
  || fail "recipe.sh with an unnamed checkpoint: rc=$rc, $out"
# quality.sh and guidance.sh: the tables are ddpm eval's JSON; a rerun resumes without sampling;
# their result names carry neither N nor the checkpoint, so a folder of another N or checkpoint
# (or of unlabelled files) is refused before anything is written
if tools/quality.sh "$ck" "$work/q" 8 >"$work/q.md" 2>"$work/q.err"; then
  $PY - "$work/q" "$work/q.md" <<'PY' && pass "quality.sh: one row per sampler setting, the FIDs of ddpm eval's JSON (N = 8)" || fail "quality.sh table: $(cat "$work/q.md")"
import json, sys
out, md = sys.argv[1], [l for l in open(sys.argv[2]).read().splitlines() if l.startswith("|")]
assert "FID (N = 8)" in md[0], md[0]
rows = md[2:]
names = ["real-train", "ddpm100-ema", "ddpm100-raw"] + [f"ddim{k}-eta{e}" for e in (1, 0) for k in (10, 20, 50, 100)]
assert len(rows) == len(names), rows
for line, name in zip(rows, names):
    r = json.load(open(f"{out}/{name}.json"))
    assert r["n"] == 8 and line.split("|")[4].strip() == f"{r['fid']:.2f}", (line, name, r["fid"])
PY
  before=$(stat -c %Y "$work/q/ddpm100-ema.h5")
  sleep 1
  # the same checkpoint by another path: the same folder, resumed
  tools/quality.sh "$work/run/../run/checkpoints/latest.h5" "$work/q" 8 >"$work/q2.md" 2>/dev/null && cmp -s <(grep '^|' "$work/q.md") <(grep '^|' "$work/q2.md") \
    && ! grep -q "^sampled" "$work/q2.md" \
    && [ "$(stat -c %Y "$work/q/ddpm100-ema.h5")" = "$before" ] \
    && pass "quality.sh rerun (the checkpoint by another path): the same table, nothing sampled again" || fail "quality.sh rerun: $(cat "$work/q2.md")"
  ls "$work/q" > "$work/q.ls"
  out=$(tools/quality.sh "$ck" "$work/q" 12 2>&1); rc=$?
  [ $rc -eq 2 ] && grep -q "holds the results of $ck [0-9a-f]* N=8, not of $ck [0-9a-f]* N=12" <<<"$out" \
    && cmp -s "$work/q.ls" <(ls "$work/q") && [ "$(cat "$work/q/checkpoint.txt")" = "$ck $(sha256sum < "$ck" | cut -d' ' -f1) N=8" ] \
    && pass "quality.sh refuses a folder of another N, writing nothing: $out" || fail "quality.sh, N = 12 into N = 8's folder: rc=$rc, $out"
  out=$(tools/quality.sh "$work/weights.h5" "$work/q" 8 2>&1); rc=$?
  [ $rc -eq 2 ] && grep -q "not of $work/weights.h5 " <<<"$out" \
    && pass "quality.sh refuses a folder of another checkpoint: $out" || fail "quality.sh, another checkpoint: rc=$rc, $out"
else
  fail "quality.sh: $(tail -3 "$work/q.err")"
fi
mkdir -p "$work/g-old" && touch "$work/g-old/w1.json"
out=$(tools/guidance.sh "$work/cond/checkpoints/latest.h5" "$work/g-old" 20 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "holds files but no checkpoint.txt" <<<"$out" && [ ! -e "$work/g-old/checkpoint.txt" ] \
  && pass "guidance.sh refuses a folder of unlabelled results: $out" || fail "guidance.sh, unlabelled folder: rc=$rc, $out"
if tools/guidance.sh "$work/cond/checkpoints/latest.h5" "$work/g" 20 >"$work/g.md" 2>"$work/g.err"; then
  $PY - "$work/g" "$work/g.md" <<'PY' && pass "guidance.sh: the floor, the null label and W = 0..4, FIDs and label match of ddpm eval's JSON (N = 20)" || fail "guidance.sh table: $(cat "$work/g.md")"
import json, sys
out, md = sys.argv[1], [l for l in open(sys.argv[2]).read().splitlines() if l.startswith("|")]
rows = md[2:]
names = ["real-train", "unconditional"] + [f"w{w}" for w in ("0", "0.5", "1", "2", "4")]
assert len(rows) == len(names), rows
for line, name in zip(rows, names):
    r = json.load(open(f"{out}/{name}.json"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert r["n"] == 20 and cells[3] == f"{r['fid']:.2f}", (line, r)
    if name.startswith("w"):
        assert cells[4] == f"{100 * r['label_match']:.1f}%" and cells[1] == name[1:], cells
PY
  out=$(tools/guidance.sh "$ck" "$work/g" 20 2>&1); rc=$?
  [ $rc -eq 2 ] && grep -q "not of $ck " <<<"$out" \
    && pass "guidance.sh refuses a folder of another checkpoint: $out" || fail "guidance.sh, another checkpoint: rc=$rc, $out"
else
  fail "guidance.sh: $(tail -3 "$work/g.err")"
fi
# recipe_runs.sh: each row trains its one change; a rerun resumes (finished runs stay finished)
rr() { LAUNCHER= BASE=configs/tiny.ini OUT="$work/rr" WEIGHTS="$work/rw" EXTRA="--set train.max_steps=2 --set sample.n=2 --set sample.steps=2" tools/recipe_runs.sh "$@"; }
if rr cosine dropout scaled cosine+dropout cosine+v >"$work/rr.log" 2>&1; then
  grep -qx "schedule = cosine" "$work/rr/recipe-cosine/config.ini" && grep -qx "dropout = 0" "$work/rr/recipe-cosine/config.ini" \
    && grep -qx "dropout = 0.1" "$work/rr/recipe-dropout/config.ini" && grep -qx "schedule = linear" "$work/rr/recipe-dropout/config.ini" \
    && grep -qx "beta_end = 0.0666667" "$work/rr/recipe-scaled/config.ini" && grep -qx "beta_end = 0.02" "$work/rr/recipe-dropout/config.ini" \
    && grep -qx "dropout = 0" "$work/rr/recipe-scaled/config.ini" \
    && grep -qx "dropout = 0.1" "$work/rr/recipe-cosine+dropout/config.ini" && grep -qx "schedule = cosine" "$work/rr/recipe-cosine+dropout/config.ini" \
    && grep -qx "prediction = eps" "$work/rr/recipe-cosine/config.ini" \
    && grep -qx "prediction = v" "$work/rr/recipe-cosine+v/config.ini" && grep -qx "schedule = cosine" "$work/rr/recipe-cosine+v/config.ini" \
    && pass "recipe_runs.sh: each row's run has its one change (cosine+dropout, cosine+v: both)" || fail "recipe_runs.sh configs: $(grep -h 'schedule\|dropout\|beta_end' "$work"/rr/*/config.ini)"
  ok=1
  for row in cosine dropout scaled cosine+dropout; do
    same_h5 "$work/rr/recipe-$row/checkpoints/latest.h5" "$work/rw/$row/final.h5" /params /params || ok=0
    same_h5 "$work/rr/recipe-$row/checkpoints/latest.h5" "$work/rw/$row/final.h5" /ema /ema || ok=0
  done
  [ $ok = 1 ] && pass "recipe_runs.sh: each finished run's params and EMA exported to WEIGHTS/ROW/final.h5" \
    || fail "recipe_runs.sh weights: $(ls -R "$work/rw" 2>&1 | head -5)"
  sum=$(md5sum < "$work/rr/recipe-cosine/checkpoints/latest.h5")
  rr cosine >"$work/rr2.log" 2>&1 && grep -q "done: step 2" "$work/rr2.log" && [ "$(md5sum < "$work/rr/recipe-cosine/checkpoints/latest.h5")" = "$sum" ] \
    && pass "recipe_runs.sh rerun: the finished run resumes at its end and trains no further" || fail "recipe_runs.sh rerun: $(tail -3 "$work/rr2.log")"
else
  fail "recipe_runs.sh: $(tail -3 "$work/rr.log")"
fi
# a trial with OUT elsewhere and WEIGHTS unset leaves the committed weights alone
before=$(md5sum < results/cosine/final.h5)
LAUNCHER= BASE=configs/tiny.ini OUT="$work/rr3" EXTRA="--set train.max_steps=1 --set sample.n=2 --set sample.steps=2" \
  tools/recipe_runs.sh cosine >"$work/rr3.log" 2>&1 && [ "$(md5sum < results/cosine/final.h5)" = "$before" ] \
  && ! grep -q "weights in" "$work/rr3.log" \
  && pass "recipe_runs.sh: a trial with OUT elsewhere exports no weights into results/" \
  || fail "recipe_runs.sh trial: $(tail -3 "$work/rr3.log")"
# refused with status 2 and the name, before anything starts (a launcher that cannot start ddpm
# and a run folder that must not appear)
for rows in "cosine bogus" "cosine+bogus"; do
  # shellcheck disable=SC2086
  out=$(OUT="$work/rr4" LAUNCHER=false tools/recipe_runs.sh $rows 2>&1); rc=$?
  bad=${rows#* }; bad=${bad#cosine+}
  [ $rc -eq 2 ] && grep -qF "unknown row '${rows##* }'" <<<"$out" && [ ! -e "$work/rr4" ] \
    && pass "recipe_runs.sh refuses an unknown row or change ($bad) before training anything: $out" \
    || fail "recipe_runs.sh $rows: rc=$rc, $out"
done
# a trial (EXTRA) into the default run folders, which would export over the committed weights
out=$(EXTRA="--set train.max_steps=2" LAUNCHER=false tools/recipe_runs.sh ema 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "with the default OUT would train into results/runs" <<<"$out" \
  && pass "recipe_runs.sh refuses a trial into the default folders: $out" || fail "recipe_runs.sh trial into results/runs: rc=$rc, $out"
# the row unet-m is configs/unet-m.ini (LAUNCHER=false: the command is logged, then fails)
out=$(OUT="$work/rr5" WEIGHTS= LAUNCHER=false tools/recipe_runs.sh unet-m 2>&1); rc=$?
[ $rc -eq 1 ] && grep -qF "unet-m: bin/ddpm train --config configs/unet-m.ini --out $work/rr5/unet-m --resume" <<<"$out" \
  && pass "recipe_runs.sh unet-m: the row of configs/unet-m.ini" || fail "recipe_runs.sh unet-m: rc=$rc, $out"
# average_weights.py: the output's /ema is the tensor-wise mean of the checkpoints' /ema (here of
# one run at step 4 and, resumed with more steps, at step 6), /params the last one's; ddpm samples
# from it; a checkpoint of another network is refused
run_ok $DDPM train --config configs/tiny.ini --set train.max_steps=4 --out "$work/avg"
cp "$work/avg/checkpoints/latest.h5" "$work/avg4.h5"
run_ok $DDPM train --config configs/tiny.ini --set train.max_steps=6 --out "$work/avg" --resume
if $PY tools/average_weights.py "$work/avgw.h5" ema "$work/avg4.h5" "$work/avg/checkpoints/latest.h5" >"$work/avg.log" 2>&1 &&
   $PY - "$work/avgw.h5" "$work/avg4.h5" "$work/avg/checkpoints/latest.h5" <<'PY'
import sys, h5py, numpy as np
o, a, b = (h5py.File(p, "r") for p in sys.argv[1:])
assert a.attrs["step"] == 4 and b.attrs["step"] == 6 and o.attrs["content"] == b"weights" and "adam" not in o
assert len(o["ema"]) == len(b["ema"]) == 80
for n in b["ema"]:
    want = ((a["ema"][n][()].astype(np.float64) + b["ema"][n][()]) / 2).astype(np.float32)
    assert np.array_equal(o["ema"][n][()], want), n
    assert np.array_equal(o["params"][n][()], b["params"][n][()]), n
assert not np.array_equal(a["ema"]["out_conv.weight"][()], b["ema"]["out_conv.weight"][()])
PY
then pass "average_weights.py: /ema the mean of steps 4 and 6, tensor by tensor; $(cat "$work/avg.log")"
else fail "average_weights.py: $(cat "$work/avg.log")"; fi
run_ok $DDPM sample --checkpoint "$work/avgw.h5" --n 2 --sampler ddim --steps 2 --out "$work/avgs.h5"
$LAYOUT "Averaged weights:" "$work/avgw.h5" && pass "average_weights.py's file matches docs/hdf5-layout.md (h5dump -H)" \
  || fail "average_weights.py's file differs from docs/hdf5-layout.md"
# export keeps the root attributes other tools added (averaged_from; a variable-length string and
# an array written by h5py) and writes its own (content = weights)
cp "$work/avgw.h5" "$work/avgx.h5"
$PY -c "import h5py, sys, numpy as np; f = h5py.File(sys.argv[1], 'a'); f.attrs['note'] = 'päired run'; f.attrs['lrs'] = np.array([1e-3, 5e-4])" "$work/avgx.h5"
run_ok $DDPM export --checkpoint "$work/avgw.h5" --out "$work/avgw-e.h5" \
  && $LAYOUT "Averaged weights:" "$work/avgw-e.h5" >/dev/null \
  && run_ok $DDPM export --checkpoint "$work/avgx.h5" --out "$work/avgx-w.h5" \
  && $PY - "$work/avgx.h5" "$work/avgx-w.h5" <<'PY' \
  && pass "export keeps the attributes other tools added (averaged_from: the layout of averaged weights; a UTF-8 string, an array)" \
  || fail "export lost or changed an attribute another tool added"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
assert set(a.attrs) == set(b.attrs), set(a.attrs) ^ set(b.attrs)
for k in a.attrs:
    assert np.array_equal(a.attrs[k], b.attrs[k]), k
assert b.attrs["note"] == "päired run" and list(b.attrs["lrs"]) == [1e-3, 5e-4]
assert b["/ema"].keys() == a["/ema"].keys()
PY
# refused: the same tensors under another diffusion (T = 50), another network (class-conditional),
# a file with one tensor missing
run_ok $DDPM train --config configs/tiny.ini --set diffusion.T=50 --set train.max_steps=1 --out "$work/avgT"
cp "$work/avg4.h5" "$work/avgcut.h5"
$PY -c "import h5py, sys; del h5py.File(sys.argv[1], 'a')['ema/out_conv.bias']" "$work/avgcut.h5"
for other in "$work/avgT/checkpoints/latest.h5:another network or diffusion" \
             "$work/cond/checkpoints/latest.h5:another network or diffusion" \
             "$work/avgcut.h5:other tensors in /ema"; do
  out=$($PY tools/average_weights.py "$work/bad.h5" ema "$work/avg4.h5" "${other%%:*}" 2>&1); rc=$?
  if [ $rc -eq 2 ] && grep -q "${other#*:}" <<<"$out" && [ ! -e "$work/bad.h5" ] && [ ! -e "$work/bad.h5.tmp" ]; then
    pass "average_weights.py refuses ${other#*:}: $out"
  else fail "average_weights.py with ${other%%:*}: rc=$rc: $out"; fi
done
# device_recipe.sh (for the device machine) here, with a stand-in for its carried runtime: each
# column's JSON is `ddpm eval`'s on the images `ddpm sample` draws with the same settings
dev=$work/dev
mkdir -p "$dev/debs" "$dev/bin" "$dev/mnist"
printf 'export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n' >"$dev/debs/mpi-prefix.sh"
ln -s "$PWD/bin/ddpm" "$dev/bin/ddpm"
for f in images-idx3 labels-idx1; do gzip -c data/mnist/t10k-$f-ubyte >"$dev/mnist/t10k-$f-ubyte.gz"; done
if OUT="$work/dr" WORK="$work/drw" tools/device_recipe.sh "$dev" 300 2 unet-s:0:6 cosine+larger:1:4 >"$work/dr.log" 2>&1; then
  run_ok $DDPM sample --checkpoint results/cosine+larger/final.h5 --n 4 --seed 1 --sampler ddim --steps 50 --eta 1 --clip --out "$work/dr4.h5"
  run_ok $DDPM eval --samples "$work/dr4.h5" --n 4 --out "$work/dr4.json"
  a=$(grep '"fid"' "$work/dr/cosine_larger-ddim50-eta1-clip-n4.json") b=$(grep '"fid"' "$work/dr4.json")
  [ -n "$a" ] && [ "$a" = "$b" ] && [ -s "$work/dr/unet-s-ddim50-eta0-clip-n6.json" ] \
    && pass "device_recipe.sh: a column's JSON ('+' written '_') scores what ddpm sample + eval draw ($a)" \
    || fail "device_recipe.sh: $a against $b; $(ls "$work/dr")"
else
  fail "device_recipe.sh: $(tail -3 "$work/dr.log")"
fi
OUT="$work/dr0" WORK="$work/drw" tools/device_recipe.sh "$dev" 0 2 unet-s:0:6 >/dev/null 2>&1
grep -q "unet-s:0:6: no time left" "$work/dr0/recipe.log" && [ ! -e "$work/dr0/unet-s-ddim50-eta0-clip-n6.json" ] \
  && pass "device_recipe.sh: a column past the time limit is left out" || fail "device_recipe.sh with no time: $(cat "$work/dr0/recipe.log")"
for col in unet-s:0 unet-s:0:6:1 nosuchrow:0:6 unet-s:x:6 unet-s:0:3 unet-s:0:many; do
  if OUT="$work/drbad" WORK="$work/drw" tools/device_recipe.sh "$dev" 300 2 unet-s:0:6 "$col" \
    >"$work/drbad.log" 2>&1; then
    fail "device_recipe.sh took the malformed column $col"
  else
    grep -q "column '$col'" "$work/drbad.log" && [ ! -e "$work/drbad" ] \
      && pass "device_recipe.sh refuses the column $col before any work" \
      || fail "device_recipe.sh on $col: $(tail -2 "$work/drbad.log")"
  fi
done
# deps.sh: the build's check names what is missing (blis.h looked for in BLIS_INC); an unknown
# mode is a usage error; SKIP_DEPS=1 makes no package check at all
err=$(BLIS_INC="$work/no-blis" tools/deps.sh check 2>&1); rc=$?
[ $rc -eq 1 ] && [ "$err" = "deps: missing libblis-openmp-dev" ] && pass "deps.sh check: $err (BLIS_INC without blis.h)" \
  || fail "deps.sh check with BLIS_INC missing: rc $rc $err"
tools/deps.sh check && pass "deps.sh check: everything the build needs is here" || fail "deps.sh check on this machine"
err=$(tools/deps.sh everything 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "unknown mode 'everything'" <<<"$err" && pass "deps.sh refuses an unknown mode (status 2)" || fail "deps.sh unknown mode: rc $rc $err"
mkdir -p "$work/fakebin" && printf '#!/bin/sh\ntouch "%s"\nexit 9\n' "$work/apt-get-ran" >"$work/fakebin/apt-get" && chmod +x "$work/fakebin/apt-get"
PATH="$work/fakebin:$PATH" make -s SKIP_DEPS=1 BLIS_INC="$work/no-blis" check-deps test-deps figure-deps slurm-deps >/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && [ ! -e "$work/apt-get-ran" ] && pass "make SKIP_DEPS=1: no package check and no apt-get (a missing blis.h not looked for)" \
  || fail "make SKIP_DEPS=1: rc $rc, apt-get $([ -e "$work/apt-get-ran" ] && echo ran || echo not run)"
PATH="$work/fakebin:$PATH" make -s BLIS_INC="$work/no-blis" check-deps >/dev/null 2>&1
[ -e "$work/apt-get-ran" ] && pass "without SKIP_DEPS the same missing blis.h goes to apt-get" || fail "make check-deps did not try to install a missing blis.h"
# attributes that hold arrays (as h5py writes lists) are named, not read into room for one value
$PY -c "
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], 'w') as f:
    f.attrs['kind'] = ['ddpm-checkpoint', 'x']; f.attrs['format_version'] = np.arange(64)
    f.attrs['step'] = np.array([7]); f['d'] = np.zeros(3); f['d'].attrs['note'] = ['a', 'b', 'c']
" "$work/arrays.h5"
out=$($DDPM inspect "$work/arrays.h5" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -qx "  @kind (not a scalar number or string)" <<<"$out" \
  && grep -qx "  @format_version (not a scalar number or string)" <<<"$out" && grep -qx "  @step = 7" <<<"$out" \
  && grep -qx "      @note (not a scalar number or string)" <<<"$out" \
  && pass "inspect: array attributes named as such, a one-element one read (@step = 7)" \
  || fail "inspect on array attributes: rc $rc $out"
expect_error "sample from a file whose kind is an array" "attribute kind is missing or not one string" \
  $DDPM sample --checkpoint "$work/arrays.h5" --n 2 --out "$work/arrays-s.h5"
finish "tools"
