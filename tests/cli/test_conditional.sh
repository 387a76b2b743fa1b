#!/usr/bin/env bash
# test_conditional.sh: class-conditional training and classifier-free guided sampling end to end
# on real MNIST (configs/tiny.ini with [model] classes = 10): the class embedding is trained,
# label dropout does what p_uncond says (measured on the Adam moments of the embedding rows),
# sample --class/--classes write the labels they were asked for, guidance changes the samples,
# 2 MPI ranks train and sample like 1, and bad requests fail in one line.
set -u
source "$(dirname "$0")/checks.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI2="env -u OMP_NUM_THREADS mpirun -np 2"
COND=(--config configs/tiny.ini --set model.classes=10 --set sample.n=20 --set sample.guidance=1)

# 1. a short conditional run: loss falls, the embedding is in the checkpoint, the grids are
#    labelled (two per digit, in order) with the configured guidance
$DDPM train "${COND[@]}" --out "$work/run" >"$work/run.log" 2>&1 || fail "conditional run: $(tail -2 "$work/run.log")"
$PY - "$work/run" <<'PY' && pass "conditional training: loss falls, class_emb.weight [11, 32] trained, labelled grids" || fail "conditional run outputs"
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(d + "/metrics.h5", "r") as f:
    loss = f["loss"][:]
    print(f"     loss {loss[:30].mean():.4f} -> {loss[-30:].mean():.4f}")
    assert loss[:30].mean() / loss[-30:].mean() > 1.5
with h5py.File(d + "/checkpoints/latest.h5", "r") as f:
    assert f["params/class_emb.weight"].shape == (11, 32)
    assert (np.abs(f["adam/m/class_emb.weight"][()]) > 0).any(axis=1).all() # every row got gradients
