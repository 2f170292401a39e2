"""What of /dev/shm a test can own: the files this process maps or holds open, and named ones.

Segments are unnamed files, so their memory is freed with the last process that maps
them: what can leak is what a live process still holds, or a name left behind. Other
tests running beside this one (pytest-xdist workers) hold their own, which these
functions do not count.
"""

from __future__ import annotations

import os

SHM = "/dev/shm"


def held_bytes() -> int:
    """Bytes of /dev/shm files this process maps or has open, each file counted once."""
    sizes: dict[int, int] = {}
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[5].startswith(SHM + "/"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                inode = int(fields[4])
                sizes[inode] = sizes.get(inode, 0) + end - start
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith(SHM + "/"):
                continue
            st = os.stat(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        sizes[st.st_ino] = max(sizes.get(st.st_ino, 0), st.st_size)
    return sum(sizes.values())


def named_bytes() -> int:
    """Bytes of the named files in /dev/shm (lepton_nb never names a segment)."""
    total = 0
    for entry in os.scandir(SHM):
        try:
            total += entry.stat().st_size
        except OSError:  # removed meanwhile
            pass
    return total


def usage() -> int:
    """What this process holds of /dev/shm, and every named file there."""
    return held_bytes() + named_bytes()
