"""numba-CUDA kernels: int8, fp16 and scatter_add, and :data:`KERNELS`, the table of all.

The CUDA twin of :mod:`lepton_nb.compress.cpu.kernels` (top-k is in :mod:`.topk_kernels`).
Grid-stride loops, float32/int32/int64 atomics and shared memory only: no
half-precision atomics (no GPU compiles them) and no warp intrinsics (the
simulator lacks them). Kernels are plain Python functions; :data:`KERNELS`
lists each with its signatures, so that tests compile every one to PTX without
a GPU and ``benchmarks/gpu_check.py`` times every one on a GPU. Importing this
module imports numba.cuda.

As on the CPU, each encoding kernel has an error-feedback twin (``*_feedback``)
that adds t into the residual r, encodes and subtracts the decoded value in the
same kernel; the plain one never touches a residual. They stay separate
kernels, one per CPU kernel, so that the twins can be checked kernel by kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import cuda, int32

from .device import (
    MAG,
    SIMULATOR,
    THREADS,
    as_int16,
    device,
    f2i,
    half_bits,
    half_value,
    int8_scale,
    quantize,
)
from .topk_kernels import (
    collect,
    collect_feedback,
    emit,
    gather_sample,
    gather_sample_feedback,
    histogram,
    zero_at,
)

__all__ = ["KERNELS", "SIMULATOR"]


def scatter_add(dst, idx, vals):
    """dst[idx] += vals with atomics; indices outside dst are ignored."""
    for j in range(cuda.grid(1), idx.size, cuda.gridsize(1)):
        i = idx[j]
        if i >= 0 and i < dst.size:
            cuda.atomic.add(dst, i, vals[j])


# ---- int8: one block per chunk ----


@device
def _block_max(m, sm):
    """Max of ``m`` over the block (blockDim a power of two), by a shared-memory tree."""
    tid = cuda.threadIdx.x
    sm[tid] = m
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            sm[tid] = max(sm[tid], sm[tid + step])
        cuda.syncthreads()
        step //= 2
    out = sm[0]
    cuda.syncthreads()
    return out


def int8(x, chunk, q, scale):
    """scale[c] = max|x| / 127 over chunk c; q = round(x / scale[c])."""
    sm = cuda.shared.array(THREADS, int32)
    tid = cuda.threadIdx.x
    for c in range(cuda.blockIdx.x, scale.size, cuda.gridDim.x):
        lo = c * chunk
        hi = min(x.size, lo + chunk)
        m = 0
        for i in range(lo + tid, hi, cuda.blockDim.x):
            m = max(m, f2i(x[i]) & MAG)
        s = int8_scale(_block_max(m, sm))
        if tid == 0:
            scale[c] = s
        for i in range(lo + tid, hi, cuda.blockDim.x):
            q[i] = quantize(x[i], s)


def int8_feedback(r, t, chunk, q, scale):
    """:func:`int8` of acc = r + t, then r = acc - q * scale."""
    sm = cuda.shared.array(THREADS, int32)
    tid = cuda.threadIdx.x
    for c in range(cuda.blockIdx.x, scale.size, cuda.gridDim.x):
        lo = c * chunk
        hi = min(r.size, lo + chunk)
        m = 0
        for i in range(lo + tid, hi, cuda.blockDim.x):
            v = r[i] + t[i]
            r[i] = v
            m = max(m, f2i(v) & MAG)
        s = int8_scale(_block_max(m, sm))
        if tid == 0:
            scale[c] = s
        for i in range(lo + tid, hi, cuda.blockDim.x):
            v = r[i]
            qv = quantize(v, s)
            q[i] = qv
            r[i] = v - np.float32(qv) * s


def int8_expand(q, scale, chunk, out, add):
    """out = q * scale (out += when ``add``)."""
    tid = cuda.threadIdx.x
    for c in range(cuda.blockIdx.x, scale.size, cuda.gridDim.x):
        lo = c * chunk
        s = scale[c]
        for i in range(lo + tid, min(out.size, lo + chunk), cuda.blockDim.x):
            v = np.float32(q[i]) * s
            out[i] = out[i] + v if add else v


# ---- fp16: float16 bit patterns stored as int16 ----


def fp16(x, h):
    """h = float16 bits of x, round to nearest even."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        h[i] = as_int16(half_bits(f2i(x[i])))


def fp16_feedback(r, t, h):
    """h = float16 of acc = r + t, then r = acc - float32(h)."""
    for i in range(cuda.grid(1), r.size, cuda.gridsize(1)):
        v = r[i] + t[i]
        bits = half_bits(f2i(v))
        h[i] = as_int16(bits)
        r[i] = v - half_value(bits)


def fp16_expand(h, out, add):
    """out = float32(h) (out += when ``add``)."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        v = half_value(int(h[i]) & 0xFFFF)
        out[i] = out[i] + v if add else v


def _sigs(template: str) -> list[str]:
    return [template.format(i=i) for i in ("int32", "int64")] if "{i}" in template else [template]


F, I32, I64 = "float32[::1]", "int32[::1]", "int64[::1]"

#: Every CUDA kernel: name -> (Python function, signatures to compile).
KERNELS: dict[str, tuple[Callable, list[str]]] = {
    "gather_sample": (gather_sample, _sigs(f"void({F}, {I64}, {I32})")),
    "gather_sample_feedback": (gather_sample_feedback, _sigs(f"void({F}, {F}, {I64}, {I32})")),
    "collect": (collect, _sigs(f"void({F}, int64, int64, {I64}, {I32}, {{i}}[::1])")),
    "collect_feedback": (
        collect_feedback,
        _sigs(f"void({F}, {F}, int64, int64, {I64}, {I32}, {{i}}[::1])"),
    ),
    "histogram": (histogram, _sigs(f"void({I32}, int64, int64, int64, int64, int64, {I64})")),
    "emit": (
        emit,
        _sigs(f"void({I32}, {{i}}[::1], int64, int64, int64, int64, {I64}, {{i}}[::1], {F})"),
    ),
    "zero_at": (zero_at, _sigs(f"void({F}, {{i}}[::1])")),
    "scatter_add": (
        scatter_add,
        _sigs(f"void({F}, {{i}}[::1], {F})") + _sigs("void(float64[::1], {i}[::1], float64[::1])"),
    ),
    "int8": (int8, _sigs(f"void({F}, int64, int8[::1], {F})")),
    "int8_feedback": (int8_feedback, _sigs(f"void({F}, {F}, int64, int8[::1], {F})")),
    "int8_expand": (int8_expand, _sigs(f"void(int8[::1], {F}, int64, {F}, boolean)")),
    "fp16": (fp16, _sigs(f"void({F}, int16[::1])")),
    "fp16_feedback": (fp16_feedback, _sigs(f"void({F}, {F}, int16[::1])")),
    "fp16_expand": (fp16_expand, _sigs(f"void(int16[::1], {F}, boolean)")),
}
