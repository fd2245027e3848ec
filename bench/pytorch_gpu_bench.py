#!/usr/bin/env python3
"""PyTorch engine of bench/gpu_side_by_side.sh: the paper's CNN trained for
whole epochs (1851 crops of random pixels, the paper's count) over a grid of
input sizes x batch sizes, in one process, as `histocnn bench` does for
histocnn. Random pixels are fair to PyTorch: its dense kernels take the same
time whatever the content. histocnn's side trains on the study's synthetic
tissue (`histocnn bench --pixels tissue`, the default since 2026-12-06): its
pooled gradients skip what ReLU switched off, so its work follows the
content, and random pixels flattered it (docs/results/cpu-pooled-balance.md).

Precisions, each what a PyTorch user gets by asking for it:
  fp32  strict fp32: TF32 off in cuDNN convolutions and cuBLAS matmuls
  tf32  PyTorch's defaults: TF32 in cuDNN convolutions (matmuls stay fp32)
  bf16  torch.autocast(device_type="cuda", dtype=torch.bfloat16), fp32 weights and Adam
--compile wraps the model in torch.compile (default mode); its compilation is
part of the warm-up epochs, not of the timed ones.

Writes one JSON document: {"engine", "precision", "examples", "points": [{size, batch,
epoch_seconds, epoch_seconds_all, images_per_second, peak_memory_bytes,
device_growth_bytes}]}.
Exit status 3 with a line starting "skip:" when it cannot run here.
"""
import argparse
import json
import os
import statistics
import sys
import time

try:
    import torch
except ImportError:
    print("skip: PyTorch is not installed")
    sys.exit(3)


# The paper's CNN, the same module the study's PyTorch engine trains.
from pytorch_train import Net  # noqa: E402  (beside this file, in the tree and the package)


def set_precision(precision):
    strict = precision == "fp32"
    torch.backends.cudnn.allow_tf32 = not strict
    torch.backends.cuda.matmul.allow_tf32 = False


def measure(size, batch, a, device):
    n = a.benign + a.malignant
    # cudaMemGetInfo around the point, as histocnn's device_growth_bytes: what
    # the point took of the device, cuDNN's workspaces and the allocator's
    # cache included (the previous point's cache released first).
    torch.cuda.empty_cache()
    free_before, _ = torch.cuda.mem_get_info()
    gen = torch.Generator().manual_seed(size)
    pixels = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen).pin_memory()
    labels = torch.cat([torch.zeros(a.benign), torch.ones(a.malignant)]).long().pin_memory()
    torch.manual_seed(1)
    net = Net(size).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    model = torch.compile(net) if a.compile else net
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for epoch in range(a.warmup + a.epochs):
        torch.cuda.synchronize()
        t = time.perf_counter()
        order = torch.randperm(n)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            x = pixels[idx].to(device, non_blocking=True).float() / 255.0
            y = labels[idx].to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                out = model(x)
                loss = torch.nn.functional.cross_entropy(out, y)
            loss.backward()
            opt.step()
            correct += (out.argmax(1) == y).sum()
        torch.cuda.synchronize()
        if epoch >= a.warmup:
            times.append(time.perf_counter() - t)
    s = statistics.median(times)
    free_after, _ = torch.cuda.mem_get_info()
    return {"size": size, "batch": batch, "epoch_seconds": s, "epoch_seconds_all": times,
            "images_per_second": n / s, "peak_memory_bytes": torch.cuda.max_memory_allocated(),
            "device_growth_bytes": free_before - free_after}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="32,64,128,200")
    p.add_argument("--batches", default="10,50,150")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--benign", type=int, default=941)
    p.add_argument("--malignant", type=int, default=910)
    p.add_argument("--json", required=True)
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("skip: no CUDA device visible to PyTorch")
        sys.exit(3)
    set_precision(a.precision)
    device = torch.device("cuda")
    result = {"engine": "pytorch-compile" if a.compile else "pytorch", "precision": a.precision,
              "library": f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}",
              "gpu": torch.cuda.get_device_name(0),
              "examples": a.benign + a.malignant, "points": []}
    for size in (int(s) for s in a.sizes.split(",")):
        for batch in (int(b) for b in a.batches.split(",")):
            try:
                point = measure(size, batch, a, device)
                print(f"{size:5d} {batch:6d} {point['epoch_seconds']:10.4f} s/epoch "
                      f"{point['images_per_second']:10.0f} img/s  peak "
                      f"{point['peak_memory_bytes'] / 1e6:8.1f} MB", flush=True)
            except Exception as e:  # a compile or out-of-memory failure: record it, go on
                point = {"size": size, "batch": batch, "error": f"{type(e).__name__}: {e}"[:300]}
                print(f"{size:5d} {batch:6d} failed: {point['error']}", flush=True)
            result["points"].append(point)
    with open(a.json + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
