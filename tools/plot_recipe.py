#!/usr/bin/python3
"""plot_recipe.py DIR OUT.png [--n N] [ROW ...]: the recipe table of results/recipe.md as bars.

For each row (a folder DIR/ROW written by tools/recipe.sh; default: every folder of DIR that has
at least one of the three files), the FID of DDPM over all T steps, of deterministic DDIM-50 (eta 0) and of
stochastic DDIM-50 (eta 1), read from ddpm-clip-nN.json, ddim50-eta0-clip-nN.json and
ddim50-eta1-clip-nN.json (N = 1000 unless --n), on a log scale, with the real-data floor
(DIR/real-train-nN.json) as a line when present. A row scored with only some of the samplers at
N (at N = 10,000 the table has no DDPM column) is drawn without the others' bars. Rows are drawn
in the order given, or sorted by their first FID (DDPM where scored), largest first. Prints one
line per row. Needs Debian's python3-matplotlib."""
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
    """The three FIDs of one row (None for a sampler not scored at n), or None when none is."""
    fids = []
    for key, _ in SETTINGS:
        path = os.path.join(folder, f"{key}-clip-n{n}.json")
        if not os.path.isfile(path):
            fids.append(None)
            continue
        with open(path) as f:
            doc = json.load(f)
        if doc.get("n") != n:
            sys.exit(f"plot_recipe.py: {path} scores {doc.get('n')} images, not {n}")
        fids.append(float(doc["fid"]))
    return fids if any(v is not None for v in fids) else None


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
                sys.exit(f"plot_recipe.py: {folder} has no N = {n} score")
            continue
        table[row] = fids
    if not table:
        sys.exit(f"plot_recipe.py: no row of {root} has N = {n} scores")
    first = lambda r: next(v for v in table[r] if v is not None)
    names = list(table) if rows else sorted(table, key=lambda r: -first(r))

    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 4.2))
    x = np.arange(len(names))
    width = 0.26
    for k, (_, label) in enumerate(SETTINGS):
        have = [i for i, r in enumerate(names) if table[r][k] is not None]
        if not have:
            continue
        vals = [table[names[i]][k] for i in have]
        bars = ax.bar(x[have] + (k - 1) * width, vals, width, label=label, color=f"C{k}")
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v * 1.03, f"{v:.0f}", ha="center",
                    va="bottom", fontsize=7)
    scored = [v for fids in table.values() for v in fids if v is not None]
    floor = os.path.join(root, f"real-train-n{n}.json")
    if os.path.isfile(floor):
        with open(floor) as f:
            scored.append(float(json.load(f)["fid"]))
        ax.axhline(scored[-1], color="grey", linestyle="--", linewidth=1,
                   label="real training images, same N")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks([10, 20, 30, 50, 100, 200, 300, 500])
    low, high = min(scored), max(scored)
    ax.set_ylim(low * 0.8, high * 1.25)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_ylabel(f"FID (N = {n}, lower is better)")
    ax.set_title("The recipe table: 20-epoch runs, x0 clamped, EMA weights")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    show = lambda v: "-" if v is None else f"{v:.1f}"
    for r in names:
        d, e0, e1 = (show(v) for v in table[r])
        print(f"{r}: DDPM {d}, DDIM-50 eta 0 {e0}, eta 1 {e1}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
