"""Compression kernels on the CPU twin against torch, side by side, on 16M float32 (64 MB).

In one run, rounds interleave: ``np.copyto`` of the array (the bandwidth
yardstick), TopK(0.01) against ``torch.topk`` of |x|, Int8 against torch's
per-chunk quantisation (amax / 127, round, clamp, to int8), FP16 against
``.half()``, and scatter_add of the top-k payload against ``index_add_``.
The figures are medians. Bandwidth is memory traffic per second, bytes read
plus bytes written, as a share of ``np.copyto``'s (64 MB read + 64 MB
written): for topk, int8 and fp16 the 64 MB read plus the payload written;
for scatter_add, whose updates land at scattered positions of a 64 MB array,
the payload read plus every 64-byte cache line of the array it updates, read
and written back (the traffic that bounds it; its payload alone is 1.3 MB).

Then, with ONE numba thread, ``ErrorFeedback(TopK(0.01)).compress`` of 25M
floats (100 MB) and ``accumulate`` of two payloads into a zeroed output: the
compressed allreduce's compute, which must leave room to beat gloo's
all_reduce of 100 MB by 2x.

Goals: topk >= 10x torch.topk, int8 >= 4x torch, each >= 25% of copy bandwidth.
Prints everything; appends the summary to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numba
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _results import record  # noqa: E402

from lepton_nb.compress import FP16, ErrorFeedback, Int8, TopK, scatter_add  # noqa: E402

CHUNK = 4096
GOALS = {"topk": 10.0, "int8": 4.0}  # speed-up over torch
BANDWIDTH_GOAL = 0.25  # share of np.copyto's


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def torch_int8(t: torch.Tensor) -> torch.Tensor:
    """torch's per-chunk int8 quantisation: the baseline."""
    chunks = t.view(-1, CHUNK)
    scale = chunks.abs().amax(dim=1, keepdim=True) / 127
    return torch.round(chunks / scale).clamp_(-127, 127).to(torch.int8)


def kernels(numel: int, rounds: int) -> str:
    x = np.random.default_rng(0).standard_normal(numel).astype(np.float32)
    tx = torch.from_numpy(x)
    dst = np.empty_like(x)
    dst.fill(0)  # pages faulted in: copyto measures copying
    topk, int8, fp16 = TopK(0.01, backend="cpu"), Int8(CHUNK, backend="cpu"), FP16(backend="cpu")
    p = topk.compress(x)
    idx, vals = p.arrays["indices"], p.arrays["values"]
    tidx, tvals = torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(vals.copy())
    out, tout = np.zeros_like(x), torch.zeros(numel)
    k = topk.k(numel)
    ops: dict[str, Callable[[], object]] = {
        "copyto": lambda: np.copyto(dst, x),
        "topk": lambda: topk.compress(x),
        "torch.topk": lambda: torch.topk(tx.abs(), k, sorted=False),
        "int8": lambda: int8.compress(x),
        "torch int8": lambda: torch_int8(tx),
        "fp16": lambda: fp16.compress(x),
        "torch .half()": lambda: tx.half(),
        "scatter_add": lambda: scatter_add(out, idx, vals),
        "torch index_add_": lambda: tout.index_add_(0, tidx, tvals),
    }
    for fn in ops.values():  # compile, fault in, warm up
        fn()
    times: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(rounds):
        for name, fn in ops.items():
            times[name].append(timed(fn))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    copy_bw = 2 * x.nbytes / med["copyto"]
    traffic = {c.codec: x.nbytes + c.payload_nbytes(numel) for c in (topk, int8, fp16)}
    lines = np.unique(idx // (64 // x.itemsize)).size
    traffic["scatter_add"] = idx.nbytes + vals.nbytes + 2 * 64 * lines
    baseline = {
        "topk": "torch.topk",
        "int8": "torch int8",
        "fp16": "torch .half()",
        "scatter_add": "torch index_add_",
    }
    mb = x.nbytes / 2**20
    print(
        f"{numel:,} float32 ({mb:.0f} MB), {rounds} rounds, medians, {numba.get_num_threads()}"
        f" numba threads, {torch.get_num_threads()} torch threads"
    )
    print(f"  np.copyto          {med['copyto'] * 1e3:8.2f} ms  {copy_bw / 1e9:6.2f} GB/s")
    parts, met = [], True
    for name, base in baseline.items():
        ratio = med[base] / med[name]
        share = traffic[name] / med[name] / copy_bw
        goal = GOALS.get(name)
        ok = (goal is None or ratio >= goal) and share >= BANDWIDTH_GOAL
        met &= ok
        goal_text = f">= {goal:g}x, " if goal else ""
        print(
            f"  {name:<12} {med[name] * 1e3:8.2f} ms vs {base:<17} {med[base] * 1e3:8.2f} ms:"
            f" {ratio:6.1f}x, {share:6.0%} of copy bandwidth"
            f"  (goal {goal_text}>= {BANDWIDTH_GOAL:.0%}: {'met' if ok else 'NOT met'})"
        )
        parts.append(f"{name} {med[name] * 1e3:.2f} ms ({ratio:.1f}x {base}, {share:.0%} of copy)")
    print(f"  goals {'met' if met else 'NOT met'}")
    return f"{numel:,} float32: " + "; ".join(parts) + f"; copyto {med['copyto'] * 1e3:.2f} ms"


def feedback(numel: int, rounds: int) -> str:
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        t = np.random.default_rng(1).standard_normal(numel).astype(np.float32)
        ef = ErrorFeedback(TopK(0.01, backend="cpu"))
        out = np.zeros_like(t)
        payloads = [ef.compress(t, "g"), ef.compress(t, "g")]
        compress, accumulate = [], []
        for _ in range(rounds):
            compress.append(timed(lambda: ef.compress(t, "g")))
            out.fill(0)
            accumulate.append(timed(lambda: [ef.accumulate(p, out) for p in payloads]))
    finally:
        numba.set_num_threads(before)
    c, a = statistics.median(compress), statistics.median(accumulate)
    print(
        f"ErrorFeedback(TopK(0.01)) on {numel:,} float32, 1 numba thread: compress"
        f" {c * 1e3:.1f} ms (goal <= 40 ms: {'met' if c <= 0.040 else 'NOT met'}),"
        f" accumulate 2 payloads {a * 1e3:.1f} ms, together {(c + a) * 1e3:.1f} ms"
    )
    return f"EF(TopK(0.01)) {numel:,} floats 1 thread: compress {c * 1e3:.1f} ms + 2 accumulates {a * 1e3:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--numel", type=int, default=16 * 2**20)
    parser.add_argument("--ef-numel", type=int, default=25_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    line = kernels(args.numel, args.rounds)
    line += "; " + feedback(args.ef_numel, args.rounds)
    record("bench_kernels", line)


if __name__ == "__main__":
    main()
