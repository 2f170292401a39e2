"""The one copy of a push's arrays for the ranks on this host: shared segments, filled while hashed.

New content costs one copy into a segment and one hash of its bytes. An
array that is likely new on a rank here is copied in while it is hashed
(:mod:`.fill`), one pass over its bytes, before the ranks have said what they
hold. Likely new: its name is not cached on that rank, or its :func:`sketch`
differs from that of the array last pushed under the name (another array, or
sampled bytes that changed). Any other array is only hashed first; if it
turns out to be needed after all (a change the sample missed), it is copied
into a second segment. An array copied in that turns out not to be needed
costs that copy and nothing else: no rank maps it. Runs in the notebook.
"""

from __future__ import annotations

import numpy as np
import xxhash

from . import fill, segment
from .content import content_key
from .segment import Segment
from .spare import Spare

#: A sketch is sampled from this many windows spread over the array ...
SKETCH_WINDOWS = 1024
#: ... of this many bytes each.
SKETCH_BYTES = 16

#: (address, bytes, dtype, shape, digest of a sample of the bytes)
Sketch = tuple[int, int, str, tuple[int, ...], int]


def sketch(arr: np.ndarray) -> Sketch:
    """What an array looks like, cheaply: where it lies, its size, dtype, shape and sampled bytes.

    Parameters
    ----------
    arr
        A C-contiguous array.

    Returns
    -------
    Sketch
        Equal for the same unchanged array; a different array or changed sampled bytes
        (e.g. every element updated in place) give another. A change between the
        samples does not: the content key decides, this only guesses.
    """
    flat = arr.reshape(-1).view(np.uint8)
    n = flat.size
    if n <= SKETCH_WINDOWS * SKETCH_BYTES:
        sample = flat.tobytes()
    else:
        step = (n - SKETCH_BYTES) // (SKETCH_WINDOWS - 1)
        starts = np.arange(SKETCH_WINDOWS, dtype=np.int64) * step
        sample = flat[starts[:, None] + np.arange(SKETCH_BYTES)].tobytes()
    address = int(arr.__array_interface__["data"][0])
    return address, n, arr.dtype.str, tuple(arr.shape), xxhash.xxh3_64_intdigest(sample)


class LocalCopy:
    """The segments one push fills for the ranks on this host, and where each array lies in them.

    Parameters
    ----------
    spare
        The transfer's spare segment: taken when it fits, and given back when a
        segment ends up unused.
    shm_dir
        Where new segments go (see :func:`.segment.allocate`).
    spill_dir
        Where they go when ``shm_dir`` cannot hold them.
    """

    def __init__(self, spare: Spare, shm_dir: str, spill_dir: str | None) -> None:
        self._spare = spare
        self._shm_dir = shm_dir
        self._spill_dir = spill_dir
        self._made: list[Segment] = []
        self._where: dict[int, tuple[Segment, int]] = {}
        self._used: list[Segment] = []

    def _segment(self, size: int) -> Segment:
        seg = self._spare.take(size) or segment.allocate(size, self._shm_dir, self._spill_dir)
        assert seg is not None  # allocate spills rather than give none
        self._made.append(seg)
        return seg

    def keys(self, arrays: dict[int, tuple[np.ndarray, str]], early: set[int]) -> dict[int, str]:
        """The content key of each array; those in ``early`` are copied into a segment meanwhile.

        Parameters
        ----------
        arrays
            id -> (contiguous array, kind), every array of the push.
        early
            The ids to copy in while hashing: those likely new on a rank here.

        Returns
        -------
        dict of int to str
            id -> content key (:func:`.content.content_key`).

        Raises
        ------
        NoRoomError
            Neither shared memory nor the spill directory can hold the early arrays.
        """
        keys: dict[int, str] = {}
        first = [vid for vid in arrays if vid in early]
        if first:
            parts = [arrays[vid][0] for vid in first]
            offsets, size = segment.layout([p.nbytes for p in parts])
            seg = self._segment(size)
            found = fill.fill(seg, parts, offsets, [arrays[vid][1] for vid in first])
            for vid, off, key in zip(first, offsets, found):
                assert key is not None
                keys[vid] = key
                self._where[vid] = (seg, off)
        for vid, (arr, kind) in arrays.items():
            if vid not in keys:
                keys[vid] = content_key(arr, kind)
        return keys

    def place(self, arrays: dict[int, np.ndarray]) -> dict[int, tuple[Segment, int]]:
        """Where each array the ranks here need lies: (segment, offset); copies in those not in yet.

        Parameters
        ----------
        arrays
            id -> contiguous array, for the arrays some rank on this host needs.

        Returns
        -------
        dict of int to (Segment, int)
            id -> the segment holding its bytes and their offset there.

        Raises
        ------
        NoRoomError
            Neither shared memory nor the spill directory can hold the arrays not yet copied.
        """
        late = [vid for vid in arrays if vid not in self._where]
        if late:
            parts = [arrays[vid] for vid in late]
            offsets, size = segment.layout([p.nbytes for p in parts])
            seg = self._segment(size)
            fill.fill(seg, parts, offsets, [None] * len(parts))
            self._where.update({vid: (seg, off) for vid, off in zip(late, offsets)})
        where = {vid: self._where[vid] for vid in arrays}
        self._used = list({id(seg): seg for seg, _ in where.values()}.values())
        return where

    def finish(self, succeeded: bool) -> list[Segment]:
        """The segments the ranks were sent, to be let go once they have mapped them.

        A segment that no rank was sent goes back to the spare after a push that
        succeeded; after one that failed, every segment is let go.

        Parameters
        ----------
        succeeded
            Whether the push got as far as sending (otherwise nothing is kept).

        Returns
        -------
        list of Segment
            Segments to release (their names dropped, then closed in the background).
        """
        unused = [seg for seg in self._made if all(seg is not u for u in self._used)]
        if not succeeded:
            return self._made
        for seg in unused:
            self._spare.keep(seg)
        return self._used
