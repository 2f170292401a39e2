"""numba CPU kernels of top-k: collect candidates at or above a threshold, select k.

:func:`collect` runs one ``prange`` range per thread over fixed 64-element
blocks: a vectorised integer max of the block's |x| bits, and only when it
reaches the threshold a scalar rescan that appends (bits, index) to the
range's own slots. :func:`select` is a radix select among the candidates.
:mod:`lepton_nb.compress.cpu` drives them as :mod:`lepton_nb.compress.plan` says;
:mod:`lepton_nb.compress.cuda.topk_kernels` is the CUDA twin. As in :mod:`.kernels`,
collecting and sampling have a plain and an error-feedback (``*_feedback``: r += t
on the way) version, kept apart so that each hot loop stays branch-free.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..plan import RUN
from .kernels import BLOCK, MAG, f2i


def chunks(numel: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` ranges [lo, hi) covering ``numel`` elements, split at block boundaries."""
    blocks = -(-numel // BLOCK)
    step = -(-blocks // count) * BLOCK
    lo = np.minimum(np.arange(count, dtype=np.int64) * step, numel)
    return lo, np.minimum(lo + step, numel)


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
def _descend(hist, k, above):
    """The highest bin at which the count from the top reaches k, and the count above it."""
    b = hist.size - 1
    while above + hist[b] < k:
        above += hist[b]
        b -= 1
    return b, above


@njit(cache=True)
def select(cand, cidx, off, counts, k, out_idx, out_bits):
    """Exactly the k largest |x| among the candidates, in index order (ties: first ones).

    Radix select on the 31 magnitude bits, 11 + 10 + 10 (small histograms, as
    the CUDA twin's): the top 11 bits over all candidates; the next 10 over
    those in the chosen bin, which are copied aside; the last 10 over those.
    """
    hist = np.zeros(1 << 11, np.int64)
    for c in range(off.size):
        for j in range(off[c], off[c] + counts[c]):
            hist[(cand[j] & MAG) >> 20] += 1
    top, above = _descend(hist, k, 0)
    aside = np.empty(hist[top], np.int32)
    n = 0
    hist = np.zeros(1 << 10, np.int64)
    for c in range(off.size):
        for j in range(off[c], off[c] + counts[c]):
            b = cand[j] & MAG
            if (b >> 20) == top:
                aside[n] = b
                n += 1
                hist[(b >> 10) & 0x3FF] += 1
    mid, above = _descend(hist, k, above)
    hist = np.zeros(1 << 10, np.int64)
    for j in range(n):
        if ((aside[j] >> 10) & 0x3FF) == mid:
            hist[aside[j] & 0x3FF] += 1
    low, above = _descend(hist, k, above)
    kth = (top << 20) | (mid << 10) | low
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
