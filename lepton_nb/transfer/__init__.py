"""Data movement between the notebook and the ranks.

- :mod:`.content`: what a value is and its content key (xxh3-128);
- :mod:`.segment`: shared-memory segments, mapped copy-on-write on the ranks;
- :mod:`.codec`: compressed bytes between hosts;
- :mod:`.push`: push, scatter, pull and the per-rank cache (notebook side);
- :mod:`.receive`: binding on the rank.
"""

from .future import PushFuture
from .push import DEFAULT_THRESHOLD, Transfer
from .segment import SpillWarning

__all__ = ["DEFAULT_THRESHOLD", "PushFuture", "SpillWarning", "Transfer"]
