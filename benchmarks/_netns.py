"""Two network namespaces joined by a rate-limited veth pair, for benchmarks (root only).

``VethPair`` creates ``lepton-a-<pid>`` and ``lepton-b-<pid>``, a veth pair between
them (10.231.0.1/24 in a, 10.231.0.2/24 in b), and the same ``tc tbf`` qdisc on both
ends. Leaving the ``with`` block, or any failure while setting up, deletes both
namespaces, which removes the veths and their qdiscs. ``probe`` sends bytes over
TCP from a to b, to check that the link works and the rate limit takes effect.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

PREFIX = "lepton-"
ADDRS = ("10.231.0.1", "10.231.0.2")
IFNAMES = ("lepton0", "lepton1")  # inside their own namespaces, so never in conflict


class NetnsUnavailable(RuntimeError):
    """Network namespaces, veths or tc can't be used here; the message says why."""


def _ip(*args: str, timeout: float = 20) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
        raise subprocess.CalledProcessError(proc.returncode, args, output=msg)
    return proc.stdout


def list_namespaces() -> list[str]:
    """Names from ``ip netns list``."""
    out = _ip("ip", "netns", "list")
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def remove_stale() -> list[str]:
    """Delete ``lepton-[ab]-<pid>`` namespaces whose creating process no longer exists."""
    removed = []
    for name in list_namespaces():
        parts = name.split("-")
        if len(parts) != 3 or parts[0] + "-" != PREFIX or not parts[2].isdigit():
            continue
        if os.path.exists(f"/proc/{parts[2]}"):
            continue
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        removed.append(name)
    return removed


class VethPair:
    """Context manager: the namespaces, veths and qdiscs exist inside the ``with`` block."""

    def __init__(self, rate: str = "1gbit", burst: str = "256kb", latency: str = "50ms"):
        pid = os.getpid()
        self.names = (f"{PREFIX}a-{pid}", f"{PREFIX}b-{pid}")
        self.addrs = ADDRS
        self.ifnames = IFNAMES
        self.tbf = f"tbf rate {rate} burst {burst} latency {latency}"
        self._created: list[str] = []

    def prefix(self, i: int) -> list[str]:
        """Command prefix that runs a program in namespace ``i`` (0 or 1)."""
        return ["ip", "netns", "exec", self.names[i]]

    def qdiscs(self, stats: bool = False) -> list[str]:
        """``tc qdisc show`` (with ``-s``: counters too) of both veth ends, one string each."""
        flags = ["-s"] if stats else []
        return [
            " ".join(_ip("tc", *flags, "-n", ns, "qdisc", "show", "dev", dev).split())
            for ns, dev in zip(self.names, self.ifnames)
        ]

    def __enter__(self) -> VethPair:
        if os.geteuid() != 0:
            raise NetnsUnavailable("not running as root")
        try:
            for name in self.names:
                _ip("ip", "netns", "add", name)
                self._created.append(name)
            a, b = self.names
            _ip("ip", "link", "add", self.ifnames[0], "netns", a, "type", "veth",
                "peer", "name", self.ifnames[1], "netns", b)  # fmt: skip
            for ns, dev, addr in zip(self.names, self.ifnames, self.addrs):
                _ip("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                _ip("ip", "-n", ns, "link", "set", "lo", "up")
                _ip("ip", "-n", ns, "link", "set", dev, "up")
                _ip("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", *self.tbf.split())
        except FileNotFoundError as e:
            self.close()
            raise NetnsUnavailable(f"{e.filename} not found") from e
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            self.close()
            detail = getattr(e, "output", None) or str(e)
            raise NetnsUnavailable(f"`{' '.join(e.cmd)}` failed: {detail}") from e
        return self

    def close(self) -> None:
        """Delete the namespaces (which removes the veths); check none is left."""
        while self._created:
            name = self._created.pop()
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        left = [n for n in list_namespaces() if n in self.names]
        if left:
            print(f"WARNING: network namespaces left behind: {left}", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def probe(self, nbytes: int = 25_000_000, port: int = 29400, timeout: float = 30) -> float:
        """Send ``nbytes`` over TCP from namespace a to b; return the rate in bit/s.

        The receiver answers once it has every byte, so the time covers delivery.
        """
        receiver = (
            "import socket,sys\n"
            f"s=socket.create_server(('{self.addrs[1]}',{port}))\n"
            "print('ready',flush=True)\n"
            "c,_=s.accept()\n"
            "n=0\n"
            f"while n<{nbytes}:\n"
            "    d=c.recv(1<<20)\n"
            "    if not d: break\n"
            "    n+=len(d)\n"
            "c.sendall(str(n).encode())\n"
            "c.close()\n"
        )
        sender = (
            "import socket,sys,time\n"
            f"c=socket.create_connection(('{self.addrs[1]}',{port}),timeout={timeout})\n"
            f"buf=bytes({nbytes})\n"
            "t=time.perf_counter()\n"
            "c.sendall(buf)\n"
            "n=int(c.recv(64))\n"
            "print(n,time.perf_counter()-t)\n"
        )
        recv = subprocess.Popen(
            self.prefix(1) + [sys.executable, "-c", receiver],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            if recv.stdout.readline().strip() != "ready":
                raise NetnsUnavailable(f"probe receiver failed: {recv.stderr.read().strip()}")
            out = subprocess.run(
                self.prefix(0) + [sys.executable, "-c", sender],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if out.returncode != 0:
                raise NetnsUnavailable(f"no TCP connection a -> b: {out.stderr.strip()}")
            n, seconds = out.stdout.split()
            if int(n) != nbytes:
                raise NetnsUnavailable(f"probe: {n} of {nbytes} bytes arrived")
            return nbytes * 8 / float(seconds)
        finally:
            if recv.poll() is None:
                recv.kill()
            recv.wait(timeout=10)
            time.sleep(0.2)  # let the tbf bucket refill before the next user
