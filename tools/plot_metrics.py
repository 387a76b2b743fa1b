#!/usr/bin/python3
"""plot_metrics.py RUN_DIR OUT.png: the loss curve of a training run from its metrics.h5.

Per-step MSE (thin) with a 100-step moving average, and the per-epoch mean loss (dots), on a log
scale. Needs Debian's python3-h5py and python3-matplotlib (`make figures` installs them).
Reading a metrics.h5 that a run is still writing works with HDF5_USE_FILE_LOCKING=FALSE (set
here)."""
import os
import sys

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
try:
    import h5py
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
except ImportError as e:
    sys.exit(f"plot_metrics.py: {e.name} is missing: apt-get install python3-h5py python3-matplotlib")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: tools/plot_metrics.py RUN_DIR OUT.png")
    run, out = sys.argv[1], sys.argv[2]
    with h5py.File(os.path.join(run, "metrics.h5"), "r") as f:
        step, loss = f["step"][:], f["loss"][:]
        epoch, epoch_loss = f["epoch/epoch"][:], f["epoch/mean_loss"][:]
    if len(step) == 0:
        sys.exit(f"plot_metrics.py: {run}/metrics.h5 has no rows yet")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(step, loss, lw=0.4, alpha=0.35, color="tab:blue", label="loss per step")
    w = min(100, len(loss))
    avg = np.convolve(loss, np.ones(w) / w, mode="valid")
    ax.plot(step[w - 1:], avg, lw=1.5, color="tab:blue", label=f"{w}-step moving average")
    spe = None
    ckpt = os.path.join(run, "checkpoints", "latest.h5")
    if os.path.exists(ckpt):
        with h5py.File(ckpt, "r") as f:
            spe = int(f.attrs["steps_per_epoch"])
    if len(epoch) and spe:
        ax.plot(np.asarray(epoch) * spe, epoch_loss, "o", color="tab:red", ms=4,
                label="epoch mean (at the epoch's last step)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE(eps, eps_theta)")
    ax.set_title(f"training loss: {os.path.basename(os.path.normpath(run))}")
    ax.grid(True, which="both", lw=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    print(f"{out}: {len(step)} steps, last epoch mean {epoch_loss[-1] if len(epoch) else float('nan'):.5f}")


if __name__ == "__main__":
    main()
