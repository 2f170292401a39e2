"""numba-CUDA kernels: the CUDA twin of every kernel in :mod:`.cpu_kernels`.

Grid-stride loops, float32/int32/int64 atomics and shared memory only: no half
precision atomics (no GPU compiles them) and no warp intrinsics (the simulator
lacks them). Compaction (top-k candidates and selection) aggregates per block:
each thread takes a slot from a shared counter, then one thread reserves the
block's range with a single global atomic. Kernels here are plain Python
functions; :data:`KERNELS` lists each with its signatures so that tests can
compile all of them to PTX without a GPU and ``benchmarks/gpu_check.py`` can
time all of them on one. Importing this module imports numba.cuda.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import config, cuda, int32, int64

from . import halfbits
from .cpu_kernels import TINY_SCALE

#: Threads per block (a power of two: the int8 max is a tree reduction).
THREADS = 256
#: Elements per thread per round in the compaction kernels.
ITEMS = 4
#: Bins per radix-select histogram (11 bits).
BINS = 2048
MAG = 0x7FFFFFFF
SIMULATOR = bool(config.ENABLE_CUDASIM)

if SIMULATOR:  # kernels run as Python on numpy scalars: bit casts by numpy views

    def f2i(v):
        return int(np.float32(v).view(np.int32))

    def i2f(b):
        return np.int32(b).view(np.float32)

else:  # libdevice bit casts (device functions inlined in the IR, so PTX builds without a GPU)

    @cuda.jit(device=True, inline="always")
    def f2i(v):
        return cuda.libdevice.float_as_int(v)

    @cuda.jit(device=True, inline="always")
    def i2f(b):
        return cuda.libdevice.int_as_float(b)


def _device(fn: Callable) -> Callable:
    return fn if SIMULATOR else cuda.jit(device=True, inline="always")(fn)


half_bits = _device(halfbits.half_bits)
as_int16 = _device(halfbits.as_int16)
half_value = _device(halfbits.make_half_value(i2f))


@_device
def int8_scale(m):
    """The int8 scale of a chunk whose largest |x| has bits ``m`` (as the CPU twin's)."""
    s = i2f(m) / np.float32(127.0)
    tiny = np.float32(TINY_SCALE)
    return tiny if m > 0 and s < tiny else s


@_device
def quantize(v, s):
    """round(v / s) clamped to [-127, 127]; 0 when the scale is 0."""
    if not s > 0:
        return 0
    return min(max(round(v / s), -127), 127)


# ---- top-k ----


def gather_sample(x, pos, out):
    """out[j] = |x[pos[j]]| bits."""
    for j in range(cuda.grid(1), pos.size, cuda.gridsize(1)):
        out[j] = f2i(x[pos[j]]) & MAG


def gather_sample_feedback(r, t, pos, out):
    """out[j] = |r + t| bits at pos[j]."""
    for j in range(cuda.grid(1), pos.size, cuda.gridsize(1)):
        p = pos[j]
        out[j] = f2i(r[p] + t[p]) & MAG


def collect(x, thr, cap, count, cand, cidx):
    """Append bits and index of every |x| >= thr (as bits) at count[0]..; count[0] = total."""
    _collect(x, x, thr, cap, count, cand, cidx, False)


def collect_feedback(r, t, thr, cap, count, cand, cidx):
    """:func:`collect` of r + t, storing r += t on the way (one pass)."""
    _collect(r, t, thr, cap, count, cand, cidx, True)


@_device
def _collect(r, t, thr, cap, count, cand, cidx, add):
    s_n = cuda.shared.array(1, int32)
    s_base = cuda.shared.array(1, int64)
    bits = cuda.local.array(ITEMS, int32)
    slot = cuda.local.array(ITEMS, int32)
    tid = cuda.threadIdx.x
    width = cuda.blockDim.x * ITEMS
    n = r.size
    for start in range(cuda.blockIdx.x * width, n, cuda.gridDim.x * width):
        if tid == 0:
            s_n[0] = 0
        cuda.syncthreads()
        for m in range(ITEMS):
            i = start + m * cuda.blockDim.x + tid
            slot[m] = -1
            if i < n:
                v = r[i]
                if add:
                    v += t[i]
                    r[i] = v
                b = f2i(v)
                bits[m] = b
                if (b & MAG) >= thr:
                    slot[m] = cuda.atomic.add(s_n, 0, 1)
        cuda.syncthreads()
        if tid == 0 and s_n[0] > 0:
            s_base[0] = cuda.atomic.add(count, 0, s_n[0])
        cuda.syncthreads()
        for m in range(ITEMS):
            if slot[m] >= 0:
                p = s_base[0] + slot[m]
                if p < cap:
                    cand[p] = bits[m]
                    cidx[p] = start + m * cuda.blockDim.x + tid


def histogram(cand, m, shift, width, mask, prefix, hist):
    """hist[(b >> shift) & (2**width - 1)] += 1 for candidate magnitudes b with
    b & mask == prefix (``width`` <= 11)."""
    sh = cuda.shared.array(BINS, int32)
    tid = cuda.threadIdx.x
    for j in range(tid, BINS, cuda.blockDim.x):
        sh[j] = 0
    cuda.syncthreads()
    for j in range(cuda.grid(1), m, cuda.gridsize(1)):
        b = cand[j] & MAG
        if (b & mask) == prefix:
            cuda.atomic.add(sh, (b >> shift) & ((1 << width) - 1), 1)
    cuda.syncthreads()
    for j in range(tid, BINS, cuda.blockDim.x):
        if sh[j] > 0:
            cuda.atomic.add(hist, j, sh[j])


def emit(cand, cidx, m, kth, ties, above, counters, out_idx, out_val):
    """Write every candidate above kth and the first ``ties`` equal to it (k in all)."""
    s_n = cuda.shared.array(2, int32)
    s_base = cuda.shared.array(2, int64)
    tid = cuda.threadIdx.x
    for start in range(cuda.blockIdx.x * cuda.blockDim.x, m, cuda.gridsize(1)):
        if tid < 2:
            s_n[tid] = 0
        cuda.syncthreads()
        j = start + tid
        kind = -1
        slot = 0
        if j < m:
            b = cand[j] & MAG
            if b > kth:
                kind = 0
            elif b == kth:
                kind = 1
            if kind >= 0:
                slot = cuda.atomic.add(s_n, kind, 1)
        cuda.syncthreads()
        if tid < 2 and s_n[tid] > 0:
            s_base[tid] = cuda.atomic.add(counters, tid, s_n[tid])
        cuda.syncthreads()
        if kind >= 0:
            p = s_base[kind] + slot
            if kind == 1:
                p = above + p if p < ties else -1
            if p >= 0:
                out_idx[p] = cidx[j]
                out_val[p] = i2f(cand[j])


def zero_at(r, idx):
    """r[idx] = 0."""
    for j in range(cuda.grid(1), idx.size, cuda.gridsize(1)):
        r[idx[j]] = 0


def scatter_add(dst, idx, vals):
    """dst[idx] += vals with atomics; indices outside dst are ignored."""
    for j in range(cuda.grid(1), idx.size, cuda.gridsize(1)):
        i = idx[j]
        if i >= 0 and i < dst.size:
            cuda.atomic.add(dst, i, vals[j])


# ---- int8: one block per chunk ----


@_device
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
