#!/usr/bin/env bash
# test_eval.sh: the evaluation protocol on real data. The committed classifier classifies the
# MNIST test set at >= 99%; real training images score a small FID against the test set, uniform
# noise a huge one, growing noise on real images a growing one; the class histogram of real
# images is near uniform; precision and recall are high for real images, recall falls with
# heavy noise and with a dropped half of the digits; 2 MPI ranks give the 1-rank numbers;
# labelled (conditional) samples
# are scored class by class; `ddpm classifier train` trains
# (on a 2,000-image subset here: the full run takes minutes); bad input fails in one line.
set -u
source "$(dirname "$0")/checks.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
CLS=results/classifier/mnist-classifier.h5
[ -s $CLS ] || { fail "$CLS is missing"; finish "eval"; }
field() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# 1. the committed classifier on the 10,000 test images, measured here
run_ok $DDPM eval --real t10k --out "$work/t10k.json"
acc=$(field "$work/t10k.json" accuracy)
$PY -c "import sys; assert float(sys.argv[1]) >= 0.99" "$acc" && pass "committed classifier: test accuracy $acc (>= 0.99)" \
  || fail "classifier test accuracy $acc < 0.99"

# 2. the real-data floor: 10,000 training images against the test set
run_ok $DDPM eval --real train --n 10000 --out "$work/train.json"
floor=$(field "$work/train.json" fid)
$PY - "$work/train.json" <<'PY' && pass "real train vs test: FID $floor (< 20), class histogram within 8-12% per class" || fail "real floor: $(cat "$work/train.json")"
import sys, json
r = json.load(open(sys.argv[1]))
assert r["n"] == 10000 and r["fid"] < 20.0, r["fid"]
h = [c / r["n"] for c in r["class_histogram"]]
print("     classes:", " ".join(f"{x:.3f}" for x in h), f"entropy {r['class_entropy_nats']:.4f} of {r['class_entropy_max_nats']:.4f}")
assert all(0.08 <= x <= 0.12 for x in h) and r["class_entropy_nats"] > 0.99 * r["class_entropy_max_nats"]
assert r["mean_confidence"] > 0.95 and r["inception_score"] > 9
PY
$PY -c "import json, sys; r = json.load(open(sys.argv[1])); print(r['precision'], r['recall']); assert r['precision'] > 0.75 and r['recall'] > 0.75 and r['pr_n'] == 10000 and r['pr_k'] == 3" \
  "$work/train.json" >"$work/pr.txt" 2>&1 && pass "real train vs test: precision and recall $(cat "$work/pr.txt") (> 0.75)" \
  || fail "real precision/recall: $(cat "$work/pr.txt")"

# 3. uniform noise images: a huge FID (the scale: real floor ~13, generated samples tens)
$PY - "$work/noise.h5" <<'PY'
import sys, h5py, numpy as np
x = np.random.default_rng(0).uniform(-1, 1, (2000, 1, 28, 28)).astype(np.float32)
with h5py.File(sys.argv[1], "w") as f:
    f["samples"] = x
PY
run_ok $DDPM eval --samples "$work/noise.h5" --out "$work/noise.json"
fid=$(field "$work/noise.json" fid)
$PY -c "import sys; assert float(sys.argv[1]) > 100 * max(float(sys.argv[2]), 0.1)" "$fid" "$floor" \
  && pass "uniform noise: FID $fid (N = $(field "$work/noise.json" n)), >100x the real floor" || fail "uniform noise FID $fid"

# 4. growing noise on real images: the FID grows with it
prev=-1; mono=1; list=""
for s in 0 0.1 0.2 0.4 0.8; do
  run_ok $DDPM eval --real train --n 2000 --noise $s --out "$work/n$s.json"
  f=$(field "$work/n$s.json" fid); list="$list $s:$f"
  $PY -c "import sys; assert float(sys.argv[1]) > float(sys.argv[2])" "$f" "$prev" || mono=0
  prev=$f
done
[ $mono = 1 ] && pass "FID grows with the noise (sigma:FID)$list" || fail "FID not monotone in the noise:$list"
$PY - "$work/n0.json" "$work/n0.8.json" >"$work/prn.txt" 2>&1 <<'PY' && pass "noise sigma 0 -> 0.8: $(cat "$work/prn.txt")" || fail "precision under noise: $(cat "$work/prn.txt")"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print(f"precision {a['precision']:.3f} -> {b['precision']:.3f}, recall {a['recall']:.3f} -> {b['recall']:.3f}")
# in the classifier's features, heavy noise pulls the images together: they cover few real
# digits (recall falls below half; precision falls far less, not asserted)
assert b["recall"] < 0.5 * a["recall"], "noisy images should cover fewer real digits"
PY

