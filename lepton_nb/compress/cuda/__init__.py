"""The CUDA twin: the same functions as :mod:`lepton_nb.compress.cpu`, running :mod:`.kernels`.

Arguments are torch CUDA tensors (handed to numba without a copy through
``__cuda_array_interface__``) or host numpy arrays: on a GPU those are copied
to the device and results copied back; under the simulator
(``NUMBA_ENABLE_CUDASIM=1``) kernels run on the host arrays themselves.
Kernels run on torch's current stream when torch tensors are involved.
Top-k follows :mod:`lepton_nb.compress.plan`; candidates and selected indices come out in no
particular order (ties at the k-th magnitude are taken in any order).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from .. import plan
from ..tensors import is_tensor
from . import device as D
from .kernels import KERNELS

NAME = "cuda"
__all__ = ["KERNELS", "NAME", "grid", "kernel", "launch"]
_compiled: dict[str, Any] = {}


def kernel(name: str) -> Any:
    """The jitted kernel ``name`` of :data:`KERNELS` (compiled on first launch)."""
    if name not in _compiled:
        _compiled[name] = cuda.jit(KERNELS[name][0])
    return _compiled[name]


def grid(items: int, per_thread: int = 1) -> tuple[int, int]:
    """(blocks, threads) for ``items`` work items, ``per_thread`` per thread and round
    (grid-stride loops do the rest); small grids under the simulator."""
    if D.SIMULATOR:
        return max(1, min(2, math.ceil(items / (32 * per_thread)))), 32
    device = cuda.get_current_device()
    most = device.MULTIPROCESSOR_COUNT * 8
    return max(1, min(most, math.ceil(items / (D.THREADS * per_thread)))), D.THREADS


class _Stage:
    """Device views of the arguments of one call; copies results back at the end."""

    def __init__(self) -> None:
        self.back: list[tuple[Any, np.ndarray]] = []
        self.stream: Any = 0

    def __call__(self, a: Any, out: bool = False, into: bool = True) -> Any:
        if is_tensor(a):
            import torch

            self.stream = cuda.external_stream(torch.cuda.current_stream(a.device).cuda_stream)
            return cuda.as_cuda_array(a.detach())
        if D.SIMULATOR or cuda.is_cuda_array(a):
            return a
        d = cuda.to_device(a, stream=self.stream) if into else cuda.device_array_like(a)
        if out:
            self.back.append((d, a))
        return d

    def finish(self) -> None:
        for d, a in self.back:
            d.copy_to_host(a, stream=self.stream)
        if self.back and self.stream != 0:
            self.stream.synchronize()


def launch(name: str, items: int, *args: Any, per_thread: int = 1, stream: Any = 0) -> None:
    """Launch kernel ``name`` on a :func:`grid` for ``items`` work items."""
    blocks, threads = grid(items, per_thread)
    kernel(name)[blocks, threads, stream](*args)


def _launch(stage: _Stage, name: str, items: int, *args: Any, per_thread: int = 1) -> None:
    launch(name, items, *args, per_thread=per_thread, stream=stage.stream)


def _host(d: Any, stage: _Stage) -> np.ndarray:
    if isinstance(d, np.ndarray):
        return d
    out = d.copy_to_host(stream=stage.stream)
    if stage.stream != 0:
        stage.stream.synchronize()
    return out


def _zeros(n: int, dtype: Any, stage: _Stage) -> Any:
    return cuda.to_device(np.zeros(n, dtype), stream=stage.stream)


# ---- top-k ----


def topk(x: Any, k: int, idx: Any, val: Any) -> None:
    """idx, val = positions and values of the k largest |x|."""
    if k == 0:
        return
    st = _Stage()
    dx, didx, dval = st(x), st(idx, out=True, into=False), st(val, out=True, into=False)
    sample = _sample(st, "gather_sample", dx.size, dx)

    def first(thr, cap, count, cand, cidx):
        _launch(st, "collect", dx.size, dx, thr, cap, count, cand, cidx, per_thread=D.ITEMS)

    _select(st, first, dx, sample, k, didx, dval)
    st.finish()


def topk_feedback(r: Any, t: Any, k: int, idx: Any, val: Any) -> None:
    """acc = r + t; idx, val = top k of acc; r = acc with those k positions zeroed."""
    if k == 0:  # an empty tensor
        return
    st = _Stage()
    dr, dt = st(r, out=True), st(t)
    didx, dval = st(idx, out=True, into=False), st(val, out=True, into=False)
    sample = _sample(st, "gather_sample_feedback", dr.size, dr, dt)

    def first(thr, cap, count, cand, cidx):
        args = (dr, dt, thr, cap, count, cand, cidx)
        _launch(st, "collect_feedback", dr.size, *args, per_thread=D.ITEMS)

    _select(st, first, dr, sample, k, didx, dval)
    _launch(st, "zero_at", k, dr, didx)
    st.finish()


def _sample(st: _Stage, name: str, numel: int, *arrays: Any) -> np.ndarray:
    """|x| bits of the whole tensor if small, else of runs at random positions (host copy)."""
    count = plan.sample_size(numel)
    if count == numel:
        pos = np.arange(numel, dtype=np.int64)
    else:
        starts = np.random.default_rng().integers(0, numel - plan.RUN + 1, count // plan.RUN)
        pos = (starts[:, None] + np.arange(plan.RUN)).reshape(-1)
    out = cuda.device_array(count, np.int32) if not D.SIMULATOR else np.empty(count, np.int32)
    dpos = cuda.to_device(pos, stream=st.stream) if not D.SIMULATOR else pos
    _launch(st, name, count, *arrays, dpos, out)
    return _host(out, st)


def _select(st: _Stage, first, dx: Any, sample: np.ndarray, k: int, didx: Any, dval: Any) -> None:
    numel = dx.size
    attempt = 0
    while True:
        rank = plan.sample_rank(k, numel, sample.size, attempt)
        thr = plan.threshold(sample, rank)
        cap = plan.capacity(numel, sample.size, rank)
        count = _zeros(1, np.int64, st)
        cand = cuda.device_array(cap, np.int32, stream=st.stream)
        cidx = cuda.device_array(cap, didx.dtype, stream=st.stream)
        if attempt == 0:
            first(thr, cap, count, cand, cidx)
        else:
            _launch(st, "collect", numel, dx, thr, cap, count, cand, cidx, per_thread=D.ITEMS)
        found = int(_host(count, st)[0])
        if found >= k:
            break
        attempt += 1
    if found > cap:  # more than the room made: collect again into exact room
        cap = found
        count = _zeros(1, np.int64, st)
        cand = cuda.device_array(cap, np.int32, stream=st.stream)
        cidx = cuda.device_array(cap, didx.dtype, stream=st.stream)
        _launch(st, "collect", numel, dx, thr, cap, count, cand, cidx, per_thread=D.ITEMS)
    kth, ties = _kth(st, cand, found, k)
    counters = _zeros(2, np.int64, st)
    _launch(st, "emit", found, cand, cidx, found, kth, ties, k - ties, counters, didx, dval)


def _kth(st: _Stage, cand: Any, m: int, k: int) -> tuple[int, int]:
    """(bits of the k-th largest |candidate|, how many equal to it to take): radix select,
    11 + 10 + 10 bits."""
    prefix, mask, above = 0, 0, 0
    for shift, width in ((20, 11), (10, 10), (0, 10)):
        hist = _zeros(D.BINS, np.int64, st)
        _launch(st, "histogram", m, cand, m, shift, width, mask, prefix, hist)
        counts = _host(hist, st)[: 1 << width]
        b = (1 << width) - 1
        while above + counts[b] < k:
            above += int(counts[b])
            b -= 1
        prefix |= b << shift
        mask |= ((1 << width) - 1) << shift
    return prefix, k - above


def scatter_add(dst: Any, idx: Any, vals: Any) -> None:
    """dst[idx] += vals (duplicates accumulate; out-of-range indices are ignored)."""
    st = _Stage()
    args = st(dst, out=True), st(idx), st(vals)
    _launch(st, "scatter_add", args[1].size, *args)
    st.finish()


# ---- int8 ----


def int8(x: Any, chunk: int, q: Any, scale: Any) -> None:
    """scale[c] = max|x| / 127 per chunk; q = round(x / scale)."""
    st = _Stage()
    args = st(x), chunk, st(q, out=True, into=False), st(scale, out=True, into=False)
    _launch(st, "int8", args[3].size * D.THREADS, *args)
    st.finish()


def int8_feedback(r: Any, t: Any, chunk: int, q: Any, scale: Any) -> None:
    """int8 of acc = r + t; r = acc - q * scale."""
    st = _Stage()
    args = st(r, out=True), st(t), chunk, st(q, out=True, into=False)
    dscale = st(scale, out=True, into=False)
    _launch(st, "int8_feedback", dscale.size * D.THREADS, *args, dscale)
    st.finish()


def int8_expand(q: Any, scale: Any, chunk: int, out: Any, add: bool) -> None:
    """out (+)= q * scale."""
    st = _Stage()
    args = st(q), st(scale), chunk, st(out, out=True, into=add), bool(add)
    _launch(st, "int8_expand", args[1].size * D.THREADS, *args)
    st.finish()


# ---- fp16 ----


def fp16(x: Any, h: Any) -> None:
    """h (int16) = float16 bits of x."""
    st = _Stage()
    args = st(x), st(h, out=True, into=False)
    _launch(st, "fp16", args[0].size, *args)
    st.finish()


def fp16_feedback(r: Any, t: Any, h: Any) -> None:
    """h = float16 of acc = r + t; r = acc - float32(h)."""
    st = _Stage()
    args = st(r, out=True), st(t), st(h, out=True, into=False)
    _launch(st, "fp16_feedback", args[0].size, *args)
    st.finish()


def fp16_expand(h: Any, out: Any, add: bool) -> None:
    """out (+)= float32(h)."""
    st = _Stage()
    args = st(h), st(out, out=True, into=add), bool(add)
    _launch(st, "fp16_expand", args[1].size, *args)
    st.finish()
