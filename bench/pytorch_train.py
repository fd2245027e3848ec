#!/usr/bin/python3
"""PyTorch engine of `histocnn study`: trains the paper's CNN on the exact crops
histocnn trains on (exported with `histocnn train --export-examples`), with the
same batch size, epochs and Adam settings, and prints/writes one JSON row.

Exit status 3 with a line starting "skip:" means the point cannot run here
(no CUDA device, PyTorch missing); the study records it as skipped.
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
    print("skip: PyTorch is not installed (Debian: python3-torch)")
    sys.exit(3)


class Net(torch.nn.Module):
    def __init__(self, size):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 32, 3)
        self.conv2 = torch.nn.Conv2d(32, 32, 3)
        self.conv3 = torch.nn.Conv2d(32, 64, 3)
        s = size
        for _ in range(3):
            s = (s - 2) // 2
        self.fc1 = torch.nn.Linear(64 * s * s, 64)
        self.drop = torch.nn.Dropout(0.5)
        self.fc2 = torch.nn.Linear(64, 2)

    def forward(self, x):
        pool, relu = torch.nn.functional.max_pool2d, torch.relu
        x = pool(relu(self.conv1(x)), 2)
        x = pool(relu(self.conv2(x)), 2)
        x = pool(relu(self.conv3(x)), 2)
        return self.fc2(self.drop(relu(self.fc1(torch.flatten(x, 1)))))


def load_examples(path):
    with open(path, "rb") as f:
        header = json.loads(f.readline())
        n, h, w = header["count"], header["height"], header["width"]
        labels = torch.frombuffer(bytearray(f.read(4 * n)), dtype=torch.int32).long()
        pixels = torch.frombuffer(bytearray(f.read(n * h * w * 3)), dtype=torch.uint8)
    return pixels.reshape(n, h, w, 3).permute(0, 3, 1, 2).contiguous(), labels, h


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--examples", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json")
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        print("skip: no CUDA device visible to PyTorch")
        sys.exit(3)
    if a.device == "cpu" and a.threads:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: a.threads])
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    pixels, labels, size = load_examples(a.examples)
    device = torch.device(a.device)
    best = None
    layouts = [("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)]
    for name, fmt in layouts:
        net = Net(size).to(device).to(memory_format=fmt)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        times, accuracy = [], 0.0
        for epoch in range(a.epochs):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            order = torch.randperm(len(labels))
            correct = 0
            for start in range(0, len(labels), a.batch):
                idx = order[start:start + a.batch]
                x = (pixels[idx].to(device, non_blocking=True).float() / 255.0).contiguous(memory_format=fmt)
                y = labels[idx].to(device, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                out = net(x)
                loss = torch.nn.functional.cross_entropy(out, y)
                loss.backward()
                opt.step()
                correct += (out.argmax(1) == y).sum()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if epoch >= a.warmup:
                times.append(time.perf_counter() - t)
            accuracy = float(correct) / len(labels)
        row = {"epoch_seconds": statistics.median(times), "epoch_seconds_all": times,
               "images_per_second": len(labels) / statistics.median(times),
               "final_train_accuracy": accuracy, "layout": name, "library": f"torch {torch.__version__}",
               "threads_used": torch.get_num_threads()}
        if device.type == "cuda":
            row["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
            row["device_malloc_calls"] = torch.cuda.memory_stats().get("segment.all.allocated")
        if best is None or row["epoch_seconds"] < best["epoch_seconds"]:
            best = row
    print(json.dumps(best))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(best, f)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
