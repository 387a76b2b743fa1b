#!/usr/bin/python3
"""plot_recipe.py DIR OUT.png [--n N] [ROW ...]: the recipe table of results/quality.md as bars.

For each row (a folder DIR/ROW written by tools/recipe.sh; default: every folder of DIR that has
the three files), the FID of DDPM over all T steps, of deterministic DDIM-50 (eta 0) and of
stochastic DDIM-50 (eta 1), read from ddpm-clip-nN.json, ddim50-eta0-clip-nN.json and
ddim50-eta1-clip-nN.json (N = 1000 unless --n), on a log scale, with the real-data floor
(DIR/real-train-nN.json) as a line when present. Rows are drawn in the order given, or sorted
by their DDPM FID, largest first. Prints one line per row. Needs Debian's python3-matplotlib."""
import json
import os
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np
except ImportError as e:
    sys.exit(f"plot_recipe.py: {e.name} is missing: apt-get install python3-matplotlib")

SETTINGS = (("ddpm", "DDPM, all T steps"), ("ddim50-eta0", "DDIM-50, eta 0"),
            ("ddim50-eta1", "DDIM-50, eta 1"))


def row_fids(folder, n):
    """The three FIDs of one row, or None when a file is missing."""
    fids = []
    for key, _ in SETTINGS:
        path = os.path.join(folder, f"{key}-clip-n{n}.json")
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            doc = json.load(f)
        if doc.get("n") != n:
            sys.exit(f"plot_recipe.py: {path} scores {doc.get('n')} images, not {n}")
        fids.append(float(doc["fid"]))
    return fids


def main():
    args, n = [], 1000
    it = iter(sys.argv[1:])
    for a in it:
        if a == "--n":
            v = next(it, None)
            if v is None or not v.isdigit() or int(v) < 1:
                sys.exit("plot_recipe.py: --n needs a number of images")
            n = int(v)
        else:
            args.append(a)
    if len(args) < 2:
        sys.exit("usage: tools/plot_recipe.py DIR OUT.png [--n N] [ROW ...]")
    root, out, rows = args[0], args[1], args[2:]
    if not os.path.isdir(root):
        sys.exit(f"plot_recipe.py: {root} is not a folder")
    table = {}
    for row in rows or sorted(os.listdir(root)):
        folder = os.path.join(root, row)
        if not os.path.isdir(folder):
            if rows:
                sys.exit(f"plot_recipe.py: no row folder {folder}")
            continue
        fids = row_fids(folder, n)
        if fids is None:
            if rows:
                sys.exit(f"plot_recipe.py: {folder} lacks one of the three N = {n} scores")
            continue
        table[row] = fids
    if not table:
        sys.exit(f"plot_recipe.py: no row of {root} has the three N = {n} scores")
    names = list(table) if rows else sorted(table, key=lambda r: -table[r][0])

    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 4.2))
    x = np.arange(len(names))
    width = 0.26
    for k, (_, label) in enumerate(SETTINGS):
        vals = [table[r][k] for r in names]
        bars = ax.bar(x + (k - 1) * width, vals, width, label=label)
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v * 1.03, f"{v:.0f}", ha="center",
                    va="bottom", fontsize=7)
    floor = os.path.join(root, f"real-train-n{n}.json")
    if os.path.isfile(floor):
        with open(floor) as f:
            ax.axhline(float(json.load(f)["fid"]), color="grey", linestyle="--", linewidth=1,
                       label="real training images, same N")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks([20, 30, 50, 100, 200, 300, 500])
    low = min(min(v) for v in table.values())
    high = max(max(v) for v in table.values())
    ax.set_ylim(low * 0.8, high * 1.25)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_ylabel(f"FID (N = {n}, lower is better)")
    ax.set_title("The recipe table: 20-epoch runs, x0 clamped, EMA weights")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    for r in names:
        print(f"{r}: DDPM {table[r][0]:.1f}, DDIM-50 eta 0 {table[r][1]:.1f}, eta 1 {table[r][2]:.1f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
