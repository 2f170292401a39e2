"""The CPU twin: numba kernels on host (numpy) arrays.

Same functions, same arguments as :mod:`lepton_nb.compress.cuda`: flat contiguous arrays, outputs
written in place. Top-k follows :mod:`lepton_nb.compress.plan`: sample a threshold, collect
candidates per thread chunk, select exactly k (indices come out ascending).
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from .. import plan
from . import kernels as K
from . import topk_kernels as T

NAME = "cpu"


def topk(x: np.ndarray, k: int, idx: np.ndarray, val: np.ndarray) -> None:
    """idx, val = positions and values of the k largest |x|."""
    if k == 0:
        return
    xb = x.view(np.int32)
    samples = plan.sample_size(x.size)
    sample = (xb & K.MAG) if samples == x.size else T.sample(xb, samples)

    def first(thr, lo, hi, off, cap, cand, cidx, counts):
        T.collect(xb, thr, lo, hi, off, cap, cand, cidx, counts)

    _select(first, xb, sample, k, idx, val)


def topk_feedback(r: np.ndarray, t: np.ndarray, k: int, idx: np.ndarray, val: np.ndarray) -> None:
    """acc = r + t; idx, val = top k of acc; r = acc with those k positions zeroed."""
    if k == 0:
        r += t
        return
    samples = plan.sample_size(r.size)
    if samples == r.size:
        sample = (r + t).view(np.int32) & K.MAG
    else:
        sample = T.sample_feedback(r, t, samples)

    def first(thr, lo, hi, off, cap, cand, cidx, counts):
        T.collect_feedback(r, t, thr, lo, hi, off, cap, cand, cidx, counts)

    _select(first, r.view(np.int32), sample, k, idx, val)
    T.zero_at(r, idx)


def _select(first: Callable, xb: np.ndarray, sample: np.ndarray, k: int, idx, val) -> None:
    """Collect candidates (``first`` on the first try, then from ``xb``), select k."""
    numel = xb.size
    lo, hi = T.chunks(numel, numba.get_num_threads())
    attempt = 0
    while True:
        rank = plan.sample_rank(k, numel, sample.size, attempt)
        thr = plan.threshold(sample, rank)
        room = -(-plan.capacity(numel, sample.size, rank) // lo.size)
        cap = np.minimum(hi - lo, room)
        off = np.concatenate(([0], np.cumsum(cap)[:-1])).astype(np.int64)
        cand = np.empty(int(cap.sum()), np.int32)
        cidx = np.empty(cand.size, idx.dtype)
        counts = np.zeros(lo.size, np.int64)
        collect = first if attempt == 0 else _collector(xb)
        collect(thr, lo, hi, off, cap, cand, cidx, counts)
        if counts.sum() >= k:
            break
        attempt += 1
    over = counts > cap
    if over.any():  # a chunk held more than its share: collect it again into exact room
        cand, cidx, off = _recollect(xb, thr, lo, hi, off, cap, counts, cand, cidx, over)
    T.select(cand, cidx, off, counts, k, idx, val.view(np.int32))


def _collector(xb: np.ndarray) -> Callable:
    def collect(thr, lo, hi, off, cap, cand, cidx, counts):
        T.collect(xb, thr, lo, hi, off, cap, cand, cidx, counts)

    return collect


def _recollect(xb, thr, lo, hi, off, cap, counts, cand, cidx, over):
    new_off = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    new_cand = np.empty(int(counts.sum()), np.int32)
    new_cidx = np.empty(new_cand.size, cidx.dtype)
    for c in np.flatnonzero(~over):
        n = counts[c]
        new_cand[new_off[c] : new_off[c] + n] = cand[off[c] : off[c] + n]
        new_cidx[new_off[c] : new_off[c] + n] = cidx[off[c] : off[c] + n]
    sel = np.flatnonzero(over)
    again = np.zeros(sel.size, np.int64)
    T.collect(xb, thr, lo[sel], hi[sel], new_off[sel], counts[sel], new_cand, new_cidx, again)
    return new_cand, new_cidx, new_off


def int8(x: np.ndarray, chunk: int, q: np.ndarray, scale: np.ndarray) -> None:
    """scale[c] = max|x| / 127 per chunk; q = round(x / scale)."""
    K.int8(x, chunk, q, scale)


def int8_feedback(r, t, chunk: int, q, scale) -> None:
    """int8 of acc = r + t; r = acc - q * scale."""
    K.int8_feedback(r, t, chunk, q, scale)


def int8_expand(q, scale, chunk: int, out, add: bool) -> None:
    """out (+)= q * scale."""
    K.int8_expand(q, scale, chunk, out, add)


def fp16(x: np.ndarray, h: np.ndarray) -> None:
    """h (int16) = float16 bits of x."""
    K.fp16(x.view(np.int32), h)


def fp16_feedback(r, t, h) -> None:
    """h = float16 of acc = r + t; r = acc - float32(h)."""
    K.fp16_feedback(r, t, h)


def fp16_expand(h, out, add: bool) -> None:
    """out (+)= float32(h)."""
    K.fp16_expand(h, out, add)


def scatter_add(dst, idx, vals) -> None:
    """dst[idx] += vals (duplicates accumulate; out-of-range indices are ignored)."""
    K.scatter_add(dst, idx, vals, numba.get_num_threads())
