"""A task's future, its errors, and waiting on many: ``wait`` and ``as_completed``."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .queue import TaskQueue


class TaskError(Exception):
    """A task raised (or its rank died on every try); names the task, its rank(s) and host.

    The message is ``task NAME failed on rank R on HOST: ENAME: EVALUE`` (or ``on every rank
    tried: ...`` when more than one rank was tried). IPython shows the remote traceback.

    Parameters
    ----------
    task : str
        The task's name.
    rank : int or None
        The last rank tried; None when the task never reached a rank.
    ename : str
        The name of the exception type (``"ValueError"``).
    evalue : str
        The exception's message.
    traceback : str, optional
        The remote traceback, as text; default ``""`` (none).
    tried : list of int or None, optional
        Every rank tried, in order; default None: ``[rank]`` (or none if ``rank`` is None).
    host : str or None, optional
        The host of ``rank``, where known; default None.

    Attributes
    ----------
    task : str
        The task's name.
    rank : int or None
        The last rank tried.
    host : str or None
        The host of that rank, where known.
    ename : str
        The exception type's name.
    evalue : str
        The exception's message.
    traceback : str
        The remote traceback.
    tried : list of int
        Every rank tried.
    """

    def __init__(
        self,
        task: str,
        rank: int | None,
        ename: str,
        evalue: str,
        traceback: str = "",
        tried: list[int] | None = None,
        host: str | None = None,
    ) -> None:
        self.task, self.rank, self.host = task, rank, host
        self.ename, self.evalue, self.traceback = ename, evalue, traceback
        self.tried = list(tried or ([] if rank is None else [rank]))
        where = f" on rank {rank}" + (f" on {host}" if host else "") if rank is not None else ""
        if len(self.tried) > 1:
            where = " on every rank tried: " + ", ".join(f"rank {r}" for r in self.tried)
        super().__init__(f"task {task} failed{where}: {ename}: {evalue}")

    def _render_traceback_(self) -> list[str]:  # IPython shows the remote traceback
        return [str(self), *([self.traceback] if self.traceback else [])]


class LostData(TaskError):
    """A kept value's rank died, and the task that made it cannot run again to recompute it.

    A :class:`TaskError`, with the same parameters and attributes.

    Parameters
    ----------
    task : str
        The name of the task that made the value.
    rank : int or None
        The rank that held the value.
    ename : str
        The name of the error (``"LostData"``).
    evalue : str
        The message: what was lost and why it cannot be made again.
    traceback : str, optional
        A traceback, as text; default ``""`` (none).
    tried : list of int or None, optional
        Every rank tried; default None: ``[rank]`` (or none if ``rank`` is None).
    host : str or None, optional
        The host of ``rank``, where known; default None.
    """


class Future(cf.Future):  # type: ignore[type-arg]
    """A task's future: a :class:`concurrent.futures.Future`, plus the ``rank`` that ran it.

    Made by :meth:`lepton_nb.Cluster.submit` and :meth:`lepton_nb.Cluster.map`, not by hand.

    Parameters
    ----------
    queue : TaskQueue
        The cluster's task queue, which runs the task (and cancels it).
    task : str
        The task's name.

    Attributes
    ----------
    task : str
        The task's name.
    rank : int or None
        The rank that ran the task; None until one did.
    """

    def __init__(self, queue: TaskQueue, task: str) -> None:
        super().__init__()
        self.task = task
        self.rank: int | None = None
        self._queue = queue

    @property
    def cluster_id(self) -> str:
        """The cluster this task belongs to."""
        return self._queue.cluster_id

    def cancel(self) -> bool:
        """Cancel the task if it has not started; True if it will not run."""
        if self.done():
            return self.cancelled()
        return self._queue.cancel(self)

    def _cancel_now(self) -> bool:
        """For the queue: mark cancelled (waking those who wait)."""
        return super().cancel()

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled() else "done" if self.done() else "pending"
        where = f" on rank {self.rank}" if self.rank is not None else ""
        return f"<lepton_nb.Future {self.task} {state}{where}>"


def wait(
    fs: Iterable[cf.Future],  # type: ignore[type-arg]
    timeout: float | None = None,
    return_when: str = "ALL_COMPLETED",
) -> cf._base.DoneAndNotDoneFutures:  # type: ignore[type-arg]
    """Wait for futures, as :func:`concurrent.futures.wait`: ``(done, not_done)`` sets.

    Parameters
    ----------
    fs : iterable of Future
        The futures to wait for.
    timeout : float or None, optional
        The most seconds to wait; default None (no limit).
    return_when : str, optional
        When to return: ``"ALL_COMPLETED"`` (the default), ``"FIRST_COMPLETED"`` or
        ``"FIRST_EXCEPTION"``.

    Returns
    -------
    DoneAndNotDoneFutures
        A named pair of sets: ``done`` and ``not_done``.

    Raises
    ------
    ValueError
        If ``return_when`` is none of the three.
    """
    if return_when not in ("ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"):
        raise ValueError(
            f"return_when must be ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION, "
            f"not {return_when!r}"
        )
    return cf.wait(list(fs), timeout=timeout, return_when=return_when)


def as_completed(
    fs: Iterable[cf.Future], timeout: float | None = None  # type: ignore[type-arg]
) -> Iterator[cf.Future]:  # type: ignore[type-arg]
    """Each future as it finishes, as :func:`concurrent.futures.as_completed`.

    Parameters
    ----------
    fs : iterable of Future
        The futures to wait for.
    timeout : float or None, optional
        The most seconds to wait for them all, from this call; default None (no limit).

    Returns
    -------
    iterator of Future
        The futures, each as soon as it is done (cancelled or finished).

    Raises
    ------
    TimeoutError
        While iterating, if some future is not done within ``timeout`` seconds.
    """
    return cf.as_completed(list(fs), timeout=timeout)


def results_in_order(fs: list[Future], timeout: float | None) -> list[Any]:
    """Each future's result in order; the first error (by position) is raised."""
    return [f.result(timeout) for f in fs]
