"""The segments a push writes into: one populated spare, and the ones the ranks have let go.

Fresh shared pages cost far more than copying into them: allocating and
faulting in 1 GB takes about 0.6 s here, freeing it about 0.3 s, while the
copy takes 0.06 s. So segments are reused. After a push, its segments stay
open in the notebook, mapped and populated, and are *lent* to the ranks. A
lent segment that no rank maps any more (each rank drops a replaced value
shortly after binding the new one) becomes the spare for the next push of
new content, which then only copies. In a loop that pushes new content
under one name, two segments take turns and nothing is allocated or freed.

At most one segment that no rank maps is kept; others are closed. Only a
segment lent before the last push can come free soon; when there is none,
or none comes free within :data:`REUSE_WAIT_S`, a fresh spare of the same
size is allocated in the background instead (a push that finds no spare
waits for that allocation rather than start its own).

Whether a segment is still mapped is read from ``/proc/<pid>/maps`` of the
ranks on this host and their child processes (a forked worker inherits a
mapping). Where that cannot be read, the segment is taken as still mapped.
Runs in the notebook.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from . import segment

#: Seconds after a push to wait for a lent segment to come free before allocating a spare.
REUSE_WAIT_S = 2.0
#: Seconds between looks at the ranks' mappings while waiting.
POLL_S = 0.05


def _descendants(pids: list[int]) -> list[int]:
    """``pids`` and every live process below them."""
    seen: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                continue
    return seen


def _mapped_inodes(pids: list[int]) -> set[tuple[str, int]] | None:
    """(device, inode) of every file mapped by ``pids`` and their children; None if unreadable."""
    found: set[tuple[str, int]] = set()
    for pid in _descendants(pids):
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    fields = line.split(None, 5)
                    if len(fields) >= 5 and fields[4] != "0":
                        found.add((fields[3], int(fields[4])))
        except (FileNotFoundError, ProcessLookupError):
            continue  # the process is gone, and its mappings with it
        except OSError:
            return None
    return found


def _identity(seg: segment.Segment) -> tuple[str, int]:
    st = os.fstat(seg.fd)
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", st.st_ino


class Spare:
    """One populated segment that no rank maps, and the segments lent to the ranks.

    Parameters
    ----------
    running
        Whether the cluster runs (nothing is kept or prepared otherwise).
    shm_dir
        Where fresh spares are allocated.
    pids
        The process ids of the ranks on this host, whose mappings tell whether a
        lent segment is still in use; by default none (a lent segment is then
        never reused, only closed when the spare is).
    """

    def __init__(
        self,
        running: Callable[[], bool],
        shm_dir: str = segment.SHM_DIR,
        pids: Callable[[], list[int]] | None = None,
    ) -> None:
        self.enabled = True
        self.shm_dir = shm_dir
        self._running = running
        self._pids = pids
        self._segment: segment.Segment | None = None
        self._lent: list[tuple[segment.Segment, tuple[str, int]]] = []  # with (device, inode)
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._closing = threading.Event()  # close() is waiting: background work stops
        self._allocating = threading.Event()  # the background is allocating a fresh spare

    def _live(self) -> bool:
        return self.enabled and not self._closing.is_set() and self._running()

    def take(self, size: int) -> segment.Segment | None:
        """A populated segment that fits ``size`` (without wasting more than half), else None.

        Parameters
        ----------
        size
            Bytes the push needs.

        Returns
        -------
        Segment or None
            The spare, or a lent segment no rank maps any more; None if neither fits.
        """
        with self._lock:
            seg = self._segment
            if seg is not None and size <= seg.size <= 2 * size:
                self._segment = None
                return seg
        if not self._reclaim() and self._allocating.is_set():
            self.settle()  # a fresh spare is on its way: sooner than starting another
        with self._lock:
            seg = self._segment
            if seg is not None and size <= seg.size <= 2 * size:
                self._segment = None
                return seg
        return None

    def keep(self, seg: segment.Segment) -> None:
        """Take back ``seg``, which no rank was sent, as the spare; let it go if one is held.

        Parameters
        ----------
        seg
            An open segment that no rank has mapped.
        """
        self._offer(seg)

    def recycle(self, used: list[segment.Segment]) -> None:
        """Lend ``used`` segments to the ranks; in the background, make sure a spare is ready.

        Parameters
        ----------
        used
            Segments the ranks were sent; their names already dropped.
        """
        self._worker = threading.Thread(target=self._work, args=(list(used),), daemon=True)
        self._worker.start()

    def _reusable(self, seg: segment.Segment) -> bool:
        return (
            self._pids is not None
            and seg.name is None  # ranks reach it through the notebook's descriptor
            and not seg.spilled
            and seg.view is not None
            and seg.fd >= 0
        )

    def _offer(self, seg: segment.Segment) -> None:
        """Keep ``seg`` (no rank maps it) as the spare if none is held, else close it."""
        with self._lock:
            kept = self._segment is None and not seg.spilled and seg.view is not None and self._live()
            if kept:
                self._segment = seg
        if not kept:
            seg.close()

    def _reclaim(self) -> bool:
        """Move lent segments that no rank maps any more to the spare (or close them).

        Returns
        -------
        bool
            Whether any came free.
        """
        with self._lock:
            if not self._lent or self._pids is None:
                return False
        mapped = _mapped_inodes(self._pids())
        if mapped is None:
            return False
        with self._lock:  # what close() let go meanwhile is no longer lent
            free = [seg for seg, ident in self._lent if ident not in mapped]
            self._lent = [(seg, ident) for seg, ident in self._lent if ident in mapped]
        for seg in free:
            self._offer(seg)
        return bool(free)

    def _work(self, used: list[segment.Segment]) -> None:
        size = max(seg.size for seg in used)
        try:  # background work: let the notebook's threads go first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (OSError, AttributeError):
            pass
        for seg in used:
            with self._lock:
                lent = self._reusable(seg) and self._live()
                if lent:
                    self._lent.append((seg, _identity(seg)))
            if not lent:
                seg.close()
        just = {id(seg) for seg in used}
        used.clear()
        deadline = time.monotonic() + REUSE_WAIT_S
        while self._live():
            self._reclaim()
            with self._lock:
                ready = self._segment is not None and size <= self._segment.size <= 2 * size
                # only segments lent before this push can come free soon (ranks drop a
                # replaced value shortly after binding the new one)
                waiting = any(id(seg) not in just and size <= seg.size <= 2 * size
                              for seg, _ in self._lent)  # fmt: skip
            if ready:
                return
            if not waiting or time.monotonic() > deadline:
                break
            self._closing.wait(POLL_S)
        if not self._live():
            return
        self._allocating.set()
        try:
            fresh = segment.allocate(size, self.shm_dir, spill=False)  # only in shm, never spilled
        except OSError:
            return
        finally:
            self._allocating.clear()
        if fresh is None:
            return
        with self._lock:
            old, self._segment = self._segment, fresh
            if not self._live():  # stopped meanwhile
                old, self._segment = fresh, None
        if old is not None:
            old.close()

    def settle(self, timeout: float | None = None) -> None:
        """Wait for the background work to finish.

        Parameters
        ----------
        timeout
            Seconds to wait at most; None waits as long as it takes.
        """
        if self._worker is not None:
            self._worker.join(timeout)

    def close(self) -> None:
        """Release the spare and every lent segment (the cluster is stopping, or shm_dir changed)."""
        self._closing.set()
        try:
            self.settle(5.0)
            with self._lock:
                seg, self._segment = self._segment, None
                lent, self._lent = [s for s, _ in self._lent], []
            for s in [seg, *lent]:
                if s is not None:
                    s.close()
        finally:
            self._closing.clear()
