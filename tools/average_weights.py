#!/usr/bin/env python3
"""tools/average_weights.py OUT.h5 GROUP CKPT [CKPT ...]: a weights file whose EMA weights are the
mean of the CKPTs' GROUP tensors (GROUP: ema or params), tensor by tensor, for `ddpm sample
--checkpoint OUT.h5` (which samples /ema by default). Averaging the EMA weights of the last few
epoch checkpoints stretches the EMA's window after the fact (a uniform average of K epochs'
EMAs reaches back K epochs further); averaging /params is stochastic weight averaging.

Everything else (the file's attributes, /params, each tensor's attributes) comes from the last
CKPT, as `ddpm export` writes it: content "weights", no Adam state. The CKPTs must hold the same
network ([model] and [diffusion] of their config attribute, tensor names and shapes); OUT is
written as OUT.tmp and renamed. Needs h5py and numpy.
"""
import os
import sys

import h5py
import numpy as np


def fail(msg):
    print(f"average_weights.py: {msg}", file=sys.stderr)
    sys.exit(2)


def network(f):
    """The [model] and [diffusion] lines of a checkpoint's config: what the weights mean (a run
    resumed with more steps changes [train] only)."""
    text = f.attrs["config"]
    text = text.decode() if isinstance(text, bytes) else str(text)
    keep, out = False, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            keep = line in ("[model]", "[diffusion]")
        if keep and line and not line.startswith(";"):
            out.append(line)
    return out


def main(argv):
    if len(argv) < 4:
        fail("usage: average_weights.py OUT.h5 GROUP CKPT [CKPT ...]")
    out, group, ckpts = argv[1], argv[2], argv[3:]
    if group not in ("ema", "params"):
        fail(f"GROUP '{group}': expected ema or params")
    if len(set(ckpts)) != len(ckpts):
        fail("a checkpoint is given twice")
    files = []
    for c in ckpts:
        try:
            f = h5py.File(c, "r")
        except OSError as e:
            fail(f"{c}: cannot open: {e}")
        if f.attrs.get("kind") not in (b"ddpm-checkpoint", "ddpm-checkpoint") or group not in f:
            fail(f"{c}: not a ddpm checkpoint with /{group}")
        files.append(f)
    last = files[-1]
    net = network(last)
    names = sorted(last[group].keys())
    for c, f in zip(ckpts, files):
        if network(f) != net:
            fail(f"{c}: another network or diffusion than {ckpts[-1]}'s ([model] or [diffusion] differ)")
        if sorted(f[group].keys()) != names or any(f[group][n].shape != last[group][n].shape for n in names):
            fail(f"{c}: other tensors in /{group} than {ckpts[-1]}")
    tmp = out + ".tmp"
    try:
        write(tmp, group, ckpts, files, names)
    except BaseException:
        if os.path.exists(tmp):  # a failed write (a full disk) leaves no partial file behind
            os.unlink(tmp)
        raise
    os.replace(tmp, out)
    print(f"{out}: /ema = mean of /{group} over {len(ckpts)} checkpoints ({len(names)} tensors)")


def write(tmp, group, ckpts, files, names):
    last = files[-1]
    with h5py.File(tmp, "w") as o:
        for k, v in last.attrs.items():
            o.attrs[k] = v
        o.attrs["content"] = np.bytes_("weights")  # fixed-length, as ddpm writes strings
        o.attrs["averaged_from"] = np.bytes_("; ".join(f"{c} /{group} (step {int(f.attrs['step'])})"
                                             for c, f in zip(ckpts, files)))
        last.copy("params", o)
        o.create_group("ema")
        for n in names:
            mean = np.mean([f[group][n][()].astype(np.float64) for f in files], axis=0)
            d = o["ema"].create_dataset(n, data=mean.astype(np.float32))
            for k, v in last[group][n].attrs.items():
                d.attrs[k] = v


if __name__ == "__main__":
    main(sys.argv)