# 4b. a dropped mode: 2,000 training digits of classes 0-4 only. Precision stays near the real
# level, recall falls by a quarter or more (the test digits 5-9 find few samples near them).
$PY - data/mnist "$work/half.h5" <<'PY'
import sys, h5py, numpy as np
src = sys.argv[1]
x = np.frombuffer(open(f"{src}/train-images-idx3-ubyte", "rb").read()[16:16 + 8000 * 784], np.uint8)
y = np.frombuffer(open(f"{src}/train-labels-idx1-ubyte", "rb").read()[8:8 + 8000], np.uint8)
x = x.reshape(8000, 1, 28, 28)[y < 5][:2000]
with h5py.File(sys.argv[2], "w") as f:
    f["samples"] = (x.astype(np.float32) / 127.5 - 1).astype(np.float32)
PY
run_ok $DDPM eval --samples "$work/half.h5" --n 2000 --out "$work/half.json"
$PY - "$work/n0.json" "$work/half.json" >"$work/prh.txt" 2>&1 <<'PY' && pass "digits 0-4 only: $(cat "$work/prh.txt")" || fail "dropped mode: $(cat "$work/prh.txt")"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print(f"precision {b['precision']:.3f} (all digits {a['precision']:.3f}), recall {b['recall']:.3f} (all digits {a['recall']:.3f})")
assert b["precision"] > a["precision"] - 0.1 and b["recall"] < 0.75 * a["recall"]
PY

# 5. MPI: 2 ranks score the same numbers as 1
run_ok env -u OMP_NUM_THREADS mpirun -np 2 $DDPM eval --real train --n 2000 --noise 0.2 --out "$work/mpi.json"
$PY - "$work/n0.2.json" "$work/mpi.json" <<'PY' && pass "2 ranks: the 1-rank FID, histogram and confidence" || fail "MPI eval differs"
import sys, json
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["class_histogram"] == b["class_histogram"], (a["class_histogram"], b["class_histogram"])
assert abs(a["fid"] - b["fid"]) <= 1e-6 * max(1, a["fid"]), (a["fid"], b["fid"])
assert abs(a["mean_confidence"] - b["mean_confidence"]) < 1e-9
assert abs(a["precision"] - b["precision"]) <= 0.002 and abs(a["recall"] - b["recall"]) <= 0.002
PY

# 5b. labelled samples (what a conditional model writes): 2,000 real training digits with /labels
# = their true labels are classified as asked >= 98%, with per-class FIDs near the real floor;
# the same images with the labels shifted by one (each "asked for" the next digit) match ~0%
# and the per-class FIDs explode; 2 ranks give the same per-class numbers.
$PY - data/mnist "$work/lab.h5" "$work/lab_shift.h5" <<'PY'
import sys, h5py, numpy as np
src = sys.argv[1]
x = np.frombuffer(open(f"{src}/train-images-idx3-ubyte", "rb").read()[16:16 + 2000 * 784], np.uint8)
y = np.frombuffer(open(f"{src}/train-labels-idx1-ubyte", "rb").read()[8:8 + 2000], np.uint8)
x = (x.reshape(2000, 1, 28, 28).astype(np.float32) / 127.5 - 1).astype(np.float32)
for path, lab in ((sys.argv[2], y), (sys.argv[3], (y + 1) % 10)):
    with h5py.File(path, "w") as f:
        f["samples"] = x
        f["labels"] = lab.astype(np.int32)
