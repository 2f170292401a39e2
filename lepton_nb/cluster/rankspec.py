"""Parse rank selections: ``all``, ``0,2``, ``1-3`` or a mix like ``0,2-3``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Union

RankSpec = Union[None, str, int, Iterable[int]]

_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_ranks(spec: RankSpec, world_size: int) -> list[int]:
    """Return the sorted ranks named by ``spec``; raise ValueError saying what is wrong.

    ``None`` and ``"all"`` mean every rank.
    """
    if spec is None:
        return list(range(world_size))
    if isinstance(spec, bool):
        raise ValueError(f"ranks must be all, a rank or a list of ranks; got {spec!r}")
    if isinstance(spec, int):
        ranks = [spec]
    elif isinstance(spec, str):
        text = spec.strip()
        if text.lower() == "all":
            return list(range(world_size))
        if not text:
            raise ValueError("empty rank list: use all, 0,2 or 1-3")
        ranks = []
        for part in text.split(","):
            m = _PART.match(part)
            if not m:
                raise ValueError(f"cannot read rank spec {spec!r}: use all, 0,2 or 1-3")
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) is not None else lo
            if hi < lo:
                raise ValueError(f"rank range {part.strip()!r} runs backwards: write {hi}-{lo}")
            if hi >= world_size:
                ranks.append(hi)  # reported below
            else:
                ranks.extend(range(lo, hi + 1))
    else:
        ranks = [int(r) for r in spec]
        if not ranks:
            raise ValueError("empty rank list: use all, 0,2 or 1-3")
    bad = sorted({r for r in ranks if r < 0 or r >= world_size})
    if bad:
        raise ValueError(f"rank {bad[0]} does not exist: the cluster has ranks 0-{world_size - 1}")
    return sorted(set(ranks))
