"""User-facing exceptions of lepton_nb.

A failure on the ranks never loses the work of the ranks that succeeded:
:class:`RemoteError` carries it in :attr:`RemoteError.results`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class RankState(str, enum.Enum):
    """What a rank is doing: ``idle``, ``busy``, ``dead`` or ``restarting``."""

    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"
    RESTARTING = "restarting"

    def __str__(self) -> str:
        return self.value


class ClusterError(RuntimeError):
    """The cluster could not be started, scaled or restarted; the message says what failed."""


class DeadRankError(ClusterError):
    """A rank's engine is gone, so nothing was sent; :attr:`ranks` says which ranks are dead.

    Raised before a request leaves the notebook (no rank ran anything). Restart the ranks with
    ``cluster.restart(rank)`` or ``%lepton_cluster restart RANK``.

    Parameters
    ----------
    message : str
        The error message.
    ranks : list of int
        The ranks whose engine is gone (copied into :attr:`ranks`).

    Attributes
    ----------
    ranks : list of int
        The dead ranks.
    """

    def __init__(self, message: str, ranks: list[int]) -> None:
        super().__init__(message)
        self.ranks = list(ranks)


@dataclass
class RankFailure:
    """One rank's failure: the exception type, its message and the remote traceback.

    Parameters
    ----------
    rank : int
        The rank that failed.
    ename : str
        The name of the exception type it raised (``"ValueError"``).
    evalue : str
        The exception's message.
    traceback : str, optional
        The remote traceback, as text; default ``""`` (none).
    host : str or None, optional
        The host the rank runs on, where known; default None.
    """

    rank: int
    ename: str
    evalue: str
    traceback: str = ""
    host: str | None = None  # the host the rank runs on, where known

    @property
    def where(self) -> str:
        """``rank 1`` or ``rank 1 on node2``."""
        return f"rank {self.rank}" + (f" on {self.host}" if self.host else "")

    def summary(self) -> str:
        """One line: ``rank 1 on node2: ValueError: bad value``."""
        return f"{self.where}: {self.ename}: {self.evalue}"


class RemoteError(Exception):
    """One or more ranks raised.

    The message lists one line per failed rank (:meth:`RankFailure.summary`), then ``note``.

    Parameters
    ----------
    failures : list of RankFailure
        One :class:`RankFailure` per failed rank, in any order (they are sorted by rank).
    results : dict of int to Any, optional
        What every rank that succeeded produced, by rank; default None (no results).
    note : str, optional
        A line added at the end of the message; default ``""`` (none).

    Attributes
    ----------
    failures : list of RankFailure
        One :class:`RankFailure` per failed rank, ordered by rank.
    results : dict of int to Any
        What every rank that succeeded produced, as a dict by rank
        (``cluster.run``: the function's return value; a distributed cell:
        a dict of the gathered names).
    note : str
        The line added at the end of the message (``""``: none).
    """

    def __init__(
        self,
        failures: list[RankFailure],
        results: dict[int, Any] | None = None,
        note: str = "",
    ) -> None:
        self.failures = sorted(failures, key=lambda f: f.rank)
        self.results: dict[int, Any] = dict(results or {})
        self.note = note
        super().__init__(self._message())

    @property
    def ranks(self) -> list[int]:
        """The ranks that failed."""
        return [f.rank for f in self.failures]

    def _headline(self) -> str:
        n = len(self.failures)
        return f"{n} rank{'s' if n != 1 else ''} failed"

    def _message(self) -> str:
        lines = [self._headline() + ":"]
        lines += ["  " + f.summary() for f in self.failures]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def _render_traceback_(self) -> list[str]:
        """How IPython shows the error: each failed rank's traceback once."""
        out = [self._headline() + ":"]
        for f in self.failures:
            out.append(f"[{f.where}] {f.ename}: {f.evalue}")
            if f.traceback:
                out.extend(f.traceback.rstrip("\n").splitlines())
        if self.note:
            out.append(self.note)
        if self.results:
            out.append(
                f"Results of the ranks that finished: err.results (ranks {sorted(self.results)})"
            )
        return out


class DistributedTimeout(RemoteError):
    """A distributed cell ran past its ``--timeout``; the message names the ranks that did not finish.

    Parameters
    ----------
    failures : list of RankFailure
        One :class:`RankFailure` per failed rank, as for :class:`RemoteError`.
    results : dict of int to Any, optional
        What every rank that finished produced, by rank; default None (no results).
    note : str, optional
        A line added at the end of the message; default ``""`` (none).
    timeout : float or None, optional
        The timeout, in seconds, that the cell ran past; default None.
    timed_out : list of int or None, optional
        The ranks that did not finish in time; default None (none).

    Attributes
    ----------
    timeout : float or None
        The timeout, in seconds.
    timed_out : list of int
        The ranks that did not finish, sorted.
    """

    def __init__(
        self,
        failures: list[RankFailure],
        results: dict[int, Any] | None = None,
        note: str = "",
        timeout: float | None = None,
        timed_out: list[int] | None = None,
    ) -> None:
        self.timeout = timeout
        self.timed_out = sorted(timed_out or [])
        super().__init__(failures, results, note)

    def _headline(self) -> str:
        ranks = ", ".join(str(r) for r in self.timed_out)
        return f"timed out after {self.timeout:g} s; rank(s) that did not finish: {ranks}"
