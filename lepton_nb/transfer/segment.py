"""Shared-memory segments: written once by the notebook, mapped copy-on-write by each rank.

A segment is an unnamed file (``O_TMPFILE``) in ``/dev/shm``, or, where that
is too small or absent, in a spill directory, with a warning. Ranks on this
host open it through ``/proc/<notebook pid>/fd/<fd>`` and map it
``MAP_PRIVATE``: reads cost no copy, and a write on one rank stays that
rank's own. Having no name, a segment can never be left behind in
``/dev/shm``: its memory lives exactly as long as the mappings and the
notebook's descriptor. (Where ``O_TMPFILE`` is unsupported a named file is
used and unlinked as soon as the ranks have mapped it.)

Allocating fresh shared pages costs far more than copying into them, so a
:class:`Transfer` reuses segments the ranks have let go and keeps one spare
populated for the next push of new content (:mod:`.spare`).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SHM_DIR = "/dev/shm"
PREFIX = "lepton-"
PAGE = mmap.ALLOCATIONGRANULARITY
#: madvise(2) advice that faults a range in for writing in one call (Linux 5.14 and later).
MADV_POPULATE_WRITE = 23


class SpillWarning(UserWarning):
    """Shared memory was too small or absent; a memory-mapped file in the spill directory is used."""


class NoRoomError(OSError):
    """Neither shared memory nor the spill directory can hold a push; nothing was written."""


NO_ROOM = (
    "a push needs {need} here, but {shm_dir} has {shm_free} free and the spill directory "
    "{spill_dir} has {spill_free} free; nothing was sent. Push less at once, free memory, or "
    "point cluster.transfer.spill_dir at a larger folder."
)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def default_spill_dir() -> str:
    """``$TMPDIR/lepton-spill``: where segments go when ``/dev/shm`` cannot hold them."""
    return os.path.join(tempfile.gettempdir(), "lepton-spill")


def aligned(n: int) -> int:
    """``n`` rounded up to the mapping granularity."""
    return -(-n // PAGE) * PAGE


@dataclass
class Segment:
    """An open, populated shared file of ``size`` bytes, mapped writable in the notebook."""

    fd: int
    size: int
    spilled: bool = False
    name: str | None = None  # only when O_TMPFILE was not available
    view: mmap.mmap | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        """The path ranks on this host open to map it."""
        return self.name or f"/proc/{os.getpid()}/fd/{self.fd}"

    def release_name(self) -> None:
        """Drop the file's name, if it has one (mappings made stay valid)."""
        if self.name:
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass
            self.name = None

    def close(self) -> None:
        """Release the notebook's hold; the memory goes once no rank maps it."""
        self.release_name()
        # drop the reference rather than view.close(): the mmap's dealloc unmaps
        # without holding the GIL, which matters for a large populated mapping
        self.view = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _free_bytes(folder: str) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def _open_unnamed(folder: str) -> tuple[int, str | None]:
    try:
        return os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600), None
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    name = os.path.join(folder, f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}")
    return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), name


