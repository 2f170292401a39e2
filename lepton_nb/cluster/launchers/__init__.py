"""Launchers by name: ``local``, ``slurm``, ``ssh``, and any registered under the entry-point group.

Chosen the way ipyparallel chooses its own: ``Cluster(launcher="slurm")`` or
``c.Cluster.launcher = "slurm"``. A package adds one (MPI, PBS, LSF, ...) with an
entry point in the group ``lepton_nb.launchers`` naming a :class:`Launcher` subclass.
"""

from __future__ import annotations

from importlib import metadata

from .base import Launch, Launcher, unknown
from .local import LocalLauncher
from .slurm import SlurmLauncher
from .ssh import SSHLauncher

ENTRY_POINTS = "lepton_nb.launchers"

BUILTIN: dict[str, type[Launcher]] = {
    "local": LocalLauncher,
    "slurm": SlurmLauncher,
    "ssh": SSHLauncher,
}


def available() -> dict[str, type[Launcher]]:
    """Every launcher by name: the built-in ones and those other packages register."""
    found = dict(BUILTIN)
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        if ep.name not in found:
            found[ep.name] = ep.load()
    return found


def find(name: str) -> type[Launcher]:
    """The launcher class called ``name`` (case-insensitive); ClusterError naming the choices."""
    launchers = available()
    cls = launchers.get(str(name).strip().lower())
    if cls is None:
        raise unknown(name, sorted(launchers))
    return cls


__all__ = ["Launch", "Launcher", "LocalLauncher", "SSHLauncher", "SlurmLauncher", "available", "find"]
