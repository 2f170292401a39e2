"""Engines on hosts reached by SSH, through ipyparallel's ``SSHEngineSetLauncher``.

``hosts={"node1": 2, "node2": 2}`` starts two engines on each host with the
notebook's own interpreter path (or ``python=...``): every host needs the same
environment at that path. Each host's engines are an engine set of their own,
so a host that refuses is named, and a rank restarts on its own host. The
connection info travels in the engines' environment, over ssh's standard
input: no file is copied and no secret appears on a command line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from traitlets.config import Config

from ...engine.identity import route_to
from ...errors import ClusterError
from .base import Launch, Launcher

if TYPE_CHECKING:  # pragma: no cover
    from ..controller import Controller

NO_HOSTS = "launcher='ssh' needs hosts, e.g. hosts={'node1': 2, 'node2': 2} (--hosts node1:2,node2:2)"
BAD_HOSTS = "hosts must map host names to a number of ranks of at least 1, e.g. {{'node1': 2}}; got {value!r}"
N_MISMATCH = "n={n} does not match the {total} ranks that hosts asks for ({hosts})"
NO_SSH = "launcher='ssh' needs the ssh client on PATH, and it is not there"
SSH_FAILED = "could not start engines on {host} over ssh: {error}"
#: Seconds the diagnosis of a failed host may take.
DIAGNOSE_TIMEOUT_S = 15


class SSHLauncher(Launcher):
    """Engines started over SSH on each host of ``hosts``."""

    name: ClassVar[str] = "ssh"
    engines: ClassVar[str] = "ssh"
    remote: ClassVar[bool] = True

    def validate(self) -> None:
        hosts = self.options.hosts
        if not hosts:
            raise ClusterError(NO_HOSTS)
        if any(not isinstance(h, str) or not h or isinstance(c, bool) or not isinstance(c, int)
               or c < 1 for h, c in hosts.items()):  # fmt: skip
            raise ClusterError(BAD_HOSTS.format(value=hosts))
        o = self.options
        for option in ("nodes", "ranks_per_node", "gpus_per_node", "partition", "account"):
            if getattr(o, option):
                raise ClusterError(f"{option} belongs to launcher='slurm'")
        total = sum(hosts.values())
        if o.n is not None and o.n != total:
            raise ClusterError(N_MISMATCH.format(n=o.n, total=total, hosts=hosts))
        if not shutil.which("ssh"):
            raise ClusterError(NO_SSH)

    def world_size(self) -> int:
        return sum(self.options.hosts.values())

    def node_count(self) -> int:
        return len(self.options.hosts)

    def python(self) -> str:
        return str(self.options.python or sys.executable)

    def controller_ip(self) -> str:
        """The address this host uses to reach the first host (as ssh would resolve it)."""
        if self.options.controller_ip:
            return str(self.options.controller_ip)
        first = next(iter(self.options.hosts))
        return route_to(self._resolve(first))[0]

    def _resolve(self, host: str) -> str:
        """The address ssh connects to for ``host`` (``ssh -G`` reads the config, connects nowhere)."""
        name = host.split("@")[-1].split(":")[0]
        try:
            out = subprocess.run(["ssh", *self.options.ssh_args, "-G", name],
                                 capture_output=True, text=True, timeout=10).stdout  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return name
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            if key == "hostname" and value:
                return value.strip()
        return name

    def configure(self, config: Config) -> None:
        args = list(self.options.ssh_args)
        config.SSHEngineSetLauncher.ssh_args = args
        config.SSHEngineSetLauncher.scp_args = args
        config.SSHEngineSetLauncher.remote_python = self.python()
        config.SSHEngineLauncher.to_send = []  # the connection info is in the environment

    def launch(self, controller: Controller, n: int, env: dict[str, str], seq: int) -> list[Launch]:
        return [
            launch
            for host, count in self.options.hosts.items()
            for launch in self.launch_on(controller, host, count, env, seq)
        ]

    def launch_on(
        self, controller: Controller, host: str, count: int, env: dict[str, str], seq: int
    ) -> list[Launch]:
        set_id = f"s{seq}-{uuid.uuid4().hex[:6]}"
        try:
            controller.start_engines(count, set_id, env, engines={host: count})
        except Exception as e:  # ssh refused, timed out, or the remote python is missing
            controller.discard_engines(set_id)
            raise ClusterError(SSH_FAILED.format(host=host, error=self._diagnose(host, e))) from None
        return [Launch(set_id, count, seq, target=host)]

    def _diagnose(self, host: str, error: Any) -> str:
        """ssh's own words on why ``host`` cannot be used (it connects once, runs the interpreter)."""
        name, _, port = host.partition(":")
        cmd = ["ssh", *self.options.ssh_args, "-o", "ConnectTimeout=5", "-o", "BatchMode=yes",
               "-o", "ControlMaster=no", "-o", "ControlPath=none"]  # one plain connection  # fmt: skip
        if port:
            cmd += ["-p", port]
        cmd += [name, self.python(), "-c", "'import ipyparallel'"]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=DIAGNOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"ssh did not answer within {DIAGNOSE_TIMEOUT_S} s ({error})"
        if p.returncode == 0:
            return str(error)
        said = (p.stderr or p.stdout).strip().splitlines()
        return (said[-1] if said else f"ssh exited with status {p.returncode}") + (
            f" (python: {self.python()})" if p.returncode != 255 else ""
        )