PY
run_ok $DDPM eval --samples "$work/lab.h5" --out "$work/lab.json"
run_ok $DDPM eval --samples "$work/lab_shift.h5" --out "$work/lab_shift.json"
run_ok env -u OMP_NUM_THREADS mpirun -np 2 $DDPM eval --samples "$work/lab.h5" --out "$work/lab_mpi.json"
$PY - "$work/lab.json" "$work/lab_shift.json" "$work/lab_mpi.json" <<'PY' && pass "labelled samples: true labels match $(field "$work/lab.json" label_match), shifted labels $(field "$work/lab_shift.json" label_match); per-class FIDs and 2 ranks agree" || fail "labelled samples: $(cat "$work/lab.json")"
import sys, json
a, b, m = (json.load(open(p)) for p in sys.argv[1:])
pa, pb = a["per_class"], b["per_class"]
assert a["label_match"] >= 0.98 and b["label_match"] <= 0.02, (a["label_match"], b["label_match"])
assert [c["class"] for c in pa] == list(range(10)) and sum(c["n"] for c in pa) == 2000
assert all(c["label_match"] >= 0.95 for c in pa), pa
assert all(c["n_reference"] >= 800 for c in pa)
# true labels: each class's samples against that class's test digits, near the real floor
assert max(c["fid"] for c in pa) < 300, [c["fid"] for c in pa] # N ~ 200 per class: biased up
# shifted: the images of digit d+1 scored against test digits d... every class far worse
assert all(cb["fid"] > 5 * ca["fid"] for ca, cb in zip(pa, pb)), ([c["fid"] for c in pa], [c["fid"] for c in pb])
print("     per-class FID (true labels):", " ".join(f"{c['fid']:.0f}" for c in pa))
print("     per-class FID (shifted):    ", " ".join(f"{c['fid']:.0f}" for c in pb))
for ca, cm in zip(pa, m["per_class"]):
    assert ca["n"] == cm["n"] and ca["label_match"] == cm["label_match"]
    assert abs(ca["fid"] - cm["fid"]) <= 1e-6 * max(1, ca["fid"]), (ca, cm)
PY
$PY -c "import h5py, numpy as np, sys; f = h5py.File(sys.argv[1], 'w'); f['samples'] = np.zeros((3, 1, 28, 28), np.float32); f['labels'] = np.array([0, 0, 5], np.int32)" "$work/onelab.h5"
run_ok $DDPM eval --samples "$work/onelab.h5" --out "$work/onelab.json"
$PY -c "import json, sys; pc = json.load(open(sys.argv[1]))['per_class']; assert [c['class'] for c in pc] == [0, 5] and pc[1]['fid'] is None and pc[0]['fid'] > 0, pc" "$work/onelab.json" \
  && pass "a class with one image: FID null in valid JSON" || fail "one-image class: $(cat "$work/onelab.json")"
$PY -c "import h5py, numpy as np, sys; f = h5py.File(sys.argv[1], 'w'); f['samples'] = np.zeros((4, 1, 28, 28), np.float32); f['labels'] = np.array([0, 1, 12, 3], np.int32)" "$work/badlab.h5"
expect_error "a label that is not a digit" "/labels[2] = 12 is not a digit" $DDPM eval --samples "$work/badlab.h5"
$PY -c "import h5py, numpy as np, sys; f = h5py.File(sys.argv[1], 'w'); f['samples'] = np.zeros((4, 1, 28, 28), np.float32); f['labels'] = np.zeros(3, np.int32)" "$work/shortlab.h5"
expect_error "fewer labels than samples" "/labels must be [4]" $DDPM eval --samples "$work/shortlab.h5"

# 6. ddpm classifier train on a subset (2,000 training and 1,000 test images, 2 epochs)
mkdir -p "$work/small"
$PY - data/mnist "$work/small" <<'PY'
import sys, struct
src, dst = sys.argv[1], sys.argv[2]
for split, n in (("train", 2000), ("t10k", 1000)):
    raw = open(f"{src}/{split}-images-idx3-ubyte", "rb").read()
    open(f"{dst}/{split}-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, 28, 28) + raw[16:16 + n * 784])
    raw = open(f"{src}/{split}-labels-idx1-ubyte", "rb").read()
    open(f"{dst}/{split}-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, n) + raw[8:8 + n])
PY
expect_error "classifier --batch larger than the training set" "--batch 4000 is larger than the 2000 training images" \
  $DDPM classifier train --data "$work/small" --batch 4000 --out "$work/cls/big-batch.h5"
$DDPM classifier train --data "$work/small" --epochs 2 --out "$work/cls/small.h5" >"$work/cls.log" 2>&1 \
  || fail "classifier train: $(tail -2 "$work/cls.log")"
$PY - "$work/cls/small.h5" <<'PY' && pass "classifier train: $(tail -1 "$work/cls.log")" || fail "classifier file: $(tail -2 "$work/cls.log")"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["kind"] in (b"ddpm-classifier", "ddpm-classifier")
    assert f.attrs["test_accuracy"] > 0.5, f.attrs["test_accuracy"] # chance is 0.1
    assert f["params/fc1.weight"].shape == (128, 3136) and "--epochs 2" in str(f.attrs["command"])
PY

# 6b. [train] eval_every: the FID of fresh samples after each epoch lands in metrics.h5
$DDPM train --config configs/tiny.ini --set data.dir="$work/small" --set train.epochs=2 \
  --set train.max_steps=0 --set train.eval_every=1 --set train.eval_n=100 \
  --set train.eval_classifier="$work/cls/small.h5" --out "$work/evrun" >"$work/evrun.log" 2>&1 \
  || fail "training with eval_every: $(tail -2 "$work/evrun.log")"
$PY - "$work/evrun" <<'PY' && pass "eval_every = 1: $(grep -c 'FID' "$work/evrun.log") epoch FIDs in the log and in metrics.h5 /epoch/fid" || fail "eval_every: $(grep FID "$work/evrun.log")"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1] + "/metrics.h5", "r") as f:
    fid = f["epoch/fid"][:]
    assert len(fid) == 2 and np.isfinite(fid).all() and (fid > 0).all(), fid
    print("     /epoch/fid:", fid)
