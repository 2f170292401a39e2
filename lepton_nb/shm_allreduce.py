"""Same-host allreduce through shared memory: one segment per rank, mapped by every rank.

Runs on a rank. When every rank of the process group is on this host,
:func:`form` (a collective) gives each rank a segment made by
:func:`lepton_nb.transfer.segment.allocate` (an unnamed, prefaulted file in
``/dev/shm``) and maps every other rank's through ``/proc/<pid>/fd/<fd>``.
:meth:`SharedGroup.allreduce` then reduces a tensor chunk by chunk:

1. every rank copies the chunk into its segment and bumps its step counter;
2. rank ``r`` reduces slice ``r`` of the chunk over every rank, in rank order
   (rank 0, then rank 1, ...), into its segment's result area, and bumps its counter;
3. every rank copies each slice's result into its tensor.

Each element is computed by one rank, in one order, so the result is exact and
the same bits on every rank. A tensor of at most :data:`ONE_STEP_BYTES` takes
one step instead: every rank reduces every rank's copy itself, in rank order
(two copy areas, used in turn, make the second counter bump unnecessary).

Ranks wait for each other by spinning on the peers' counters, then yielding,
bounded by the group's timeout; a peer that exits or never arrives raises
:class:`RankLost` or :class:`RankTimeout` naming it. Once every rank has mapped
the others' segments, each closes its descriptor: the memory lives only in the
mappings and goes with :meth:`SharedGroup.close` or with the processes.
"""

from __future__ import annotations

import mmap
import os
import threading
import time

import numpy as np
import torch
import torch.distributed as dist

from .transfer import segment

#: Bytes of one chunk of a rank's tensor in flight (per copy area). Chunks this size
#: stay in the caches between the copy in, the reduction and the copy out, and need few
#: waits: measured, 100 MB between 2 ranks on 2 cores, 15 ms with 1 to 8 MiB chunks when
#: the cores are free; when other work shares them, 1 MiB chunks (200 waits) lose most.
CHUNK = 1 << 21

#: Tensors of at most this many bytes take the one-step path (one counter bump).
ONE_STEP_BYTES = 1 << 18

#: Bytes before the copy areas: the rank's step counter, alone on its page.
HEADER = segment.PAGE

#: One segment: the header, two copy areas (used in turn) and the result area.
SIZE = HEADER + 3 * CHUNK

#: Slices of a chunk start on this many bytes (no cache line is written by two ranks).
ALIGN = 64

#: Reads of a peer's counter (about 50 us) before a waiting rank starts yielding its core:
#: enough for a peer that is running, short enough not to starve one that waits for a core.
SPIN = 600

#: Seconds between checks that a rank being waited for is still alive.
LIVENESS_S = 0.05

#: Seconds of yielding before a waiting rank sleeps between reads instead.
YIELD_S = 0.001

#: The dtypes the shared-memory path reduces (those gloo's all_reduce sums).
DTYPES = frozenset({
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64,
})  # fmt: skip

#: The reductions, applied to two terms in rank order.
OPS = ("sum", "max", "min")

_UFUNCS = {"sum": np.add, "max": np.maximum, "min": np.minimum}
_NUMPY = DTYPES - {torch.bfloat16}  # the dtypes numpy has

NOT_ARRIVED = (
    "shared-memory allreduce: rank {rank} (pid {pid}) did not arrive within {timeout:g} s "
    "(the process group's timeout), at step {step}. Every rank must call allreduce, "
    "the same number of times."
)
LOST = (
    "shared-memory allreduce: rank {rank} (pid {pid}) exited before arriving, at step {step}."
)
BROKEN = (
    "the shared-memory allreduce of this process group stopped after an error ({cause}); "
    "form the process group again (e.g. cluster.restart())"
)
CLOSED = "the shared-memory allreduce of this process group was released"

_FENCE = threading.Lock()  # acquiring and releasing a mutex orders memory on every platform


class RankTimeout(TimeoutError):
    """A rank did not arrive at a shared-memory allreduce within the group's timeout."""


class RankLost(RuntimeError):
    """A rank exited while the others waited for it in a shared-memory allreduce."""


def _fence() -> None:
    with _FENCE:
        pass


