#!/usr/bin/python3
"""make_reference.py OUT.h5: the PyTorch reference fixture for tests/test_reference.c.

An implementation of every layer and of the unet-s network that shares no code with the C
one: PyTorch computes outputs, and autograd computes every gradient of loss = sum(out * dout)
for a random upstream gradient dout. The file holds, per group, the inputs, parameters, dout,
outputs and gradients, all float32 (integer timesteps int32), in PyTorch layouts
(conv weight [out, in, kh, kw], linear weight [out, in]).

Run with Debian's interpreter: /usr/bin/python3 tests/ref/make_reference.py build/ref/reference.h5
"""
import copy
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EXPECTED_PARAMS = 748161  # unet-s, as configs/unet-s.ini describes it
GN_EPS = 1e-5
GROUPS = 8
TEMB_SIN = 32
TEMB_DIM = 128


def put(h5, path, tensor):
    """Store a tensor (float -> float32, integer -> int32) at path; groups are created."""
    arr = tensor.detach().cpu().numpy() if torch.is_tensor(tensor) else np.asarray(tensor)
    arr = arr.astype(np.int32 if np.issubdtype(arr.dtype, np.integer) else np.float32)
    h5.create_dataset(path, data=arr)


def leaf(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).requires_grad_(True)


def backprop(out):
    """A random upstream gradient dout; loss = sum(out * dout) is backpropagated."""
    dout = torch.randn_like(out)
    (out * dout).sum().backward()
    return dout


# ---- per-layer groups ----