PY
# a stop signal during an epoch's samples or FID (a Slurm time limit's warning) stops the run
# within a chunk, exit 75; the resumed run makes them first and ends as the uninterrupted run
pics=(--config configs/tiny.ini --set data.dir="$work/small" --set train.epochs=1 --set train.eval_every=1
      --set train.eval_n=100 --set train.eval_classifier="$work/cls/small.h5" --set sample.sampler=ddpm)
run_ok $DDPM train "${pics[@]}" --out "$work/pics"
$DDPM train "${pics[@]}" --out "$work/picstop" >"$work/picstop.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "^epoch 1 done" "$work/picstop.log" 2>/dev/null && break; sleep 0.1; done
kill -USR1 $pid; wait $pid; rc=$?
$DDPM train "${pics[@]}" --out "$work/picstop" --resume >"$work/picres.log" 2>&1; rc2=$?
if [ $rc -eq 75 ] && grep -q "not made (stop signal): a resumed run makes" "$work/picstop.log" && [ $rc2 -eq 0 ] \
   && grep -q "missing (a stop during them): making them now" "$work/picres.log" \
   && same_h5 "$work/pics/samples/epoch_001.h5" "$work/picstop/samples/epoch_001.h5" /samples /samples \
   && same_h5 "$work/pics/samples/generated.h5" "$work/picstop/samples/generated.h5" /samples /samples \
   && $PY -c "
import sys, h5py, numpy as np
a, b = (h5py.File(p + '/metrics.h5', 'r') for p in sys.argv[1:])
assert np.isfinite(a['epoch/fid'][:]).all() and np.array_equal(a['epoch/fid'][:], b['epoch/fid'][:]), (a['epoch/fid'][:], b['epoch/fid'][:])
" "$work/pics" "$work/picstop"; then
  pass "a stop during epoch 1's $(grep -o 'its [a-zA-Z]* w[a-z]* not made' "$work/picstop.log" | cut -d' ' -f2): exit 75 at once; the resumed run made them, equal to the uninterrupted run's (samples, FID, final grid)"
else
  fail "stop during epoch outputs: rc=$rc rc2=$rc2 $(grep -E 'epoch 1|stopped' "$work/picstop.log" "$work/picres.log" | tail -4)"
fi
expect_error "eval_every without a classifier" "eval_classifier = $work/none.h5: cannot read it" \
  $DDPM train --config configs/tiny.ini --set train.eval_every=1 --set train.eval_classifier="$work/none.h5" --out "$work/x"
expect_error "eval_every with a checkpoint as the classifier, at the start (not after an epoch)" "not a ddpm classifier file" \
  $DDPM train --config configs/tiny.ini --set train.eval_every=1 --set train.eval_classifier=results/unet-s/final.h5 --out "$work/x"

