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


#: What a size may be written with: decimal (kB, MB, GB, TB) and binary (KiB, MiB, GiB, TiB).
_FACTORS = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}  # fmt: skip


_ACCEPTED = "give bytes as an int, or e.g. '2GB', '512MiB', '1.5 GB'"


def parse_size(value: int | str) -> int:
    """Bytes from ``value``: an int, or a string such as ``"2GB"``, ``"512MiB"``, ``"1.5 GB"``.

    Raises ValueError saying what is accepted, for anything else (negative sizes too).
    """
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative: {value}; {_ACCEPTED}")
        return value
    text = str(value).strip()
    number = text.rstrip("kKmMgGtTiIbB ")
    unit = text[len(number):].strip().upper()
    try:
        amount = float(number)
    except ValueError:
        amount = -1.0
    if unit not in _FACTORS or amount < 0 or amount != amount:
        raise ValueError(f"not a size: {value!r}; {_ACCEPTED}")
    return int(amount * _FACTORS[unit])