def conv_group(h5, name, n, cin, h, w, cout, k, stride):
    inp, weight, bias = leaf(n, cin, h, w), leaf(cout, cin, k, k, scale=0.3), leaf(cout)
    out = F.conv2d(inp, weight, bias, stride=stride, padding=k // 2)
    dout = backprop(out)
    for key, t in [("inp", inp), ("weight", weight), ("bias", bias), ("out", out),
                   ("dout", dout), ("dinp", inp.grad), ("dweight", weight.grad),
                   ("dbias", bias.grad)]:
        put(h5, f"/{name}/{key}", t)
    h5[f"/{name}"].attrs["k"] = k
    h5[f"/{name}"].attrs["stride"] = stride


def groupnorm_group(h5, name, n, c, hw_side, groups):
    # A non-zero mean and non-unit spread per channel so the normalisation does real work.
    inp = (torch.randn(n, c, hw_side, hw_side) * 2.0 + 0.5).requires_grad_(True)
    weight = (1.0 + 0.5 * torch.randn(c)).requires_grad_(True)
    bias = (0.5 * torch.randn(c)).requires_grad_(True)
    out = F.group_norm(inp, groups, weight, bias, eps=GN_EPS)
    dout = backprop(out)
    # Per-(image, group) statistics: mean and 1/sqrt(biased variance + eps).
    per_group = inp.detach().to(torch.float64).reshape(n, groups, -1)
    mean = per_group.mean(dim=2)
    rstd = 1.0 / torch.sqrt(per_group.var(dim=2, unbiased=False) + GN_EPS)
    for key, t in [("inp", inp), ("weight", weight), ("bias", bias), ("out", out),
                   ("dout", dout), ("dinp", inp.grad), ("dweight", weight.grad),
                   ("dbias", bias.grad), ("mean", mean), ("rstd", rstd)]:
        put(h5, f"/{name}/{key}", t)
    h5[f"/{name}"].attrs["groups"] = groups


def linear_group(h5):
    inp, weight, bias = leaf(3, 5), leaf(4, 5, scale=0.5), leaf(4)
    out = F.linear(inp, weight, bias)
    dout = backprop(out)
    for key, t in [("inp", inp), ("weight", weight), ("bias", bias), ("out", out),
                   ("dout", dout), ("dinp", inp.grad), ("dweight", weight.grad),
                   ("dbias", bias.grad)]:
        put(h5, f"/linear/{key}", t)


def silu_group(h5):
    x = torch.randn(2, 3, 4, 4) * 3.0
    flat = x.view(-1)
    flat[0], flat[1], flat[2], flat[3] = 20.0, -20.0, 19.5, -19.5  # saturated ends
    flat[4], flat[5] = 0.0, -1.2784645  # zero, and near the minimum of silu
    inp = x.requires_grad_(True)
    out = F.silu(inp)
    dout = backprop(out)
    for key, t in [("inp", inp), ("out", out), ("dout", dout), ("dinp", inp.grad)]:
        put(h5, f"/silu/{key}", t)


def upsample_group(h5):
    inp = leaf(2, 3, 4, 5)
    out = F.interpolate(inp, scale_factor=2, mode="nearest")
    dout = backprop(out)
    for key, t in [("inp", inp), ("out", out), ("dout", dout), ("dinp", inp.grad)]:
        put(h5, f"/upsample/{key}", t)


def concat_group(h5):
    a, b = leaf(2, 3, 4, 4), leaf(2, 2, 4, 4)
    out = torch.cat([a, b], dim=1)
    dout = backprop(out)
    for key, t in [("a", a), ("b", b), ("out", out), ("dout", dout), ("da", a.grad),
                   ("db", b.grad)]:
        put(h5, f"/concat/{key}", t)


def add_group(h5):
    a, b = leaf(2, 3, 4, 4), leaf(2, 3, 4, 4)
    out = a + b
    dout = backprop(out)
    for key, t in [("a", a), ("b", b), ("out", out), ("dout", dout), ("da", a.grad),
                   ("db", b.grad)]:
        put(h5, f"/add/{key}", t)


def add_channel_group(h5):
    x, e = leaf(2, 3, 4, 4), leaf(2, 3)
    out = x + e[:, :, None, None]
    dout = backprop(out)
    for key, t in [("x", x), ("e", e), ("out", out), ("dout", dout), ("dx", x.grad),
                   ("de", e.grad)]:
        put(h5, f"/add_channel/{key}", t)


def sinusoidal(t, dim, dtype=torch.float32):
    """[n, dim]: sin(t f_i) then cos(t f_i), f_i = 10000^(-i/half), computed in float64."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    args = t.to(torch.float64)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1).to(dtype)


def temb_group(h5):
    t = torch.tensor([0, 1, 7, 150, 298, 299], dtype=torch.int32)
    put(h5, "/temb/t", t)
    put(h5, "/temb/out", sinusoidal(t, 32))


def mse_group(h5):
    pred, target = leaf(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    loss = F.mse_loss(pred, target, reduction="mean")
    loss.backward()
    for key, t in [("pred", pred), ("target", target), ("loss", loss.reshape(1)),
                   ("dpred", pred.grad)]:
        put(h5, f"/mse/{key}", t)


def attention_group(h5):
    """Single-head self-attention over the 7x7 positions: qkv [n, 3c, 7, 7] -> out [n, c, 7, 7]."""
    n, c, side = 2, 8, 7
    qkv = leaf(n, 3 * c, side, side)
    q, k, v = (x.reshape(n, c, side * side) for x in qkv.split(c, dim=1))
    p = torch.softmax(torch.einsum("nci,ncj->nij", q, k) / c ** 0.5, dim=-1)
    out = torch.einsum("ncj,nij->nci", v, p).reshape(n, c, side, side)
    dout = backprop(out)
    for key, t in [("qkv", qkv), ("out", out), ("dout", dout), ("dqkv", qkv.grad)]:
        put(h5, f"/attention/{key}", t)


def embedding_group(h5):
    """nn.Embedding rows for labels with repeats (the class embedding)."""
    emb = torch.nn.Embedding(5, 6)
    labels = torch.tensor([4, 1, 4, 0, 4, 2])
    out = emb(labels)
    dout = backprop(out)
    for key, t in [("labels", labels), ("weight", emb.weight), ("out", out), ("dout", dout),
                   ("dweight", emb.weight.grad)]:
        put(h5, f"/embedding/{key}", t)


# ---- unet-s ----

def conv3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, cin, eps=GN_EPS)
        self.conv1 = conv3(cin, cout)
        self.temb_proj = nn.Linear(TEMB_DIM, cout)
        self.norm2 = nn.GroupNorm(GROUPS, cout, eps=GN_EPS)
        self.conv2 = conv3(cout, cout)
        if cin != cout:
            self.skip = nn.Conv2d(cin, cout, 1)
        else:
            self.skip = None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class TimeMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin1 = nn.Linear(TEMB_SIN, TEMB_DIM)
        self.lin2 = nn.Linear(TEMB_DIM, TEMB_DIM)

    def forward(self, t):
        emb = sinusoidal(t, TEMB_SIN, self.lin1.weight.dtype)
        return self.lin2(F.silu(self.lin1(emb)))


class Down(nn.Module):
    def __init__(self, cin, cout, downsample):
        super().__init__()
        self.res = nn.ModuleList([ResBlock(cin, cout)])
        if downsample:
            self.downsample = conv3(cout, cout, stride=2)
        else:
            self.downsample = None


class Up(nn.Module):
    def __init__(self, cin, cout, upsample_to):
        super().__init__()
        self.res = nn.ModuleList([ResBlock(cin, cout)])
        if upsample_to:
            self.upsample = conv3(cout, upsample_to)
        else:
            self.upsample = None


class UNet(nn.Module):
    """unet-s: base 32, multipliers (1, 2, 2), one ResBlock per level, 8 GroupNorm groups."""

    def __init__(self):
        super().__init__()
        self.temb = TimeMLP()
        self.conv_in = conv3(1, 32)
        self.down = nn.ModuleList([Down(32, 32, True), Down(32, 64, True),
                                   Down(64, 64, False)])
        self.mid = nn.ModuleList([ResBlock(64, 64), ResBlock(64, 64)])
        self.up = nn.ModuleList([Up(128, 64, 64), Up(128, 64, 32), Up(64, 32, None)])
        self.out_norm = nn.GroupNorm(GROUPS, 32, eps=GN_EPS)
        self.out_conv = conv3(32, 1)

    def forward(self, x, t):
        temb = self.temb(t)
        h = self.conv_in(x)
        skips = []
        for level in self.down:
            for block in level.res:
                h = block(h, temb)
            skips.append(h)
            if level.downsample is not None:
                h = level.downsample(h)
        for block in self.mid:
            h = block(h, temb)
        for level in self.up:
            for block in level.res:
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
            if level.upsample is not None:
                h = level.upsample(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out_conv(F.silu(self.out_norm(h)))


def count_flops(model, x, t):
    """Forward FLOPs per image: 2 per multiply-add of every conv and linear."""
    total = [0]

    def hook(mod, inputs, out):
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            macs = out.shape[1] * out.shape[2] * out.shape[3] * mod.in_channels * kh * kw
        else:
            macs = mod.in_features * mod.out_features
        total[0] += 2 * macs

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x[:1], t[:1])
    for h in handles:
        h.remove()
    return total[0]


def norm_err(ours, ref):
    return ((ours - ref).abs().max() / max(ref.abs().max().item(), 1e-6)).item()


def calibrate(model, x, t, dout, out32, dx32):
    """How far PyTorch's own float32 result is from a float64 run of the same network: the
    scale of error that summation order alone causes, which the C test's thresholds must
    allow. Printed, not stored."""
    m64 = copy.deepcopy(model).double()
    m64.zero_grad()
    x64 = x.double().requires_grad_(True)
    out64 = m64(x64, t)
    (out64 * dout.double()).sum().backward()
    worst = max((norm_err(p.grad.double(), p64.grad), name) for (name, p), p64
                in zip(model.named_parameters(), m64.parameters()))
    print(f"float32 vs float64 reference: out {norm_err(out32.double(), out64):.2e}, "
          f"dx {norm_err(dx32.double(), x64.grad):.2e}, worst parameter gradient "
          f"{worst[0]:.2e} ({worst[1]})")


def unet_group(h5):
    model = UNet()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.GroupNorm):
                mod.weight.copy_(1.0 + 0.1 * torch.randn_like(mod.weight))
                mod.bias.copy_(0.1 * torch.randn_like(mod.bias))
    params = dict(model.named_parameters())
    count = sum(p.numel() for p in params.values())
    assert count == EXPECTED_PARAMS, f"unet-s has {count} parameters, expected {EXPECTED_PARAMS}"

    x = torch.randn(3, 1, 28, 28).requires_grad_(True)
    t = torch.tensor([0, 137, 299], dtype=torch.int32)
    mflop = count_flops(model, x.detach(), t) / 1e6
    out = model(x, t)
    dout = backprop(out)

    put(h5, "/unet/x", x)
    put(h5, "/unet/t", t)
    put(h5, "/unet/out", out)
    put(h5, "/unet/dout", dout)
    put(h5, "/unet/dx", x.grad)
    for name, p in params.items():
        put(h5, f"/unet/params/{name}", p)
        put(h5, f"/unet/grads/{name}", p.grad)
    calibrate(model, x.detach(), t, dout, out.detach(), x.grad)
    h5["/unet"].attrs["param_count"] = np.int64(count)
    h5["/unet"].attrs["mflop_per_image"] = mflop
    print(f"unet-s: {count} parameters, {len(params)} tensors, "
          f"{mflop:.2f} MFLOP forward per image")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_reference.py OUT.h5")
    torch.manual_seed(1234)
    torch.set_num_threads(2)
    torch.set_default_dtype(torch.float32)
    # Written under a temporary name and renamed, so a failed run leaves no fixture behind.
    final = sys.argv[1]
    tmp = final + ".tmp"
    with h5py.File(tmp, "w") as h5:
        h5.attrs["generator"] = "tests/ref/make_reference.py"
        h5.attrs["torch_version"] = str(torch.__version__)
        conv_group(h5, "conv_s1", 2, 3, 9, 9, 4, 3, 1)
        conv_group(h5, "conv_s2", 2, 3, 10, 10, 4, 3, 2)
        conv_group(h5, "conv_s2_odd", 2, 3, 7, 7, 4, 3, 2)
        conv_group(h5, "conv_1x1", 2, 5, 6, 6, 3, 1, 1)
        groupnorm_group(h5, "groupnorm", 2, 8, 5, 4)
        groupnorm_group(h5, "groupnorm_g1", 2, 8, 5, 1)
        groupnorm_group(h5, "groupnorm_gc", 2, 8, 5, 8)
        linear_group(h5)
        silu_group(h5)
        upsample_group(h5)
        concat_group(h5)
        add_group(h5)
        add_channel_group(h5)
        temb_group(h5)
        mse_group(h5)
        unet_group(h5)
        attention_group(h5)
        embedding_group(h5)
    os.replace(tmp, final)
    print(f"wrote {final}")


if __name__ == "__main__":
    main()
