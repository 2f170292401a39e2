"""Which twin runs a kernel: the backend names, and the CUDA twin loaded on first use.

``auto`` runs CUDA data on the CUDA twin and host data on the CPU twin;
``cpu`` and ``cuda`` force one. The CUDA twin (and numba.cuda with it) is
imported only when a CUDA backend is first needed, so importing
:mod:`lepton_nb.compress` stays cheap; so is the CPU twin (numba).
"""

from __future__ import annotations

import importlib
from types import ModuleType

BACKENDS = ("auto", "cpu", "cuda")
UNKNOWN_BACKEND = "unknown backend {name!r}: use 'auto', 'cpu' or 'cuda'"
NO_CUDA = (
    "backend='cuda' but no CUDA GPU was found (numba.cuda.is_available() is False, "
    "and the simulator NUMBA_ENABLE_CUDASIM=1 is off): use backend='cpu'"
)
CPU_ON_CUDA = "backend='cpu' cannot work on CUDA tensors: use backend='cuda' or 'auto'"


def check_backend(name: str) -> str:
    """Validate a backend name; raise ValueError saying which exist."""
    if name not in BACKENDS:
        raise ValueError(UNKNOWN_BACKEND.format(name=name))
    return name


def twin(backend: str, on_cuda: bool) -> ModuleType:
    """The twin module (:mod:`.cpu` or :mod:`.cuda`) for ``backend`` and data on/off CUDA."""
    if backend == "cuda" or (backend == "auto" and on_cuda):
        return cuda_twin()
    if on_cuda:
        raise ValueError(CPU_ON_CUDA)
    return importlib.import_module(".cpu", __package__)


def cuda_available() -> bool:
    """Whether numba.cuda can run kernels here (a GPU, or the simulator)."""
    from numba import cuda

    return bool(cuda.is_available())


def cuda_twin() -> ModuleType:
    """The CUDA twin; RuntimeError when there is no GPU and no simulator."""
    if not cuda_available():
        raise RuntimeError(NO_CUDA)
    return importlib.import_module(".cuda", __package__)