def _boot_id() -> str:
    """This kernel's boot id: ranks that agree on it can open each other's /proc fds."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _map(path: str) -> mmap.mmap:
    """Map another rank's segment shared and prefaulted; no descriptor is kept."""
    fd = os.open(path, os.O_RDWR)
    try:
        return mmap.mmap(fd, SIZE, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
    finally:
        os.close(fd)


def form(timeout_s: float) -> SharedGroup | None:
    """Give every rank of the default process group a segment that every rank maps.

    A collective: every rank of the group must call it. Either every rank gets its
    :class:`SharedGroup`, or every rank gets None (a rank on another kernel, no room
    in ``/dev/shm``, a ``/proc`` that hides the others).

    Parameters
    ----------
    timeout_s : float
        How long a rank waits for another during an allreduce (the group's timeout).

    Returns
    -------
    SharedGroup or None
        This rank's view of every rank's segment; None on every rank if any cannot.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        seg = segment.allocate(SIZE, spill=False)  # never a spill file: None without room
    except OSError:
        seg = None
    mine = (_boot_id(), os.getpid(), seg.path if seg is not None else None)
    infos: list[tuple[str, int, str | None]] = [mine] * world
    dist.all_gather_object(infos, mine)
    own = seg.view if seg is not None else None
    maps: list[mmap.mmap] = []
    ok = own is not None and all(i[2] for i in infos) and len({i[0] for i in infos}) == 1
    if ok:
        try:
            for k, (_, _, path) in enumerate(infos):
                assert path is not None and own is not None
                maps.append(own if k == rank else _map(path))
        except OSError:
            ok = False
    agreed = torch.tensor([int(ok)], dtype=torch.int32)
    dist.all_reduce(agreed, op=dist.ReduceOp.MIN)  # also: every rank has mapped every segment
    if seg is not None:
        seg.close()  # our descriptor (and the name, where O_TMPFILE is missing) goes
    if not agreed.item():
        for m in maps:
            m.close()
        return None
    return SharedGroup(rank, maps, [i[1] for i in infos], timeout_s)


class SharedGroup:
    """One rank's mappings of every rank's segment, and the step it has reached.

    Made by :func:`form`.

    Parameters
    ----------
    rank : int
        This rank.
    maps : list of mmap.mmap
        Every rank's segment, by rank (this rank's own among them).
    pids : list of int
        Every rank's process id, by rank (to tell a lost rank from a late one).
    timeout_s : float
        How long to wait for another rank at one step.
    """

    def __init__(self, rank: int, maps: list[mmap.mmap], pids: list[int], timeout_s: float) -> None:
        self.rank, self.world = rank, len(maps)
        self.pids, self.timeout_s = pids, timeout_s
        self.step = 0
        self.broken: str | None = None
        self._maps = maps
        self._counters = [memoryview(m)[:8].cast("Q") for m in maps]
        self._mine = self._counters[rank]
        self._peers = [k for k in range(self.world) if k != rank]
        self._views: dict[torch.dtype, tuple[list[torch.Tensor], ...]] = {}
        self._arrays: dict[np.dtype, tuple[list[np.ndarray], ...]] = {}

    def allreduce(self, x: torch.Tensor, op: str = "sum") -> None:
        """Reduce ``x`` in place across every rank: exact, and the same bits on every rank.

        Parameters
        ----------
        x : torch.Tensor
            A contiguous CPU tensor of one of :data:`DTYPES`.
        op : str, optional
            ``"sum"`` (the default), ``"max"`` or ``"min"``.

        Raises
        ------
        RankTimeout
            If a rank did not arrive within the timeout.
        RankLost
            If a rank exited while this one waited for it.
        RuntimeError
            If an earlier step failed, or the group was released (:meth:`close`).
        """
        flat = x if x.dim() == 1 else x.view(-1)
        n, item = flat.numel(), flat.element_size()
        if n * item <= ONE_STEP_BYTES:
            if flat.dtype in _NUMPY:  # numpy's calls cost a few us less than torch's
                self._one_step_numpy((flat.detach() if flat.requires_grad else flat).numpy(), op)
            else:
                self._one_step(flat, op)
            return
        per = CHUNK // item
        for lo in range(0, n, per):
            self._chunk(flat[lo : lo + per], op)

    def _areas(self, dtype: torch.dtype) -> tuple[list[torch.Tensor], ...]:
        """(copy area 0, copy area 1, result area) of every rank, as flat ``dtype`` tensors."""
        areas = self._views.get(dtype)
        if areas is None:
            if self.broken:
                raise RuntimeError(self.broken)
            item = torch.empty(0, dtype=dtype).element_size()
            count = CHUNK // item
            areas = tuple(
                [torch.frombuffer(m, dtype=dtype, count=count, offset=HEADER + a * CHUNK)
                 for m in self._maps]
                for a in range(3)
            )  # fmt: skip
            self._views[dtype] = areas
        return areas

    def _arrays_of(self, dtype: np.dtype) -> tuple[list[np.ndarray], ...]:
        """(copy area 0, copy area 1) of every rank, as flat ``dtype`` arrays."""
        arrays = self._arrays.get(dtype)
        if arrays is None:
            if self.broken:
                raise RuntimeError(self.broken)
            count = CHUNK // dtype.itemsize
            arrays = tuple(
                [np.frombuffer(m, dtype, count, HEADER + a * CHUNK) for m in self._maps]
                for a in range(2)
            )
            self._arrays[dtype] = arrays
        return arrays

    def _one_step_numpy(self, x: np.ndarray, op: str) -> None:
        n = x.size
        area = self._arrays_of(x.dtype)[(self.step + 1) % 2]
        np.copyto(area[self.rank][:n], x)
        self._sync()
        _reduce_numpy(x, [a[:n] for a in area], op)

    def _one_step(self, x: torch.Tensor, op: str) -> None:
        n = x.numel()
        area = self._areas(x.dtype)[(self.step + 1) % 2]
        area[self.rank][:n].copy_(x)
        self._sync()
        _reduce(x, [a[:n] for a in area], op)

    def _chunk(self, part: torch.Tensor, op: str) -> None:
        n, r = part.numel(), self.rank
        areas = self._areas(part.dtype)
        copies, results = areas[(self.step + 1) % 2], areas[2]
        bounds = self._bounds(n, part.element_size())
        lo, hi = bounds[r], bounds[r + 1]
        mine = copies[r]
        if lo > 0:
            mine[:lo].copy_(part[:lo])
        if hi < n:
            mine[hi:n].copy_(part[hi:n])
        self._sync()
        if hi > lo:
            terms = [part[lo:hi] if k == r else copies[k][lo:hi] for k in range(self.world)]
            _reduce(results[r][lo:hi], terms, op)
        self._sync()
        for k in range(self.world):
            a, b = bounds[k], bounds[k + 1]
            if b > a:
                part[a:b].copy_(results[k][a:b])

    def _bounds(self, n: int, item: int) -> list[int]:
        """Where each rank's slice of an ``n``-element chunk starts, and the end."""
        align = max(1, ALIGN // item)
        share = -(-n // self.world)  # ceil(n / world) ...
        share = -(-share // align) * align  # ... rounded up to whole cache lines
        return [min(n, k * share) for k in range(self.world + 1)]

    def _sync(self) -> None:
        """Bump this rank's counter; wait until every other rank's has reached it."""
        if self.broken:
            raise RuntimeError(self.broken)
        self.step += 1
        s = self.step
        _fence()  # the copies before the counter
        self._mine[0] = s
        for k in self._peers:
            if self._counters[k][0] < s:
                self._wait(k, s)
        _fence()  # the counter before the reads

    def _wait(self, k: int, s: int) -> None:
        counter = self._counters[k]
        for _ in range(SPIN):
            if counter[0] >= s:
                return
        start = time.monotonic()
        deadline, check = start + self.timeout_s, start + LIVENESS_S
        while counter[0] < s:
            now = time.monotonic()
            if now >= check:
                check = now + LIVENESS_S
                if not _alive(self.pids[k]) and counter[0] < s:
                    self._fail(RankLost(LOST.format(rank=k, pid=self.pids[k], step=s)))
                if now >= deadline:
                    msg = NOT_ARRIVED.format(rank=k, pid=self.pids[k], timeout=self.timeout_s, step=s)
                    self._fail(RankTimeout(msg))
            if now - start < YIELD_S:
                os.sched_yield()
            else:
                time.sleep(0.0001)

    def _fail(self, error: Exception) -> None:
        self.broken = BROKEN.format(cause=error)
        raise error

    def close(self) -> None:
        """Unmap every segment; the memory goes once no rank maps it. Idempotent."""
        self.broken = self.broken or CLOSED
        self._views.clear()
        self._arrays.clear()
        for c in self._counters:
            c.release()
        self._counters = []
        maps, self._maps = self._maps, []
        for m in maps:
            try:
                m.close()
            except BufferError:  # a view still exported somewhere: unmapped when it goes
                pass


def _reduce_numpy(out: np.ndarray, terms: list[np.ndarray], op: str) -> None:
    """:func:`_reduce` with numpy's ufuncs (the same elementwise results, fewer microseconds)."""
    ufunc = _UFUNCS[op]
    with np.errstate(all="ignore"):  # an overflow to inf is the result, as with torch
        ufunc(terms[0], terms[1], out=out)
        for t in terms[2:]:
            ufunc(out, t, out=out)


def _reduce(out: torch.Tensor, terms: list[torch.Tensor], op: str) -> None:
    """``out`` = terms[0] op terms[1] op ..., left to right (``out`` may be one of the first two)."""
    if op == "sum":
        torch.add(terms[0], terms[1], out=out)
        for t in terms[2:]:
            out.add_(t)
    else:
        pick = torch.maximum if op == "max" else torch.minimum
        pick(terms[0], terms[1], out=out)
        for t in terms[2:]:
            pick(out, t, out=out)
