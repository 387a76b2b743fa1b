#!/usr/bin/python3
"""torch_load.py CKPT.h5 [--weights ema|params] [--check] [--ddpm bin/ddpm]

Load a ddpm checkpoint (or weights-only file) into the equivalent PyTorch module: the unet-s
network as tests/ref/make_reference.py builds it, whose parameter names and layouts are the
checkpoint's dataset names and shapes. With --check, also run one forward pass on fixed random
images at t = 123 in PyTorch and in `bin/ddpm predict` (for a class-conditional checkpoint, with
a digit, the last digit and the null label), print the largest difference relative to the
output's largest value, and exit 1 if it exceeds 1e-4.

In your own code:
    model = load("results/unet-s/final.h5")      # an nn.Module in eval mode, EMA weights
    eps = model(x, t)                            # x [N,1,28,28] in [-1,1], t [N] int64
    eps = model(x, t, y)                         # a conditional checkpoint: y [N] int64 in
                                                 # 0..classes (classes = the null label)
A checkpoint trained with [diffusion] prediction = v (results/cosine+v) returns v, not eps:
eps = sqrt(abar_t) v + sqrt(1 - abar_t) x (`ddpm predict` writes both).
Needs Debian's python3-torch and python3-h5py.
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
    import torch
except ImportError as e:
    sys.exit(f"torch_load.py: {e.name} is missing: apt-get install python3-torch python3-h5py")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
from make_reference import UNet  # noqa: E402

UNET_S = {"base": "32", "mult": "1,2,2", "res_blocks": "1", "groups": "8", "time_sin_dim": "32",
          "time_dim": "128", "attn_res": "0", "in_channels": None}


class CondUNet(UNet):
    """unet-s with [model] classes = K: a learned vector per label (K = the null label) added to
    the time embedding before the SiLU every residual block applies to it."""

    def __init__(self, classes):
        super().__init__()
        self.class_emb = torch.nn.Embedding(classes + 1, int(UNET_S["time_dim"]))
        self.labels = None
        self.temb.register_forward_hook(lambda mod, inp, out: out + self.class_emb(self.labels))

    def forward(self, x, t, y):
        self.labels = y
        return super().forward(x, t)


def model_keys(config_text):
    """The [model] keys of a checkpoint's config attribute."""
    keys, section = {}, None
    for line in config_text.splitlines():
        line = line.split(";")[0].strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and section == "model":
            k, v = (s.strip() for s in line.split("=", 1))
            keys[k] = v
    return keys


def load(path, weights="ema"):
    with h5py.File(path, "r") as f:
        kind = f.attrs.get("kind")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind != "ddpm-checkpoint":
            sys.exit(f"torch_load.py: {path} is not a ddpm checkpoint (kind {kind!r})")
        cfg = f.attrs["config"]
        cfg = cfg.decode() if isinstance(cfg, bytes) else cfg
        keys = model_keys(cfg)
        for k, want in UNET_S.items():
            if want is not None and keys.get(k, "0" if k == "attn_res" else None) != want:
                sys.exit(f"torch_load.py: {path}: [model] {k} = {keys.get(k)}; the PyTorch mirror "
                         f"here is unet-s ({k} = {want})")
        state = {name: torch.from_numpy(d[()]) for name, d in f[weights].items()}
    classes = int(keys.get("classes", "0"))
    model = CondUNet(classes) if classes else UNet()
    model.load_state_dict(state, strict=True)
    model.classes = classes
    return model.eval()


def predict(ddpm, path, weights, x, t, label):
    """bin/ddpm predict on x at timestep t (and class label, None: none given): the network's
    output, /v for a v-prediction checkpoint, else /eps."""
    with tempfile.TemporaryDirectory() as d:
        with h5py.File(os.path.join(d, "x.h5"), "w") as f:
            f["x"] = x.numpy()
        cmd = [ddpm, "predict", "--checkpoint", path, "--x", os.path.join(d, "x.h5"), "--t", str(t),
               "--weights", "ema" if weights == "ema" else "model", "--out", os.path.join(d, "eps.h5")]
        r = subprocess.run(cmd + (["--class", str(label)] if label is not None else []),
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"torch_load.py: {ddpm} predict failed: {r.stderr.strip()}")
        with h5py.File(os.path.join(d, "eps.h5"), "r") as f:
            return torch.from_numpy(f["v" if "v" in f else "eps"][()])


def check(path, weights, ddpm):
    """Largest relative difference of one forward pass (and for a conditional model, one per
    label tried: a digit, and the null label that no --class means)."""
    model = load(path, weights)
    g = torch.Generator().manual_seed(7)
    x = torch.rand(4, 1, 28, 28, generator=g) * 2 - 1
    t, worst = 123, 0.0
    for label in ([3, model.classes - 1, None] if model.classes else [None]):
        ours = predict(ddpm, path, weights, x, t, label)
        with torch.no_grad():
            tt = torch.full((4,), t, dtype=torch.long)
            if model.classes:
                y = torch.full((4,), model.classes if label is None else label, dtype=torch.long)
                ref = model(x, tt, y)
            else:
                ref = model(x, tt)
        err = ((ours - ref).abs().max() / ref.abs().max()).item()
        what = "" if not model.classes else (" with the null label" if label is None else f" with class {label}")
        print(f"{path}: {sum(p.numel() for p in model.parameters())} parameters loaded into PyTorch "
              f"({weights}); forward at t = {t} on 4 images{what}: max |ddpm - torch| / max |torch| = {err:.2e}")
        worst = max(worst, err)
    return worst


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--weights", choices=["ema", "params"], default="ema")
    p.add_argument("--check", action="store_true")
    p.add_argument("--ddpm", default=os.path.join(HERE, "..", "bin", "ddpm"))
    a = p.parse_args()
    if a.check:
        sys.exit(0 if check(a.checkpoint, a.weights, a.ddpm) <= 1e-4 else 1)
    model = load(a.checkpoint, a.weights)
    print(f"{a.checkpoint}: {sum(p.numel() for p in model.parameters())} parameters loaded ({a.weights})")


if __name__ == "__main__":
    main()