# 6b. more than 10,000 samples whose classes come in runs (as --classes writes them): 20,000
# training digits sorted by label; precision and recall take an evenly spread 10,000 of them
# (the first 10,000 would be digits 0-4 only, recall about halved). A path with a quote and a
# backslash stays valid JSON.
# sorted_digits N FILE [labels]: the first N training digits sorted by label, as a samples file
# (with their labels as /labels when asked)
sorted_digits() {
  $PY - data/mnist "$@" <<'PY'
import sys, h5py, numpy as np
src, n, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
x = np.frombuffer(open(f"{src}/train-images-idx3-ubyte", "rb").read()[16:16 + n * 784], np.uint8)
y = np.frombuffer(open(f"{src}/train-labels-idx1-ubyte", "rb").read()[8:8 + n], np.uint8)
order = np.argsort(y, kind="stable")
with h5py.File(dst, "w") as f:
    f["samples"] = (x.reshape(-1, 1, 28, 28)[order].astype(np.float32) / 127.5 - 1).astype(np.float32)
    if len(sys.argv) > 4:
        f["labels"] = y[order].astype(np.int32)
PY
}
sorted_digits 20000 "$work/sorted\"q.h5"
run_ok $DDPM eval --samples "$work/sorted\"q.h5" --n 20000 --out "$work/sorted.json"
$PY - "$work/sorted.json" "$work/sorted\"q.h5" >"$work/sorted.txt" 2>&1 <<'PY' && pass "20,000 samples in class runs: $(cat "$work/sorted.txt")" || fail "samples in class runs: $(cat "$work/sorted.txt")"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"precision {r['precision']:.3f}, recall {r['recall']:.3f} over {r['pr_n']} spread over all; the quoted path read back from the JSON")
assert r["source"] == sys.argv[2] and r["pr_n"] == 10000
assert r["precision"] > 0.75 and r["recall"] > 0.75
PY

# 6c. fewer images scored than a labelled file holds (`--classes` writes the digits in runs):
# N spread evenly over the file, every digit in it (the first 1,000 of these would be 0-4 only)
sorted_digits 2000 "$work/runs.h5" labels
if $DDPM eval --samples "$work/runs.h5" --n 1000 --out "$work/runs.json" >"$work/runs.log" 2>&1; then
  $PY - "$work/runs.json" "$work/runs.h5" >"$work/runs.txt" 2>&1 <<'PY' \
    && grep -q "N = 1000 of its 2000, spread evenly over the file" "$work/runs.log" \
    && pass "1,000 of 2,000 labelled digits in class runs: $(cat "$work/runs.txt")" || fail "labelled samples in runs: $(cat "$work/runs.txt") $(head -2 "$work/runs.log")"
