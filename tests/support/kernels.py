"""A real ``lepton`` kernel driven from a test, for what only a kernel's death can show."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

from jupyter_client.manager import KernelManager

#: Seconds one cell may run.
CELL_TIMEOUT_S = 180.0


class Kernel:
    """A started ``lepton`` kernel and its blocking client."""

    def __init__(self, km: KernelManager) -> None:
        self.km = km
        self.client = km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.pid)  # type: ignore[union-attr]

    def run(self, code: str, timeout: float = CELL_TIMEOUT_S) -> str:
        """Run ``code``; return its stdout; AssertionError with the traceback if it raised."""
        out: list[str] = []
        reply = self.client.execute_interactive(
            code, timeout=timeout,
            output_hook=lambda msg: out.append(msg["content"].get("text", ""))
            if msg["msg_type"] == "stream" else None,
        )  # fmt: skip
        content = reply["content"]
        if content["status"] != "ok":
            raise AssertionError("\n".join(content.get("traceback", [])) or content)
        return "".join(out)

    def json(self, code: str) -> object:
        """Run ``code``, whose last line prints one JSON value; return it."""
        return json.loads(self.run(code).strip().splitlines()[-1])

    def kill(self) -> None:
        """SIGKILL the kernel process, as the OOM killer would."""
        os.kill(self.pid, signal.SIGKILL)


@contextmanager
def lepton_kernel() -> Iterator[Kernel]:
    km = KernelManager(kernel_name="lepton")
    km.start_kernel()
    try:
        yield Kernel(km)
    finally:
        try:
            km.shutdown_kernel(now=True)
        except Exception:  # killed already
            pass
        km.cleanup_resources()


#: What a kernel prints about its cluster: its engines' pids and every local descendant.
PROCESSES = """
import json, psutil, lepton_nb
c = lepton_nb.get_cluster()
print(json.dumps({"engines": [p["pid"] for p in c.placement],
                  "here": [p.pid for p in psutil.Process().children(recursive=True)]}))
"""


def wait_gone(pids: list[int], timeout: float) -> tuple[list[int], float]:
    """Wait until none of ``pids`` exists (bounded); (those still there, seconds waited)."""
    start = time.monotonic()
    while True:
        left = [p for p in pids if _alive(p)]
        waited = time.monotonic() - start
        if not left or waited > timeout:
            return left, waited
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