with h5py.File(d + "/samples/generated.h5", "r") as f:
    assert list(f["labels"][:]) == [i // 2 for i in range(20)], f["labels"][:]
    assert f.attrs["guidance"] == 1.0 and f["samples"].shape == (20, 1, 28, 28)
PY

# 2. p_uncond: with 1 only the null row (10) ever receives a gradient, with 0 never; Adam's first
#    moment of a row that never had a gradient stays exactly zero
for p in 0 1; do
  # (no guided grids: with p_uncond = 0 the null label they need is never trained)
  $DDPM train "${COND[@]}" --set sample.guidance=0 --set train.max_steps=30 --set train.p_uncond=$p --out "$work/p$p" >"$work/p$p.log" 2>&1 \
    || fail "p_uncond=$p run: $(tail -2 "$work/p$p.log")"
done
$PY - "$work/p0" "$work/p1" <<'PY' && pass "p_uncond = 0: the null row untouched; p_uncond = 1: only the null row trained" || fail "label dropout"
import sys, h5py, numpy as np
rows = []
for d in sys.argv[1:]:
    with h5py.File(d + "/checkpoints/latest.h5", "r") as f:
        rows.append((np.abs(f["adam/m/class_emb.weight"][()]) > 0).any(axis=1))
print("     rows with gradients, p_uncond 0:", rows[0].astype(int), " 1:", rows[1].astype(int))
assert rows[0][:10].all() and not rows[0][10]
assert not rows[1][:10].any() and rows[1][10]
PY
# ... so that model's null label is noise: guidance (which needs eps(x, null)) and unconditional
# samples from it are refused; plain class-conditional samples are fine
expect_error "--guidance from a model with p_uncond = 0" "never trained ([train] p_uncond = 0): use --guidance 0" \
  $DDPM sample --checkpoint "$work/p0/checkpoints/latest.h5" --class 3 --guidance 2 --n 2 --out "$work/x.h5"
expect_error "unconditional samples from a model with p_uncond = 0" "give --class or --classes" \
  $DDPM sample --checkpoint "$work/p0/checkpoints/latest.h5" --n 2 --out "$work/x.h5"
run_ok $DDPM sample --checkpoint "$work/p0/checkpoints/latest.h5" --class 3 --n 2 --sampler ddim --steps 2 --out "$work/p0s.h5" \
  && pass "a model with p_uncond = 0 samples its classes (--guidance 0)"

# 3. sampling: labels as asked, guidance recorded and effective, one grid row per class
CK="$work/run/checkpoints/latest.h5"
run_ok $DDPM sample --checkpoint "$CK" --out "$work/g2.h5" --classes 0-9 --n 20 --guidance 2 --png "$work/g2.png"
run_ok $DDPM sample --checkpoint "$CK" --out "$work/g0.h5" --classes 0-9 --n 20 --guidance 0
run_ok $DDPM sample --checkpoint "$CK" --out "$work/c3.h5" --class 3 --n 4
run_ok $DDPM sample --checkpoint "$CK" --out "$work/unc.h5" --n 4
$PY - "$work" <<'PY' && pass "sample --classes/--class: /labels as asked, guidance attribute, W = 2 differs from W = 0; no --class: no labels; 10 x 2 grid" || fail "conditional samples"
import sys, h5py, numpy as np, struct
w = sys.argv[1]
with h5py.File(w + "/g2.h5", "r") as a, h5py.File(w + "/g0.h5", "r") as b:
    assert list(a["labels"][:]) == [i // 2 for i in range(20)] and a.attrs["guidance"] == 2.0
    assert b.attrs["guidance"] == 0.0
    d = np.abs(a["samples"][()] - b["samples"][()]).max()
    print(f"     guidance 2 vs 0 from the same noise: max difference {d:.3f}")
    assert d > 0.1
with h5py.File(w + "/c3.h5", "r") as f:
    assert list(f["labels"][:]) == [3, 3, 3, 3] and f.attrs["guidance"] == 1.0 # the config's
with h5py.File(w + "/unc.h5", "r") as f:
    assert "labels" not in f and "guidance" not in f.attrs
width, height = struct.unpack(">II", open(w + "/g2.png", "rb").read()[16:24])
print(f"     grid {width} x {height} pixels")
assert height > 4 * width # 10 rows of 2
PY

# 4. MPI: 2 ranks sample the same labelled file as 1 (chunks of 4 images), and train like 1
run_ok $DDPM sample --checkpoint "$CK" --out "$work/s1.h5" --classes 2-6 --n 15 --batch 4 --guidance 1.5
run_ok $MPI2 $DDPM sample --checkpoint "$CK" --out "$work/s2.h5" --classes 2-6 --n 15 --batch 4 --guidance 1.5
same_h5 "$work/s1.h5" "$work/s2.h5" && pass "P=2 guided samples and /labels identical to P=1" || fail "P=2 conditional samples differ"
# 150 images in chunks of 2: 38 and 37 chunks per rank, copied into the samples file 32 chunks
# at a time, so each rank writes its share in two pieces (images 0-63, 64-75 and 76-139,
# 140-149), one process in three (0-63, 64-127, 128-149)
run_ok $MPI2 $DDPM sample --checkpoint "$CK" --out "$work/p2.h5" --classes 0-4 --n 150 --batch 2 --sampler ddim --steps 3
run_ok $DDPM sample --checkpoint "$CK" --out "$work/p1.h5" --classes 0-4 --n 150 --batch 2 --sampler ddim --steps 3
$PY - "$work" <<'PY' && pass "P=2, shares written in pieces: /labels 30 per class in order, images bit for bit those of one process (three pieces at other places)" || fail "samples written in pieces"
import sys, h5py, numpy as np
w = sys.argv[1]
with h5py.File(w + "/p2.h5", "r") as a, h5py.File(w + "/p1.h5", "r") as b:
    assert list(a["labels"][:]) == [i // 30 for i in range(150)]
    assert a["samples"].shape == (150, 1, 28, 28)
    assert np.array_equal(a["samples"][()], b["samples"][()])
PY
SMALL=(--set train.batch=31 --set train.max_steps=20 --set train.p_uncond=0.5 --set model.dropout=0.2)
run_ok $DDPM train "${COND[@]}" "${SMALL[@]}" --out "$work/t1"
run_ok $MPI2 $DDPM train "${COND[@]}" "${SMALL[@]}" --out "$work/t2"
$PY - "$work/t1" "$work/t2" <<'PY' && pass "P=1 vs P=2 conditional training with dropout 0.2 (labels, label dropout and dropout masks keyed by global image): weights within 1e-4" || fail "P=1 vs P=2 conditional training differs"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1] + "/checkpoints/latest.h5", "r") as f, h5py.File(sys.argv[2] + "/checkpoints/latest.h5", "r") as g:
    assert all(np.isfinite(h["params"][k][()]).all() for h in (f, g) for k in f["params"]), "non-finite weights" # max() would skip a NaN
    worst = max(np.abs(f["params"][k][()] - g["params"][k][()]).max() / (np.abs(f["params"][k][()]).max() + 1e-12) for k in f["params"])
    m = np.abs(f["adam/m/class_emb.weight"][()] - g["adam/m/class_emb.weight"][()]).max()
    print(f"     weights: max relative difference {worst:.2e}; class_emb Adam moment {m:.2e}")
    assert worst < 1e-4 and m < 1e-6
PY
# the grids a run with dropout draws come from the network without dropout: they are what
# `ddpm sample` draws from its checkpoint (same seed, classes and guidance)
run_ok $DDPM sample --checkpoint "$work/t1/checkpoints/latest.h5" --classes 0-9 --out "$work/t1s.h5"
$PY - "$work/t1/samples/generated.h5" "$work/t1s.h5" <<'PY' && pass "dropout 0.2: the run's final grid equals ddpm sample from its checkpoint (dropout off when sampling)" || fail "training-time samples differ from ddpm sample"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    assert list(a["labels"][:]) == list(b["labels"][:])
    d = np.abs(a["samples"][()] - b["samples"][()]).max()
    print(f"     max difference {d:.2e}")
    assert d < 1e-4, d
PY

# 5. bad requests
run_ok $DDPM train --config configs/tiny.ini --set train.max_steps=2 --out "$work/uncond"
expect_error "--class on an unconditional checkpoint" "the checkpoint's model is unconditional" \
  $DDPM sample --checkpoint "$work/uncond/checkpoints/latest.h5" --out "$work/x.h5" --class 1
expect_error "--guidance without a class" "--guidance needs --class or --classes" \
  $DDPM sample --checkpoint "$CK" --out "$work/x.h5" --guidance 1
expect_error "a class out of range" "--class 10: expected an integer 0..9" \
  $DDPM sample --checkpoint "$CK" --out "$work/x.h5" --class 10
expect_error "a reversed class range" "--classes 5-3: expected A-B" \
  $DDPM sample --checkpoint "$CK" --out "$work/x.h5" --classes 5-3
expect_error "--class and --classes" "alternatives" \
  $DDPM sample --checkpoint "$CK" --out "$work/x.h5" --class 2 --classes 0-9
expect_error "negative guidance" "--guidance -1: expected a number 0..1000" \
  $DDPM sample --checkpoint "$CK" --out "$work/x.h5" --class 2 --guidance -1
expect_error "a hex float as a number flag (strtod reads it)" "--guidance 0x1p1: expected a number 0..1000" \
  $DDPM sample --checkpoint "$CK" --out "$work/x.h5" --class 2 --guidance 0x1p1
expect_error "labels beyond [model] classes" "training image 0 has label 5; [model] classes = 3 allows 0..2" \
  $DDPM train --config configs/tiny.ini --set model.classes=3 --out "$work/few"
expect_error "p_uncond above 1" "[train] p_uncond = 1.5 is out of range 0..1" \
  $DDPM train "${COND[@]}" --set train.p_uncond=1.5 --out "$work/x"
expect_error "guidance on an unconditional model" "[sample] guidance = 2 needs a class-conditional model ([model] classes > 0)" \
  $DDPM train --config configs/tiny.ini --set sample.guidance=2 --out "$work/x"
expect_error "guidance with the null label never trained" "[sample] guidance = 1 needs the null label trained: [train] p_uncond > 0" \
  $DDPM train "${COND[@]}" --set train.p_uncond=0 --out "$work/x"
finish "conditional"
