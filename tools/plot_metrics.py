#!/usr/bin/python3
"""plot_metrics.py RUN_DIR [OUT.png] [--loss-only]: a training run's curves from its metrics.h5.

Four panels: per-step MSE (thin) with a 100-step moving average and the per-epoch mean loss
(dots; a cut-short last epoch at its last logged step) on a log scale (rows without a value,
NaN, from skipped steps or a metrics.h5 made again after a loss, are left out of the average); the gradient norm; images/s; and the FID per evaluated epoch
(`[train] eval_every`; "not evaluated" when the run had none). --loss-only draws the first
panel alone. OUT.png defaults to RUN_DIR/metrics.png. Needs Debian's python3-h5py and python3-matplotlib (`make figures` installs them).
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


def steps_per_epoch(run):
    """From the run's checkpoint, or the exported weights beside metrics.h5 (results/unet-s)."""
    for name in (os.path.join("checkpoints", "latest.h5"), "final.h5"):
        path = os.path.join(run, name)
        if os.path.exists(path):
            with h5py.File(path, "r") as f:
                if "steps_per_epoch" in f.attrs:
                    return int(f.attrs["steps_per_epoch"])
    return None


def predicted(run):
    """What the network predicts ("eps" or "v"), from the run's config.ini (eps if none)."""
    try:
        with open(os.path.join(run, "config.ini")) as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip() == "prediction":
                    return value.strip()
    except OSError:
        pass
    return "eps"


def moving_average(x, w):
    """Mean of the finite values in each window of w; NaN where a window has none."""
    ok = np.isfinite(x)
    k = np.ones(w)
    total = np.convolve(np.where(ok, x, 0.0), k, mode="valid")
    count = np.convolve(ok.astype(float), k, mode="valid")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def main():
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__)
        return
    args = [a for a in sys.argv[1:] if a != "--loss-only"]
    loss_only = len(args) != len(sys.argv) - 1
    if len(args) not in (1, 2):
        sys.exit("usage: tools/plot_metrics.py RUN_DIR [OUT.png] [--loss-only]")
    run = args[0]
    out = args[1] if len(args) == 2 else os.path.join(run, "metrics.png")
    path = os.path.join(run, "metrics.h5")
    if not os.path.exists(path):
        sys.exit(f"plot_metrics.py: {path}: no such file (RUN_DIR is a run directory of ddpm train)")
    with h5py.File(path, "r") as f:
        step, loss = f["step"][:], f["loss"][:]
        gnorm, ips = f["grad_norm"][:], f["images_per_s"][:]
        epoch, epoch_loss = f["epoch/epoch"][:], f["epoch/mean_loss"][:]
        fid = f["epoch/fid"][:] if "epoch/fid" in f else np.full(len(epoch), np.nan)
    # a run writing the file extends one column after another: keep the rows all columns have
    n = min(len(step), len(loss), len(gnorm), len(ips))
    step, loss, gnorm, ips = step[:n], loss[:n], gnorm[:n], ips[:n]
    m = min(len(epoch), len(epoch_loss), len(fid))
    epoch, epoch_loss, fid = epoch[:m], epoch_loss[:m], fid[:m]
    if len(step) == 0:
        sys.exit(f"plot_metrics.py: {run}/metrics.h5 has no rows yet")
    if loss_only:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        axes = [ax]
    else:
        fig, grid = plt.subplots(2, 2, figsize=(11, 7), dpi=100)
        axes = list(grid.flat)
        ax = axes[0]
    ax.plot(step, loss, lw=0.4, alpha=0.35, color="tab:blue", label="loss per step")
    w = min(100, len(loss))
    avg = moving_average(loss, w)
    ax.plot(step[w - 1:], avg, lw=1.5, color="tab:blue", label=f"{w}-step moving average")
    spe = steps_per_epoch(run)
    if len(epoch) and spe:
        ax.plot(np.minimum(np.asarray(epoch) * spe, step[-1]), epoch_loss, "o", color="tab:red", ms=4,
                label="epoch mean (at the epoch's last step)")
    elif len(epoch):
        print(f"plot_metrics.py: no checkpoints/latest.h5 or final.h5 in {run} to give the steps per "
              "epoch: epoch means not drawn", file=sys.stderr)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    p = predicted(run)
    ax.set_ylabel(f"MSE({p}, {p}_theta)")
    ax.set_title(f"training loss: {os.path.basename(os.path.normpath(run))}")
    ax.grid(True, which="both", lw=0.3)
    ax.legend()
    if not loss_only:
        axes[1].plot(step, gnorm, lw=0.4, color="tab:green")
        axes[1].set_yscale("log")
        axes[1].set_xlabel("step")
        axes[1].set_title("gradient norm (global, before clipping)")
        axes[2].plot(step, ips, lw=0.4, color="tab:purple")
        axes[2].set_xlabel("step")
        axes[2].set_title("images per second (all ranks)")
        ok = np.isfinite(fid)
        if ok.any():
            axes[3].plot(np.asarray(epoch)[ok], fid[ok], "o-", color="tab:orange")
            axes[3].set_xlabel("epoch")
            axes[3].set_title("FID of the epoch's evaluation samples ([train] eval_every)")
        else:
            axes[3].text(0.5, 0.5, "no FID evaluated\n([train] eval_every = 0)", ha="center", va="center")
            axes[3].set_axis_off()
        for a in axes[1:]:
            a.grid(True, which="both", lw=0.3)
    fig.tight_layout()
    fig.savefig(out)
    print(f"{out}: {len(step)} steps, last epoch mean {epoch_loss[-1] if len(epoch) else float('nan'):.5f}")


if __name__ == "__main__":
    main()
