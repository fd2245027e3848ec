#!/usr/bin/env python3
"""Data-parallel scaling model for histocnn's paper network (no measurement:
a model fed with one measured number, the seconds per training example of one
machine).

    step(N) = compute(B / N) + allreduce(N)
    compute(b) = b * t_example                      (measured on one machine)
    allreduce(N) = 2 (N-1)/N * S / bandwidth + 2 (N-1) * latency   (ring, no overlap)
    S = 4 bytes x parameters (the flat fp32 gradient vector)

Usage: bench/dp_scaling_model.py T_EXAMPLE_SECONDS SIZE BATCH [LATENCY_US]
"""
import sys


def parameters(size):
    # The paper's network: 3 x (3x3 valid conv + 2x2 max-pool), conv 32-32-64, dense 64, dense 2.
    s, c, params = size, 3, 0
    for filters in (32, 32, 64):
        params += filters * c * 9 + filters
        s = (s - 2) // 2
        c = filters
    flat = c * s * s
    return params + flat * 64 + 64 + 64 * 2 + 2


def main():
    t_example = float(sys.argv[1])
    size = int(sys.argv[2])
    batch = int(sys.argv[3])
    latency = float(sys.argv[4]) * 1e-6 if len(sys.argv) > 4 else 25e-6
    grad_bytes = 4 * parameters(size)
    print(f"size {size}: {parameters(size)} parameters, {grad_bytes / 1e6:.2f} MB allreduced per step; "
          f"global batch {batch}; {t_example * 1e3:.2f} ms per example on one machine; "
          f"latency {latency * 1e6:.0f} us")
    print("| machines | " + " | ".join(f"{g} Gbit/s: step ms, speed-up, efficiency" for g in (10, 25, 100)) + " |")
    print("|---|" + "---|" * 3)
    t1 = batch * t_example
    for n in (1, 2, 4, 8, 16, 32, 64):
        cells = []
        for gbit in (10, 25, 100):
            bandwidth = gbit * 1e9 / 8
            rows = max(1, -(-batch // n))  # the slowest machine's rows
            reduce = 0 if n == 1 else 2 * (n - 1) / n * grad_bytes / bandwidth + 2 * (n - 1) * latency
            step = rows * t_example + reduce
            cells.append(f"{step * 1e3:.1f}, {t1 / step:.2f}x, {t1 / step / n:.0%}")
        print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
