"""Every CUDA kernel of lepton_nb.compress on a real GPU: bandwidth, and results against the CPU twin.

Runs each kernel of ``lepton_nb.compress.cuda.KERNELS`` on a large input (256M
float32 by default), timed with CUDA events (median of ``--rounds``), and prints
the bandwidth reached as a share of the device's peak memory bandwidth,
2 * MEMORY_CLOCK_RATE (kHz) * 1e3 * GLOBAL_MEMORY_BUS_WIDTH / 8 bytes/s. Bytes
counted are those a kernel must read and write. Goal: >= 60% of peak on an
H100 for the streaming kernels; the random-access ones (sample gathers,
zero_at, scatter_add) are reported without a goal. Then checks, on a smaller
input, that the CUDA twin gives the CPU twin's results, from host arrays and,
where torch has CUDA, from CUDA tensors.

Exit status: 0 all results match; 1 a result differs (or, with ``--strict``, a
goal is missed); 2 "No CUDA GPU present: gpu_check needs one".
``--simulator`` runs a tiny smoke test under NUMBA_ENABLE_CUDASIM=1 (timings
meaningless), to check this script where there is no GPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np

NO_GPU = "No CUDA GPU present: gpu_check needs one"
GOAL = 0.60
RANDOM_ACCESS = {"gather_sample", "gather_sample_feedback", "zero_at", "scatter_add"}


def peak_bandwidth(device) -> float | None:
    """Bytes/s from the device attributes, or None when it does not say."""
    try:
        return 2 * device.MEMORY_CLOCK_RATE * 1e3 * device.GLOBAL_MEMORY_BUS_WIDTH / 8
    except AttributeError:
        return None


def cases(n: int):
    """name -> (items, per_thread, args, bytes moved, reset before each run)."""
    from numba import cuda

    from lepton_nb.compress import plan
    from lepton_nb.compress.cuda import device as D

    rng = np.random.default_rng(0)
    hx = rng.standard_normal(n, dtype=np.float32)
    bits = hx.view(np.int32) & 0x7FFFFFFF
    k = max(1, n // 100)
    kth = int(np.partition(bits, n - k)[n - k])
    above = int((bits > kth).sum())
    thr = int(np.quantile(bits[rng.integers(0, n, min(n, plan.SAMPLE))], 0.986))  # ~1.4% pass
    x, zeros = cuda.to_device(hx), cuda.device_array(n, np.float32)
    r = cuda.device_array(n, np.float32)
    zeros.copy_to_device(np.zeros(n, np.float32))
    cap = max(1024, n * 3 // 100)
    cand, cidx = cuda.device_array(cap, np.int32), cuda.device_array(cap, np.int32)
    count, zero1 = cuda.to_device(np.zeros(1, np.int64)), cuda.to_device(np.zeros(1, np.int64))
    counters, zero2 = cuda.to_device(np.zeros(2, np.int64)), cuda.to_device(np.zeros(2, np.int64))
    all_idx = cuda.to_device(np.arange(n, dtype=np.int32))
    pos = cuda.to_device(rng.integers(0, n, k))
    idx_k = cuda.to_device(rng.integers(0, n, k).astype(np.int32))
    vals_k = cuda.to_device(rng.standard_normal(k, dtype=np.float32))
    out_i, out_v = cuda.device_array(k, np.int32), cuda.device_array(k, np.float32)
    samp = cuda.device_array(k, np.int32)
    chunk, chunks = 4096, -(-n // 4096)
    q, scale = cuda.device_array(n, np.int8), cuda.device_array(chunks, np.float32)
    h, out = cuda.device_array(n, np.int16), cuda.device_array(n, np.float32)
    hist = cuda.device_array(D.BINS, np.int64)

    def reset_r():
        r.copy_to_device(zeros)

    def reset_count():
        count.copy_to_device(zero1)

    def reset_both():
        reset_r()
        reset_count()

    xb = x.view(np.int32)
    c8 = chunks * D.THREADS
    return {
        "gather_sample": (k, 1, (x, pos, samp), k * (8 + 4 + 32), None),
        "gather_sample_feedback": (k, 1, (r, x, pos, samp), k * (8 + 4 + 64), None),
        "collect": (n, D.ITEMS, (x, thr, cap, count, cand, cidx), 4 * n, reset_count),
        "collect_feedback": (
            n,
            D.ITEMS,
            (r, x, thr, cap, count, cand, cidx),
            12 * n,
            reset_both,
        ),
        "histogram": (n, 1, (xb, n, 20, 11, 0, 0, hist), 4 * n, None),
        "emit": (
            n,
            1,
            (xb, all_idx, n, kth, k - above, above, counters, out_i, out_v),
            4 * n + 16 * k,
            lambda: counters.copy_to_device(zero2),
        ),
        "zero_at": (k, 1, (r, idx_k), k * (4 + 32), None),
        "scatter_add": (k, 1, (out, idx_k, vals_k), k * (8 + 64), None),
        "int8": (c8, 1, (x, chunk, q, scale), 5 * n, None),
        "int8_feedback": (c8, 1, (r, x, chunk, q, scale), 13 * n, reset_r),
        "int8_expand": (c8, 1, (q, scale, chunk, out, False), 5 * n, None),
        "fp16": (n, 1, (x, h), 6 * n, None),
        "fp16_feedback": (n, 1, (r, x, h), 14 * n, reset_r),
        "fp16_expand": (n, 1, (h, out, False), 6 * n, None),
    }


def bandwidth(n: int, rounds: int, strict: bool) -> bool:
    from numba import cuda

    from lepton_nb.compress import cuda as twin

    device = cuda.get_current_device()
    peak = peak_bandwidth(device)
    table = cases(n)
    missing = set(twin.KERNELS) - set(table)
    assert not missing, f"gpu_check does not run {sorted(missing)}"
    name = getattr(device, "name", b"?")
    print(
        f"{name.decode() if isinstance(name, bytes) else name}: peak "
        + (f"{peak / 1e9:.0f} GB/s" if peak else "unknown")
        + f"; {n:,} float32"
    )
    ok = True
    for kernel, (items, per_thread, args, nbytes, reset) in table.items():
        times = []
        for i in range(rounds + 1):  # the first compiles and warms up
            if reset:
                reset()
            start, end = cuda.event(), cuda.event()
            start.record()
            twin.launch(kernel, items, *args, per_thread=per_thread)
            end.record()
            end.synchronize()
            if i:
                times.append(start.elapsed_time(end) / 1e3)
        t = max(statistics.median(times), 1e-9)
        rate = nbytes / t
        share = rate / peak if peak else float("nan")
        if kernel in RANDOM_ACCESS:
            verdict = "random access, no goal"
        else:
            met = share >= GOAL
            ok &= met or not strict
            verdict = f"goal >= {GOAL:.0%}: {'met' if met else 'NOT met'}"
        print(
            f"  {kernel:<24} {t * 1e3:9.3f} ms {rate / 1e9:8.1f} GB/s {share:6.0%} of peak"
            f"  ({verdict})"
        )
    return ok


def agreement(n: int) -> bool:
    """The CUDA twin against the CPU twin, from host arrays and from CUDA tensors."""
    from lepton_nb.compress import FP16, ErrorFeedback, Int8, TopK, scatter_add

    rng = np.random.default_rng(1)
    x = rng.standard_normal(n, dtype=np.float32)
    inputs = [("numpy", x, np.asarray)]
    try:
        import torch

        if torch.cuda.is_available():
            inputs.append(("torch cuda", torch.from_numpy(x).cuda(), lambda a: a.cpu().numpy()))
    except ImportError:
        pass
    failures = []

    def check(what, cond):
        print(f"  {what:<60} {'ok' if cond else 'DIFFERS'}")
        if not cond:
            failures.append(what)

    for kind, data, host in inputs:
        for make in (
            lambda b: TopK(0.01, backend=b),
            lambda b: Int8(backend=b),
            lambda b: FP16(backend=b),
        ):
            cpu, gpu = make("cpu"), make("cuda" if kind == "numpy" else "auto")
            for ef in (False, True):
                a, b = (ErrorFeedback(c) for c in (cpu, gpu)) if ef else (cpu, gpu)
                pa = a.compress(x, 0) if ef else a.compress(x)
                pb = b.compress(data, 0) if ef else b.compress(data)
                pa = a.compress(x, 0) if ef else pa  # a second step with residuals
                pb = b.compress(data, 0) if ef else pb
                label = f"{kind} {'ErrorFeedback ' if ef else ''}{cpu!r}"
                if cpu.codec == "topk":
                    ia, ib = pa.arrays["indices"], np.sort(host(pb.arrays["indices"]))
                    same = np.array_equal(ia, ib)
                else:
                    same = np.array_equal(pa.buffer, host(pb.buffer))
                check(label + " payload", same)
                check(
                    label + " decompress", np.array_equal(a.decompress(pa), host(b.decompress(pb)))
                )
                if ef:
                    check(
                        label + " residual",
                        np.allclose(a.residuals[0], host(b.residuals[0]), rtol=1e-6, atol=1e-30),
                    )
    idx = rng.integers(0, n, n // 10)
    for dtype in (np.float32, np.float64):
        da, db = np.zeros(n, dtype), np.zeros(n, dtype)
        scatter_add(da, idx, x[: idx.size].astype(dtype), backend="cpu")
        scatter_add(db, idx, x[: idx.size].astype(dtype), backend="cuda")
        check(f"scatter_add {np.dtype(dtype).name} with duplicates", np.allclose(da, db, atol=1e-5))
    return not failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--numel", type=int, default=256 * 2**20)
    parser.add_argument("--check-numel", type=int, default=4 * 2**20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--strict", action="store_true", help="a missed goal fails the run")
    parser.add_argument("--simulator", action="store_true", help="tiny smoke test, no GPU")
    args = parser.parse_args()
    if args.simulator:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        args.numel, args.check_numel, args.rounds = 3000, 2000, 1
    from numba import cuda

    if not cuda.is_available():
        print(NO_GPU)
        sys.exit(2)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and not args.simulator:
        print(NO_GPU + " (NUMBA_ENABLE_CUDASIM=1 is set; pass --simulator for a smoke test)")
        sys.exit(2)
    fast = bandwidth(args.numel, args.rounds, args.strict)
    print(f"CUDA twin against the CPU twin, {args.check_numel:,} float32:")
    same = agreement(args.check_numel)
    print("all results match" if same else "RESULTS DIFFER")
    sys.exit(0 if same and fast else 1)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    main()
