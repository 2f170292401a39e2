"""numba CPU kernels for int8, fp16 and scatter_add, and the bit helpers of all.

Each kernel splits its work with ``prange``: scatter_add into one range of
dst per thread (``numba.get_num_threads()``, passed in), int8 by quantisation
chunk, fp16 by fixed 64-element blocks, whose constant trip count lets LLVM
vectorise the loop. Floats are compared as int32 bit patterns of |x|
(``& MAG``), which orders non-negative floats and puts NaN above inf, so a
largest magnitude is an integer max. Top-k is in :mod:`.topk_kernels`;
:mod:`lepton_nb.compress.cuda.kernels` holds the CUDA twin of each kernel.

Each encoding kernel comes in two on purpose: the plain one (``int8``, ``fp16``)
only reads x, and the error-feedback one (``*_feedback``) forms acc = r + t,
encodes it and leaves r = acc - decode(acc) in the same pass (per chunk or
block, while it is in cache) instead of separate passes over the whole tensor
for the add, the encoding and the subtraction. One body with an ``add`` flag
would put a branch in the hot loop (LLVM then stops vectorising it) and make the
plain path carry a dummy residual.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import halfbits

#: Elements per block in the hot loops (constant trip count: vectorised).
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
