"""Shared-memory segments: written once by the notebook, mapped copy-on-write by each rank.

A segment is a file in ``/dev/shm`` (or, where that is too small or absent,
in a spill directory, with a warning). Ranks map it ``MAP_PRIVATE``: reads
cost no copy, and a write on one rank stays private to that rank. Once every
rank has mapped it the file is unlinked, so nothing is left in ``/dev/shm``
even if an engine later crashes; the memory lives as long as the mappings.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import threading
import uuid
import warnings
from dataclasses import dataclass

import numpy as np

SHM_DIR = "/dev/shm"
PREFIX = "lepton-"
PAGE = mmap.ALLOCATIONGRANULARITY
_WRITE_CHUNK = 64 << 20


class SpillWarning(UserWarning):
    """Shared memory was too small or absent; a memory-mapped file in the spill directory is used."""


def default_spill_dir() -> str:
    """``$TMPDIR/lepton-spill``: where segments go when ``/dev/shm`` cannot hold them."""
    return os.path.join(tempfile.gettempdir(), "lepton-spill")


def _free_bytes(folder: str) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


@dataclass
class Segment:
    """One file holding one or more arrays at page-aligned offsets."""

    path: str
    size: int
    spilled: bool = False

    def unlink(self) -> None:
        """Remove the file (mappings already made stay valid)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def aligned(n: int) -> int:
    """``n`` rounded up to the mapping granularity."""
    return -(-n // PAGE) * PAGE


def create(
    parts: list[np.ndarray], shm_dir: str = SHM_DIR, spill_dir: str | None = None
) -> tuple[Segment, list[int]]:
    """Write ``parts`` into a new segment at page-aligned offsets; return it and the offsets."""
    offsets, size = [], 0
    for p in parts:
        offsets.append(size)
        size += aligned(p.nbytes)
    size = max(size, PAGE)
    name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    where, spilled = shm_dir, False
    if not os.path.isdir(shm_dir) or _free_bytes(shm_dir) < size:
        where, spilled = _spill(spill_dir, size, shm_dir)
    seg = Segment(os.path.join(where, name), size, spilled)
    try:
        _write(seg, parts, offsets)
    except OSError:
        seg.unlink()
        if spilled:
            raise
        where, _ = _spill(spill_dir, size, shm_dir)
        seg = Segment(os.path.join(where, name), size, True)
        try:
            _write(seg, parts, offsets)
        except BaseException:
            seg.unlink()
            raise
    except BaseException:
        seg.unlink()
        raise
    return seg, offsets


def _spill(spill_dir: str | None, size: int, shm_dir: str) -> tuple[str, bool]:
    folder = spill_dir or default_spill_dir()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    warnings.warn(
        f"{shm_dir} cannot hold {size / 2**20:.0f} MiB; using a memory-mapped file in {folder} instead",
        SpillWarning,
        stacklevel=4,
    )
    return folder, True


def _write(seg: Segment, parts: list[np.ndarray], offsets: list[int]) -> None:
    """Write with two threads (pwrite releases the GIL); the file is 0600."""
    fd = os.open(seg.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, seg.size)
        jobs = []
        for arr, off in zip(parts, offsets):
            view = memoryview(arr.reshape(-1)).cast("B") if arr.nbytes else memoryview(b"")
            for start in range(0, len(view), _WRITE_CHUNK):
                jobs.append((off + start, view[start : start + _WRITE_CHUNK]))
        errors: list[BaseException] = []

        def work(mine: list[tuple[int, memoryview]]) -> None:
            try:
                for pos, chunk in mine:
                    done = 0
                    while done < len(chunk):
                        done += os.pwrite(fd, chunk[done:], pos + done)
            except BaseException as e:  # re-raised in the caller
                errors.append(e)

        helper = threading.Thread(target=work, args=(jobs[1::2],))
        helper.start()
        work(jobs[0::2])
        helper.join()
        if errors:
            raise errors[0]
    finally:
        os.close(fd)


# -- rank side -----------------------------------------------------------------
def attach(path: str, offset: int, nbytes: int) -> tuple[np.ndarray, mmap.mmap]:
    """Map ``nbytes`` at ``offset`` of a segment copy-on-write; a flat uint8 array over it."""
    length = max(nbytes, 1)
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), length, access=mmap.ACCESS_COPY, offset=offset)
    arr = np.frombuffer(m, dtype=np.uint8, count=nbytes)
    return arr, m


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
                if "-" in line.split(" ", 1)[0]:  # next mapping header
                    return None
    except OSError:
        return None
    return None


def leftover_segments(shm_dir: str = SHM_DIR) -> list[str]:
    """Segment files of this library still present (for tests and cleanup)."""
    try:
        return sorted(f for f in os.listdir(shm_dir) if f.startswith(PREFIX))
    except FileNotFoundError:
        return []
