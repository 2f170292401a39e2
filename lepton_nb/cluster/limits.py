"""Site limits: the most ranks and nodes one cluster may have, and when an idle cluster stops.

A site sets them in a site-wide IPython configuration (``/etc/ipython/`` or
``sys.prefix/etc/ipython/ipython_config.py``)::

    c.Cluster.max_ranks = 16
    c.Cluster.max_nodes = 4
    c.Cluster.idle_timeout = 3600

A user cannot raise them from a notebook: the site's value holds, whatever a
user's own configuration or ``Cluster(...)`` says; they can only ask for less.
"""

from __future__ import annotations

from dataclasses import dataclass

from IPython.core.error import UsageError

from ..errors import ClusterError
from .config import site_only_config

LIMITS = ("max_ranks", "max_nodes", "idle_timeout")

OVER_LIMIT = (
    "{what} {asked} is over this site's limit: c.Cluster.{limit} = {value}. Ask for at most "
    "{value}, or ask your JupyterHub admin to raise the limit."
)


class LimitError(ClusterError, UsageError):
    """A request over one of the site's limits; the message names the limit and its value.

    A :class:`UsageError` (the request is wrong, not the cluster), and a
    :class:`ClusterError` for code that catches those from ``start()``.
    """


@dataclass(frozen=True)
class Limits:
    """The limits in force: the lower of the site's and the user's own, None for no limit."""

    max_ranks: int | None = None
    max_nodes: int | None = None
    idle_timeout: float | None = None

    def check_ranks(self, n: int) -> None:
        if self.max_ranks is not None and n > self.max_ranks:
            raise LimitError(OVER_LIMIT.format(what="ranks", asked=n, limit="max_ranks",
                                               value=self.max_ranks))  # fmt: skip

    def check_nodes(self, n: int) -> None:
        if self.max_nodes is not None and n > self.max_nodes:
            raise LimitError(OVER_LIMIT.format(what="nodes", asked=n, limit="max_nodes",
                                               value=self.max_nodes))  # fmt: skip


def in_force(asked: dict[str, float | int | None]) -> Limits:
    """The limits that hold: the site's, lowered (never raised) by what the user ``asked``."""
    site = site_only_config().get("Cluster", {})

    def lower(name: str) -> float | None:
        candidates = [v for v in (site.get(name), asked.get(name)) if v is not None]
        return min(candidates) if candidates else None

    ranks, nodes = lower("max_ranks"), lower("max_nodes")
    return Limits(
        max_ranks=None if ranks is None else int(ranks),
        max_nodes=None if nodes is None else int(nodes),
        idle_timeout=lower("idle_timeout"),
    )
