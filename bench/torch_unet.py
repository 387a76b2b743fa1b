#!/usr/bin/python3
"""torch_unet.py: the PyTorch side of `make bench-compare` (bench/compare.sh).

    /usr/bin/python3 bench/torch_unet.py train  [--batch 128] [--iters 5] [--threads T]
    /usr/bin/python3 bench/torch_unet.py sample [--batch 256] [--iters 5] [--threads T]

The network is unet-s exactly as the reference tests build it (tests/ref/make_reference.py:
same layers, shapes and parameter count as bin/ddpm's). train: forward, MSE, backward, Adam;
sample: one network evaluation without gradients. Prints one line in bench_step's format:
mode, batch, threads, median ms, images (or image-steps) per second, GFLOP/s (3x or 1x the
forward FLOPs bin/ddpm counts) and peak RSS. The first iteration warms up and is not timed.
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from make_reference import UNet, count_flops  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "sample"])
    p.add_argument("--batch", type=int)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    a = p.parse_args()
    batch = a.batch or (128 if a.mode == "train" else 256)
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = UNet()
    x = torch.rand(batch, 1, 28, 28) * 2 - 1
    eps = torch.randn(batch, 1, 28, 28)
    t = torch.arange(batch) * 37 % 300
    flops = count_flops(model, x[:1], t[:1])
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    times = []
    for it in range(a.iters + 1):
        t0 = time.perf_counter()
        if a.mode == "train":
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x, t), eps)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x, t)
        if it > 0:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    per_s = batch / med
    gflops = flops * (3 if a.mode == "train" else 1) * per_s / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"mode={a.mode} batch={batch} threads={a.threads} ms={1e3 * med:.1f} per_s={per_s:.1f} "
          f"gflops={gflops:.1f} rss_mib={rss:.0f}")


if __name__ == "__main__":
    main()
