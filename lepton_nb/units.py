"""How a byte count reads: ``999 B``, ``1.5 kB``, ``12.0 MB/s`` (decimal units).

The one place byte sizes are written for people: the monitor widget, the
status table and ``cluster.link_bytes()`` all call :func:`size`. The Lab
panel's ``labextension/src/units.ts`` writes them the same way. Engines may
import it (it needs nothing beyond the standard library).
"""

from __future__ import annotations

#: Decimal prefixes, as the monitor shows them (``kB`` is a thousand bytes).
PREFIXES = ("", "k", "M", "G", "T")


def size(n: float | None, unit: str = "B") -> str:
    """``n`` bytes (or bytes/s with ``unit="B/s"``) as ``999 B``, ``1.5 kB``, ``80.0 GB``.

    Whole bytes below a thousand, then one decimal with the largest prefix that
    keeps the number under a thousand (up to ``T``); ``n/a`` for None.
    """
    if n is None:
        return "n/a"
    for prefix in PREFIXES:
        if abs(n) < 1000 or prefix == PREFIXES[-1]:
            return f"{n:.0f} {unit}" if prefix == "" else f"{n:.1f} {prefix}{unit}"
        n /= 1000
    raise AssertionError("unreachable: the last prefix always answers")  # pragma: no cover
