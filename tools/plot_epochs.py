#!/usr/bin/python3
"""plot_epochs.py RUN_DIR OUT.png [K]: how the samples improve over training.

One row per epoch (samples/epoch_NNN.h5 of the run, all of them or every K-th), the first 12
images of each row drawn from the same fixed noise, so a column follows one x_T across epochs.
Needs Debian's python3-h5py and python3-matplotlib (`make figures` installs them)."""
import glob
import os
import sys

try:
    import h5py
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
except ImportError as e:
    sys.exit(f"plot_epochs.py: {e.name} is missing: apt-get install python3-h5py python3-matplotlib")

COLUMNS = 12


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: tools/plot_epochs.py RUN_DIR OUT.png [EVERY_K_EPOCHS]")
    run, out = sys.argv[1], sys.argv[2]
    every = 1
    if len(sys.argv) == 4:
        every = int(sys.argv[3]) if sys.argv[3].isdigit() else 0
        if every < 1:
            sys.exit(f"plot_epochs.py: EVERY_K_EPOCHS must be a whole number >= 1, not {sys.argv[3]}")
    def epoch_of(path):  # samples/epoch_007.h5 -> 7 (and epoch_1200.h5 -> 1200)
        digits = os.path.basename(path)[len("epoch_"):-len(".h5")]
        return int(digits) if digits.isdigit() else -1
    files = sorted((f for f in glob.glob(os.path.join(run, "samples", "epoch_*.h5")) if epoch_of(f) >= 0),
                   key=epoch_of)
    files = [f for i, f in enumerate(files) if i % every == 0 or i == len(files) - 1]
    if not files:
        sys.exit(f"plot_epochs.py: no samples/epoch_*.h5 in {run}")
    rows = []
    labels = []
    weights = set()
    for path in files:
        with h5py.File(path, "r") as f:
            x = f["samples"][:COLUMNS, 0]
            w = f.attrs.get("weights", b"ema")
            weights.add(w.decode() if isinstance(w, bytes) else str(w))
        rows.append(np.concatenate(list(x), axis=1))
        labels.append(str(epoch_of(path)))
    img = np.concatenate(rows, axis=0)
    fig, ax = plt.subplots(figsize=(COLUMNS * 0.6 + 0.6, len(rows) * 0.6 + 0.3), dpi=100)
    ax.imshow((img + 1) / 2, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([28 * i + 14 for i in range(len(rows))])
    ax.set_yticklabels([f"epoch {e}" for e in labels])
    ax.set_xticks([])
    which = "EMA" if weights == {"ema"} else "raw" if weights == {"model"} else "/".join(sorted(weights))
    ax.set_title(f"samples after each epoch ({which} weights, fixed noise)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    print(f"{out}: {len(rows)} epochs ({', '.join(labels)}), {which} weights")


if __name__ == "__main__":
    main()
