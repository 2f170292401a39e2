"""``%lepton_push`` and ``%lepton_pull``: move notebook variables to and from the ranks."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from .args import parse_pull_line, parse_push_line, pull_args, push_args
from .cluster import running_cluster
from .shell import user_namespace


@magics_class
class TransferMagics(Magics):
    """Magics that push and pull data between the notebook and the ranks."""

    @line_magic
    def lepton_push(self, line: str) -> Any:
        cluster = running_cluster()
        namespace = user_namespace(self.shell)
        cmd = parse_push_line(line, namespace, cluster.world_size)
        values = {name: namespace[name] for name in cmd.names}
        future = cluster.push(values, ranks=cmd.ranks, block=cmd.block)
        return future  # None when blocking; a PushFuture with --noblock

    @line_magic
    def lepton_pull(self, line: str) -> None:
        cluster = running_cluster()
        name, rank = parse_pull_line(line, cluster.world_size)
        user_namespace(self.shell)[name] = cluster.pull(name, rank)

    lepton_push.__doc__ = push_args.__doc__
    lepton_pull.__doc__ = pull_args.__doc__
