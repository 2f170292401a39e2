"""Device-side helpers shared by the CUDA kernels: bit casts, float16, int8 rounding.

Each is a ``cuda.jit(device=True, inline="always")`` function: inlined in the
IR, so PTX builds without a GPU (a non-inlined device function asks the driver
for the device's compute capability). Under the simulator
(``NUMBA_ENABLE_CUDASIM=1``) they run as Python, with bit casts by numpy views.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import config, cuda

from .. import halfbits
from ..cpu.kernels import TINY_SCALE

#: Threads per block (a power of two: the int8 max is a tree reduction).
THREADS = 256
#: Elements per thread per round in the compaction kernels.
ITEMS = 4
#: Bins per radix-select histogram (11 bits).
BINS = 2048
MAG = 0x7FFFFFFF
#: Whether kernels run under the simulator (``NUMBA_ENABLE_CUDASIM=1``). numba.config
#: sets its options through ``globals()``, so no type checker sees them.
SIMULATOR = bool(config.ENABLE_CUDASIM)  # type: ignore[attr-defined]

if SIMULATOR:  # kernels run as Python on numpy scalars: bit casts by numpy views

    def f2i(v):
        return int(np.float32(v).view(np.int32))

    def i2f(b):
        return np.int32(b).view(np.float32)

else:  # libdevice bit casts (device functions inlined in the IR, so PTX builds without a GPU)

    @cuda.jit(device=True, inline="always")
    def f2i(v):
        return cuda.libdevice.float_as_int(v)

    @cuda.jit(device=True, inline="always")
    def i2f(b):
        return cuda.libdevice.int_as_float(b)


def device(fn: Callable) -> Callable:
    """``fn`` as an inlined CUDA device function."""
    return cuda.jit(device=True, inline="always")(fn)


half_bits = device(halfbits.half_bits)
as_int16 = device(halfbits.as_int16)
half_value = device(halfbits.make_half_value(i2f))


@device
def int8_scale(m):
    """The int8 scale of a chunk whose largest |x| has bits ``m`` (as the CPU twin's)."""
    s = i2f(m) / np.float32(127.0)
    tiny = np.float32(TINY_SCALE)
    return tiny if m > 0 and s < tiny else s


@device
def quantize(v, s):
    """round(v / s) clamped to [-127, 127]; 0 when the scale is 0."""
    if not s > 0:
        return 0
    return min(max(round(v / s), -127), 127)
