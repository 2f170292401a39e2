"""numba-CUDA kernels of top-k: the twin of :mod:`lepton_nb.compress.cpu.topk_kernels`.

Compaction (candidates, then the k selected) aggregates per block: each thread
takes a slot from a shared-memory counter, then one thread reserves the
block's range with a single global atomic, so global atomics are one per block
and round. The k-th largest magnitude is found by radix select over device
histograms (11 + 10 + 10 bits). Selected entries come out in no set order.
"""

from __future__ import annotations

from numba import cuda, int32, int64

from .device import BINS, ITEMS, MAG, device, f2i, i2f


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


@device
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
