#!/usr/bin/python3
"""The same epoch as bench_epoch, in PyTorch: the paper's CNN, 1851 examples,
Adam (Keras defaults), the same sizes, batches and thread count. For each
point it times both memory formats (NCHW and channels-last) and keeps the
faster, so PyTorch is measured at its best. --autocast bf16 runs forward and
loss under torch.autocast("cpu", torch.bfloat16) (fp32 master weights and
Adam), the counterpart of histocnn's --precision bf16.

  /usr/bin/python3 bench/pytorch_epoch.py --sizes 200 --batches 50 --threads 2 --repeats 3
"""
import argparse
import json
import statistics
import time

import torch

from pytorch_train import Net  # the same model as the study's PyTorch engine


def epoch_seconds(size, batch, examples, fmt, repeats, autocast=None):
    torch.manual_seed(0)
    net = Net(size).to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    # uint8 crops converted per batch, as histocnn's loader does.
    pixels = torch.randint(0, 256, (examples, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 2, (examples,))

    def run(max_batches):
        order = torch.randperm(examples)
        for b, start in enumerate(range(0, examples, batch)):
            if b >= max_batches:
                break
            idx = order[start:start + batch]
            x = (pixels[idx].float() / 255.0).contiguous(memory_format=fmt)
            opt.zero_grad(set_to_none=True)
            if autocast:
                with torch.autocast("cpu", dtype=autocast):
                    logits = net(x)
                loss = torch.nn.functional.cross_entropy(logits.float(), labels[idx])
            else:
                loss = torch.nn.functional.cross_entropy(net(x), labels[idx])
            loss.backward()
            opt.step()

    run(3)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(1 << 30)
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="32,64,128,180,200")
    p.add_argument("--batches", default="10,20,50,100,150")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--examples", type=int, default=1851)
    p.add_argument("--layouts", default="nchw,channels_last",
                   help="memory formats to time (the faster is reported)")
    p.add_argument("--autocast", choices=["none", "bf16"], default="none",
                   help="bf16: forward under CPU autocast to bfloat16")
    p.add_argument("--json")
    a = p.parse_args()
    formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    if a.threads:
        torch.set_num_threads(a.threads)
    autocast = torch.bfloat16 if a.autocast == "bf16" else None
    out = {"engine": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "autocast": a.autocast,
           "mkldnn": torch.backends.mkldnn.is_available(), "points": []}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkldnn={torch.backends.mkldnn.is_available()}", flush=True)
    for size in map(int, a.sizes.split(",")):
        for batch in map(int, a.batches.split(",")):
            best = None
            for name in a.layouts.split(","):
                s, all_times = epoch_seconds(size, batch, a.examples, formats[name], a.repeats,
                                              autocast)
                print(f"{size:5d} {batch:6d} {name:>14s} {s:10.3f} s", flush=True)
                if best is None or s < best["epoch_seconds"]:
                    best = {"size": size, "batch": batch, "layout": name, "epoch_seconds": s,
                            "epoch_seconds_all": all_times, "images_per_second": a.examples / s}
            out["points"].append(best)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