import json, sys, h5py, numpy as np
r = json.load(open(sys.argv[1]))
y = h5py.File(sys.argv[2], "r")["labels"][:]
want = np.bincount(y[np.arange(1000) * 2000 // 1000], minlength=10) # images i * 2000 / 1000
print(f"classes {r['class_histogram']}, {100 * r['label_match']:.1f}% as labelled, {len(r['per_class'])} digits scored")
assert r["n"] == 1000 and r["spread_over"] == 2000, r
assert [c["n"] for c in r["per_class"]] == want.tolist() and len(r["per_class"]) == 10, r["per_class"]
assert min(r["class_histogram"]) > 60 and r["label_match"] > 0.97, r
PY
else
  fail "eval of labelled samples in runs: $(tail -2 "$work/runs.log")"
fi
out=$($DDPM eval --samples "$work/runs.h5" --n 2000 2>&1 | grep "^images")
grep -q "(N = 2000)" <<<"$out" && pass "all of a labelled file scored: $out" || fail "eval --n 2000 of 2000: $out"

# 6d. a --ref folder whose test set holds a single 9: that digit's FID is null, the rest scored
$PY - data/mnist "$work/ref1" <<'PY'
import os, struct, sys, numpy as np
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
x = np.frombuffer(open(f"{src}/t10k-images-idx3-ubyte", "rb").read()[16:], np.uint8).reshape(-1, 784)
y = np.frombuffer(open(f"{src}/t10k-labels-idx1-ubyte", "rb").read()[8:], np.uint8)
keep = np.concatenate([np.where(y != 9)[0][:600], np.where(y == 9)[0][:1]])
open(f"{dst}/t10k-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 2051, len(keep), 28, 28) + x[keep].tobytes())
open(f"{dst}/t10k-labels-idx1-ubyte", "wb").write(struct.pack(">II", 2049, len(keep)) + y[keep].tobytes())
PY
if $DDPM eval --samples "$work/runs.h5" --n 500 --ref "$work/ref1" --out "$work/ref1.json" >"$work/ref1.log" 2>&1; then
  $PY - "$work/ref1.json" <<'PY' && pass "a reference set with one image of a digit: its FID null, the others scored" || fail "one reference 9: $(cat "$work/ref1.json")"
import json, sys
pc = {c["class"]: c for c in json.load(open(sys.argv[1]))["per_class"]}
assert pc[9]["fid"] is None and pc[9]["n_reference"] == 1 and pc[9]["n"] > 40, pc[9]
assert all(pc[k]["fid"] > 0 for k in range(9)), pc
PY
else
  fail "eval with one reference 9: $(tail -2 "$work/ref1.log")"
fi

# 7. bad input
expect_error "both --samples and --real" "exactly one of" $DDPM eval --samples x.h5 --real train
expect_error "missing samples file" "$work/none.h5" $DDPM eval --samples "$work/none.h5"
expect_error "a checkpoint as the classifier" "not a ddpm classifier file" \
  $DDPM eval --real train --n 100 --classifier results/unet-s/final.h5
$PY -c "import h5py, numpy as np, sys; h5py.File(sys.argv[1], 'w')['samples'] = np.zeros((5, 1, 14, 14), np.float32)" "$work/small.h5"
expect_error "samples of another shape" "must be [N >= 2, 1, 28, 28]" $DDPM eval --samples "$work/small.h5"
$PY -c "import h5py, numpy as np, sys; x = np.zeros((5, 1, 28, 28), np.float32); x[3, 0, 4, 4] = np.nan; h5py.File(sys.argv[1], 'w')['samples'] = x" "$work/nan.h5"
expect_error "samples holding NaN" "1 of the 5 images hold NaN or infinite values (the first: image 3)" $DDPM eval --samples "$work/nan.h5"
$PY -c "import h5py, numpy as np, sys; x = np.zeros((20, 1, 28, 28), np.float32); x[14, 0, 3, 3] = np.nan; f = h5py.File(sys.argv[1], 'w'); f['samples'] = x; f['labels'] = np.arange(20, dtype=np.int32) % 10" "$work/nanl.h5"
expect_error "labelled samples holding NaN, 10 of 20 spread: the file's index" "1 of the 10 images hold NaN or infinite values (the first: image 14)" $DDPM eval --samples "$work/nanl.h5" --n 10
$PY -c "import h5py, numpy as np, sys; x = np.zeros((5, 1, 28, 28), np.float32); x[2, 0, 9, 9] = 255; h5py.File(sys.argv[1], 'w')['samples'] = x" "$work/bytes.h5"
expect_error "samples of another scale ([0, 255])" "1 of the 5 images have values outside [-1, 1] (the first: image 2, 255)" $DDPM eval --samples "$work/bytes.h5"
expect_error "eval --n not a number" "eval: --n 1e3: expected an integer 2..100000000" $DDPM eval --real train --n 1e3
expect_error "eval --noise out of range" "eval: --noise -1: expected a number 0..100" $DDPM eval --real train --noise -1
expect_error "classifier --lr not a number" "classifier: --lr fast: expected a number" $DDPM classifier train --lr fast
expect_error "classifier --epochs 0" "classifier: --epochs 0: expected an integer 1..1000" $DDPM classifier train --epochs 0
expect_error "noise-strip --n not a number" "noise-strip: --n x: expected an integer 1..1000" \
  $DDPM noise-strip --out "$work/strip.png" --n x
expect_error "noise-strip --out empty, refused before the work" "no path for the PNG" $DDPM noise-strip --out ""
# USR1 (the batch scripts' stop request) does not kill eval: it has nothing to save and finishes
$DDPM eval --real train --n 1000 --out "$work/usr1.json" >/dev/null 2>&1 & evpid=$!
# (sent once eval ignores it: bit 10 of SigIgn, set in main() after the libraries have loaded)
for _ in $(seq 200); do
  (( 0x$(awk '/^SigIgn/ {print $2}' /proc/$evpid/status 2>/dev/null || echo 0) & 0x200 )) && break; sleep 0.05
done
kill -USR1 $evpid 2>/dev/null; sent=$?; wait $evpid; rc=$?
[ $sent -eq 0 ] && [ $rc -eq 0 ] && [ -s "$work/usr1.json" ] && pass "eval sent USR1 finishes (status 0, JSON written)" \
  || fail "eval sent USR1 (delivered: $([ $sent -eq 0 ] && echo yes || echo no, it had ended)): status $rc"
# --set applies after --config wherever it stands on the command line
$DDPM noise-strip --set diffusion.T=50 --config configs/tiny.ini --out "$work/strip50.png" --h5 "$work/strip50.h5" >/dev/null \
  && [ "$($PY -c 'import h5py, sys; print(int(h5py.File(sys.argv[1], "r")["t"][-1]))' "$work/strip50.h5")" = 49 ] \
  && pass "noise-strip: --set before --config still applies (T = 50: last frame t = 49)" \
  || fail "noise-strip: a --set before --config was dropped"
finish "eval"
