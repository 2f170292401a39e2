"""float32 <-> float16 by integer operations, shared by the CPU and the CUDA twin.

numba's CPU target has no float16 scalar, and CUDA kernels here avoid half
intrinsics (the simulator lacks them), so both twins convert bit patterns with
this same code and agree bit for bit. Each twin supplies its own bit casts
(``i2f``: int32 bits -> float32); the rest is plain integer arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: The smallest float16 subnormal, 2**-24: a subnormal is its mantissa times this.
_SUBNORMAL_STEP = np.float32(2.0**-24)


def half_bits(b: int) -> int:
    """float16 bit pattern (0..65535) of the float32 with bit pattern ``b``.

    ``b`` may be signed (int32) or unsigned; rounding is to nearest, ties to
    even, as numpy's ``astype(np.float16)`` does. NaN stays a (quiet) NaN.
    Every case is computed and one is picked, without branches, so that the
    CPU loop vectorises.
    """
    sign = (b >> 16) & 0x8000
    a = b & 0x7FFFFFFF
    # normal float16: rebias the exponent, round off 13 mantissa bits
    m = a - 0x38000000
    normal = (m + 0x0FFF + ((m >> 13) & 1)) >> 13
    # subnormal float16 (or zero): the mantissa with its implicit 1, shifted right
    shift = min(max(126 - (a >> 23), 14), 25)
    mant = (a & 0x7FFFFF) | 0x800000
    q = mant >> shift
    rem = mant & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    out = q + up
    out = normal if a >= 0x38800000 else out
    out = 0x7C00 if a >= 0x477FF000 else out  # rounds past 65504: inf
    out = (0x7E00 | ((a >> 13) & 0x3FF)) if a > 0x7F800000 else out  # NaN stays NaN
    return sign | out


def as_int16(h: int) -> int:
    """A float16 bit pattern (0..65535) as the int16 that stores it."""
    return h - ((h >> 15) << 16)


def make_half_value(i2f: Callable) -> Callable:
    """Build ``half_value(h) -> float32`` for a twin whose bit cast is ``i2f``.

    ``h`` is a float16 bit pattern (0..65535). Subnormals are computed as
    ``mantissa * 2**-24`` (exact), the rest by rebiasing the exponent; branch
    free, like :func:`half_bits`.
    """

    def half_value(h):
        e = (h >> 10) & 0x1F
        m = h & 0x3FF
        bits = ((e + 112) << 23) | (m << 13)
        bits = (0x7F800000 | (m << 13)) if e == 0x1F else bits
        v = i2f(bits)
        v = (np.float32(m) * _SUBNORMAL_STEP) if e == 0 else v
        return -v if (h & 0x8000) != 0 else v

    return half_value
