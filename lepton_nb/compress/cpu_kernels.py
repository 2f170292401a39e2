"""numba CPU kernels: each splits its work into contiguous chunks run by ``prange``.

Elementwise kernels use ``numba.get_num_threads()`` chunks; int8 works per
quantisation chunk. Hot loops run over fixed 64-element blocks so LLVM
vectorises them. Floats are compared as int32 bit patterns of |x| (``& MAG``),
which orders non-negative floats and puts NaN above inf, so a block's largest
magnitude is an integer max. :mod:`.cuda_kernels` holds the CUDA twin of each.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import halfbits
from .plan import RUN

#: Elements per block in the hot loops (a vectorised max, then a rare rescan).
BLOCK = 64
#: Mask giving the bit pattern of |x| from that of x.
MAG = np.int32(0x7FFFFFFF)
_Q = np.float32(127.0)
#: Smallest int8 scale of a non-zero chunk (the smallest normal float32): a
#: subnormal max / 127 would lose the precision the error bound needs.
TINY_SCALE = np.float32(2.0**-126)


@njit(cache=True)
def f2i(v):
    """float32 -> its int32 bit pattern."""
    return np.float32(v).view(np.int32)


@njit(cache=True)
def i2f(b):
    """int32 bit pattern -> the float32."""
    return np.int32(b).view(np.float32)


half_bits = njit(cache=True)(halfbits.half_bits)
as_int16 = njit(cache=True)(halfbits.as_int16)
half_value = njit(halfbits.make_half_value(i2f))


def chunks(numel: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` ranges [lo, hi) covering ``numel`` elements, split at block boundaries."""
    blocks = -(-numel // BLOCK)
    step = -(-blocks // count) * BLOCK
    lo = np.minimum(np.arange(count, dtype=np.int64) * step, numel)
    return lo, np.minimum(lo + step, numel)


# ---- top-k: collect the candidates at or above a threshold, then select exactly k ----


@njit(cache=True)
def _collect_range(xb, thr, lo, hi, base, cap, cand, cidx):
    # (the keep-test is written out twice: as a function call it stops vectorisation)
    cnt = 0
    blocks = (hi - lo) // BLOCK
    for blk in range(blocks):
        i = lo + blk * BLOCK
        xs = xb[i : i + BLOCK]
        m = np.int32(0)
        for j in range(BLOCK):
            m = max(m, xs[j] & MAG)
        if m >= thr:
            for j in range(BLOCK):
                b = xs[j]
                if (b & MAG) >= thr:
                    if cnt < cap:
                        cand[base + cnt] = b
                        cidx[base + cnt] = i + j
                    cnt += 1
    for j in range(lo + blocks * BLOCK, hi):
        b = xb[j]
        if (b & MAG) >= thr:
            if cnt < cap:
                cand[base + cnt] = b
                cidx[base + cnt] = j
            cnt += 1
    return cnt


@njit(parallel=True, cache=True)
def collect(xb, thr, lo, hi, off, cap, cand, cidx, counts):
    """Per range c: bits and index of elements with |x| >= thr into slots off[c].., cap[c] of
    them; counts[c] = how many there were (may exceed cap[c])."""
    for c in prange(lo.size):
        counts[c] = _collect_range(xb, thr, lo[c], hi[c], off[c], cap[c], cand, cidx)


@njit(cache=True)
def _collect_feedback_range(r, t, thr, lo, hi, base, cap, cand, cidx):
    cnt = 0
    blocks = (hi - lo) // BLOCK
    for blk in range(blocks):
        i = lo + blk * BLOCK
        rs = r[i : i + BLOCK]
        ts = t[i : i + BLOCK]
        m = np.int32(0)
        for j in range(BLOCK):
            v = rs[j] + ts[j]
            rs[j] = v
            m = max(m, f2i(v) & MAG)
        if m >= thr:
            for j in range(BLOCK):
                b = f2i(rs[j])
                if (b & MAG) >= thr:
                    if cnt < cap:
                        cand[base + cnt] = b
                        cidx[base + cnt] = i + j
                    cnt += 1
    for j in range(lo + blocks * BLOCK, hi):
        v = r[j] + t[j]
        r[j] = v
        b = f2i(v)
        if (b & MAG) >= thr:
            if cnt < cap:
                cand[base + cnt] = b
                cidx[base + cnt] = j
            cnt += 1
    return cnt


@njit(parallel=True, cache=True)
def collect_feedback(r, t, thr, lo, hi, off, cap, cand, cidx, counts):
    """:func:`collect` of r + t, storing r += t on the way (one pass)."""
    for c in prange(lo.size):
        counts[c] = _collect_feedback_range(r, t, thr, lo[c], hi[c], off[c], cap[c], cand, cidx)


@njit(parallel=True, cache=True)
def sample(xb, count):
    """|x| bits of ``count`` elements: runs of :data:`RUN` at random positions."""
    out = np.empty(count, np.int32)
    for s in prange(count // RUN):
        p = np.random.randint(0, xb.size - RUN + 1)
        for j in range(RUN):
            out[s * RUN + j] = xb[p + j] & MAG
    return out


@njit(parallel=True, cache=True)
def sample_feedback(r, t, count):
    """|r + t| bits of ``count`` elements: runs of :data:`RUN` at random positions."""
    out = np.empty(count, np.int32)
    for s in prange(count // RUN):
        p = np.random.randint(0, r.size - RUN + 1)
        for j in range(RUN):
            out[s * RUN + j] = f2i(r[p + j] + t[p + j]) & MAG
    return out


@njit(cache=True)
def select(cand, cidx, off, counts, k, out_idx, out_bits):
    """Exactly the k largest |x| among the candidates, in index order (ties: first ones).

    Radix select on the magnitude bits: a histogram of the high 15 bits finds
    the bin holding the k-th largest, one of its low 16 bits finds the value.
    """
    hist = np.zeros(1 << 15, np.int64)
    for c in range(off.size):
        for j in range(off[c], off[c] + counts[c]):
            hist[(cand[j] & MAG) >> 16] += 1
    top = (1 << 15) - 1
    above = 0
    while above + hist[top] < k:
        above += hist[top]
        top -= 1
    low_hist = np.zeros(1 << 16, np.int64)
    for c in range(off.size):
        for j in range(off[c], off[c] + counts[c]):
            b = cand[j] & MAG
            if (b >> 16) == top:
                low_hist[b & 0xFFFF] += 1
    low = (1 << 16) - 1
    while above + low_hist[low] < k:
        above += low_hist[low]
        low -= 1
    kth = (top << 16) | low
    ties = k - above
    o = 0
    for c in range(off.size):
        for j in range(off[c], off[c] + counts[c]):
            b = cand[j] & MAG
            if b > kth or (b == kth and ties > 0):
                if b == kth:
                    ties -= 1
                out_idx[o] = cidx[j]
                out_bits[o] = cand[j]
                o += 1


@njit(parallel=True, cache=True)
def zero_at(r, idx):
    """r[idx] = 0."""
    for j in prange(idx.size):
        r[idx[j]] = 0.0


@njit(parallel=True, cache=True)
def scatter_add(dst, idx, vals, parts):
    """dst[idx] += vals, duplicates accumulating in order; indices outside dst are ignored.

    Each of ``parts`` ranges of dst (one per thread) applies the entries that fall in it.
    """
    n = dst.size
    step = -(-n // parts)
    for c in prange(parts):
        lo = c * step
        hi = min(n, lo + step)
        for j in range(idx.size):
            i = idx[j]
            if i >= lo and i < hi:
                dst[i] += vals[j]


# ---- int8: per-chunk scale = max|x| / 127 (at least TINY_SCALE), q = round(x / scale) ----


@njit(cache=True)
def _scale(m):
    """The int8 scale of a chunk whose largest |x| has bits ``m``."""
    s = i2f(m) / _Q
    return TINY_SCALE if m > 0 and s < TINY_SCALE else s


@njit(cache=True)
def _quantize(v, s):
    if not s > 0:
        return 0
    return np.int8(min(max(np.rint(v / s), -_Q), _Q))


@njit(parallel=True, cache=True)
def int8(x, chunk, q, scale):
    """Quantise x chunk by chunk: scale[c] = max|x| / 127, q = round(x / scale[c])."""
    n = x.size
    for c in prange(scale.size):
        lo = c * chunk
        xs = x[lo : min(n, lo + chunk)]
        qs = q[lo : min(n, lo + chunk)]
        m = np.int32(0)
        for j in range(xs.size):
            m = max(m, f2i(xs[j]) & MAG)
        s = _scale(m)
        scale[c] = s
        for j in range(xs.size):
            qs[j] = _quantize(xs[j], s)


@njit(parallel=True, cache=True)
def int8_feedback(r, t, chunk, q, scale):
    """:func:`int8` of acc = r + t, then r = acc - q * scale (one pass per chunk)."""
    n = r.size
    for c in prange(scale.size):
        lo = c * chunk
        rs = r[lo : min(n, lo + chunk)]
        ts = t[lo : min(n, lo + chunk)]
        qs = q[lo : min(n, lo + chunk)]
        m = np.int32(0)
        for j in range(rs.size):
            v = rs[j] + ts[j]
            rs[j] = v
            m = max(m, f2i(v) & MAG)
        s = _scale(m)
        scale[c] = s
        for j in range(rs.size):
            qv = _quantize(rs[j], s)
            qs[j] = qv
            rs[j] = rs[j] - np.float32(qv) * s


@njit(parallel=True, cache=True)
def int8_expand(q, scale, chunk, out, add):
    """out = q * scale (or out += q * scale when ``add``)."""
    n = out.size
    for c in prange(scale.size):
        lo = c * chunk
        qs = q[lo : min(n, lo + chunk)]
        os = out[lo : min(n, lo + chunk)]
        s = scale[c]
        if add:
            for j in range(qs.size):
                os[j] += np.float32(qs[j]) * s
        else:
            for j in range(qs.size):
                os[j] = np.float32(qs[j]) * s


# ---- fp16: float16 bit patterns stored as int16 ----


@njit(parallel=True, cache=True)
def fp16(xb, h):
    """h = float16 bits of x (given as int32 bits), round to nearest even."""
    blocks = xb.size // BLOCK
    for blk in prange(blocks):
        xs = xb[blk * BLOCK : (blk + 1) * BLOCK]
        hs = h[blk * BLOCK : (blk + 1) * BLOCK]
        for j in range(BLOCK):
            hs[j] = as_int16(half_bits(xs[j]))
    for j in range(blocks * BLOCK, xb.size):
        h[j] = as_int16(half_bits(xb[j]))


@njit(cache=True)
def _fp16_feedback(rs, ts, hs, count):
    for j in range(count):
        v = rs[j] + ts[j]
        bits = half_bits(f2i(v))
        hs[j] = as_int16(bits)
        rs[j] = v - half_value(bits)


@njit(parallel=True, cache=True)
def fp16_feedback(r, t, h):
    """h = float16 of acc = r + t, then r = acc - float32(h)."""
    blocks = r.size // BLOCK
    for blk in prange(blocks):
        lo = blk * BLOCK
        _fp16_feedback(r[lo : lo + BLOCK], t[lo : lo + BLOCK], h[lo : lo + BLOCK], BLOCK)
    lo = blocks * BLOCK
    _fp16_feedback(r[lo:], t[lo:], h[lo:], r.size - lo)


@njit(cache=True)
def _fp16_expand(hs, os, add, count):
    if add:
        for j in range(count):
            os[j] += half_value(hs[j] & 0xFFFF)
    else:
        for j in range(count):
            os[j] = half_value(hs[j] & 0xFFFF)


@njit(parallel=True, cache=True)
def fp16_expand(h, out, add):
    """out = float32(h) (or out += float32(h) when ``add``)."""
    blocks = out.size // BLOCK
    for blk in prange(blocks):
        lo = blk * BLOCK
        _fp16_expand(h[lo : lo + BLOCK], out[lo : lo + BLOCK], add, BLOCK)
    lo = blocks * BLOCK
    _fp16_expand(h[lo:], out[lo:], add, out.size - lo)