def _madvise() -> Callable[[int, int, int], int] | None:
    """libc's madvise through ctypes, which drops the GIL for the call; None where absent."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def _populate(view: mmap.mmap, threads: int) -> None:
    """Fault in every page of a shared mapping for writing, on ``threads`` threads, GIL released.

    One ``MADV_POPULATE_WRITE`` call per thread where the kernel has it, else a
    byte per page written with numpy (which also drops the GIL).
    """
    size = len(view)
    start = ctypes.addressof(ctypes.c_char.from_buffer(view))
    madvise = _madvise()
    step = aligned(-(-size // threads))
    ranges = [(off, min(step, size - off)) for off in range(0, size, step)]
    failed: list[int] = []

    def fault(off: int, n: int) -> None:
        if madvise is not None:
            if madvise(start + off, n, MADV_POPULATE_WRITE) == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOSYS):  # an older kernel says EINVAL
                failed.append(err)  # ENOMEM, EFAULT: no memory behind the pages
                return
        np.frombuffer(view, np.uint8, count=n, offset=off)[::PAGE] = 0

    helpers = [threading.Thread(target=fault, args=r) for r in ranges[1:]]
    for t in helpers:
        t.start()
    fault(*ranges[0])
    for t in helpers:
        t.join()
    if failed:
        raise OSError(failed[0], os.strerror(failed[0]))


def _reserve(fd: int, size: int, threads: int) -> None:
    """``posix_fallocate`` the whole file, in ``threads`` parts at once (each drops the GIL)."""
    step = aligned(-(-size // threads))
    failed: list[OSError] = []

    def part(off: int) -> None:
        try:
            os.posix_fallocate(fd, off, min(step, size - off))
        except OSError as e:
            failed.append(e)

    helpers = [threading.Thread(target=part, args=(off,)) for off in range(step, size, step)]
    for t in helpers:
        t.start()
    part(0)
    for t in helpers:
        t.join()
    if failed:
        raise failed[0]


def _allocate_in(folder: str, size: int, spilled: bool, background: bool = False) -> Segment:
    fd, name = _open_unnamed(folder)
    seg = Segment(fd, size, spilled, name)
    # the background spare is made on one thread, a segment a push waits for on two
    threads = 1 if background else 2
    try:
        _reserve(fd, size, threads)  # fails now (ENOSPC), not later with SIGBUS
        seg.view = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
        _populate(seg.view, threads)
    except BaseException:
        seg.close()
        raise
    return seg


def allocate(
    size: int, shm_dir: str = SHM_DIR, spill_dir: str | None = None, spill: bool = True
) -> Segment | None:
    """A new populated segment of at least ``size`` bytes.

    Spills (with a warning) where shm cannot hold it. ``spill=False`` is the
    background spare: it returns None instead of spilling, and populates the
    pages without holding the GIL.
    """
    size = aligned(max(size, 1))
    if os.path.isdir(shm_dir) and _free_bytes(shm_dir) >= size:
        try:
            return _allocate_in(shm_dir, size, False, background=not spill)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.ENOMEM):
                raise
    if not spill:
        return None
    folder = spill_dir or default_spill_dir()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    shm_free = _free_bytes(shm_dir) if os.path.isdir(shm_dir) else 0
    no_room = NoRoomError(errno.ENOSPC, NO_ROOM.format(
        need=_mib(size), shm_dir=shm_dir, shm_free=_mib(shm_free), spill_dir=folder,
        spill_free=_mib(_free_bytes(folder))))  # fmt: skip
    if _free_bytes(folder) < size:  # before anything is written
        raise no_room
    warnings.warn(
        f"{shm_dir} cannot hold {size / 2**20:.0f} MiB; using a memory-mapped file in {folder} instead",
        SpillWarning,
        stacklevel=3,
    )
    try:
        return _allocate_in(folder, size, True)
    except OSError as e:  # the folder filled up meanwhile
        if e.errno in (errno.ENOSPC, errno.ENOMEM):
            raise no_room from None
        raise


def layout(sizes: list[int]) -> tuple[list[int], int]:
    """Page-aligned offsets for parts of ``sizes`` bytes, and the total size."""
    offsets, size = [], 0
    for n in sizes:
        offsets.append(size)
        size += aligned(n)
    return offsets, max(size, PAGE)


def write(seg: Segment, parts: list[np.ndarray], offsets: list[int]) -> None:
    """Copy ``parts`` into the segment at ``offsets``, two threads at a time (numpy drops the GIL)."""
    assert seg.view is not None
    jobs = []
    for arr, off in zip(parts, offsets):
        if not arr.nbytes:
            continue
        dst = np.frombuffer(seg.view, dtype=np.uint8, count=arr.nbytes, offset=off)
        src = arr.reshape(-1).view(np.uint8)
        half = arr.nbytes // 2
        jobs += [(dst[:half], src[:half]), (dst[half:], src[half:])]
    def copy_odd() -> None:
        for d, s in jobs[1::2]:
            np.copyto(d, s)

    helper = threading.Thread(target=copy_odd)
    helper.start()
    for d, s in jobs[0::2]:
        np.copyto(d, s)
    helper.join()


# -- rank side -----------------------------------------------------------------
def attach(path: str, offset: int, nbytes: int) -> tuple[np.ndarray, mmap.mmap]:
    """Map ``nbytes`` at ``offset`` of a segment copy-on-write; a flat uint8 array over it."""
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), max(nbytes, 1), access=mmap.ACCESS_COPY, offset=offset)
    return np.frombuffer(m, dtype=np.uint8, count=nbytes), m


def mapping_address(m: mmap.mmap) -> int:
    """Start address of a mapping (to find it in /proc/self/smaps)."""
    import ctypes

    return ctypes.addressof(ctypes.c_char.from_buffer(m))


def pristine(address: int) -> bool | None:
    """Whether the private mapping at ``address`` was never written (no anonymous pages).

    None when that cannot be told (no /proc/self/smaps), so the caller resends.
    """
    want = f"{address:x}-"
    try:
        with open("/proc/self/smaps") as f:
            found = False
            for line in f:
                if not found:
                    found = line.startswith(want)
                    continue
                if line.startswith("Anonymous:"):
                    return int(line.split()[1]) == 0
                if "-" in line.split(" ", 1)[0]:  # the next mapping's header
                    return None
    except OSError:
        return None
    return None


def leftover_segments(shm_dir: str = SHM_DIR) -> list[str]:
    """Named segment files of this library still present (only the no-O_TMPFILE fallback names them)."""
    try:
        return sorted(f for f in os.listdir(shm_dir) if f.startswith(PREFIX))
    except FileNotFoundError:
        return []
