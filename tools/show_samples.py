#!/usr/bin/python3
"""show_samples.py FILE.h5 [OUT.png] [--n N] [--cols C] [--dataset /samples]

Draw the images of a samples file (`ddpm sample --out`, or any HDF5 dataset [N, 1, H, W] in
[-1, 1]) as a grid with matplotlib: OUT.png (default FILE.png beside FILE.h5), the sampler
settings from the file's attributes in the title. Needs python3-h5py and python3-matplotlib.
"""
import argparse
import os
import sys

try:
    import h5py
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
except ImportError as e:
    sys.exit(f"show_samples.py: {e.name} is missing: apt-get install python3-h5py python3-matplotlib")


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file")
    p.add_argument("out", nargs="?")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--cols", type=int, default=8)
    p.add_argument("--dataset", default="/samples")
    a = p.parse_args()
    if a.n < 1 or a.cols < 1:
        sys.exit(f"show_samples.py: --n and --cols must be at least 1 (got {a.n}, {a.cols})")
    out = a.out or os.path.splitext(a.file)[0] + ".png"
    with h5py.File(a.file, "r") as f:
        if a.dataset not in f:
            sys.exit(f"show_samples.py: {a.file} has no dataset {a.dataset}")
        d = f[a.dataset]
        if d.ndim != 4 or d.shape[1] != 1:
            sys.exit(f"show_samples.py: {a.file}{a.dataset} is {d.shape}, expected [N, 1, H, W]")
        x = d[: min(a.n, d.shape[0])][:, 0]
        attrs = {k: text(v) for k, v in f.attrs.items()}
    n, cols = len(x), min(a.cols, len(x))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9 + 0.5), dpi=100, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow((np.clip(x[i], -1, 1) + 1) / 2, cmap="gray", vmin=0, vmax=1)
    title = os.path.basename(a.file)
    if "sampler" in attrs:
        title += f": {attrs['sampler']} {attrs.get('steps', '')} steps, eta {attrs.get('eta', '')}, {attrs.get('weights', '')} weights, step {attrs.get('step', '')}"
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"{out}: {n} images of {a.file}{a.dataset}")


if __name__ == "__main__":
    main()
