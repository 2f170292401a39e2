"""Importing torch on an engine while it registers, so that joining the group need not wait.

``import torch`` takes 1.3 to 2 s of an engine's start, and until now it began only when
the process group formed, after registration. Each cluster's ``ipengine_config.py``
(written by :class:`lepton_nb.cluster.controller.Controller`) calls :func:`start` as the
engine loads its configuration, so the import runs while the engine connects to the
controller, reports and is placed. Importing torch does not initialize CUDA, so the GPU
is still chosen afterwards: :func:`lepton_nb.engine.devices.pin` first waits for the
import to end, then sets the GPU and shares the cores (torch's threads, the BLAS
library numpy loaded, and the variables that later imports read).

An import that fails is left for the real one (``join_group``'s) to report.
"""

from __future__ import annotations

import threading

#: Seconds :func:`wait` gives an import in progress (then the caller goes on; the real
#: import, later, waits for it as Python's imports do).
WAIT_S = 300.0

_thread: threading.Thread | None = None


def start() -> None:
    """Begin importing torch in a daemon thread (once per process)."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_import, name="lepton-import-torch", daemon=True)
        _thread.start()


def _import() -> None:
    try:
        import torch  # noqa: F401
    except BaseException:  # noqa: BLE001, S110 - the real import, later, says what is wrong
        pass


def wait(timeout: float = WAIT_S) -> None:
    """Return once an import begun by :func:`start` has ended (at once if none was)."""
    if _thread is not None:
        _thread.join(timeout)
