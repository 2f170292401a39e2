"""A value kept on the rank that made it (``keep=True``), and how the notebook holds it."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from .. import units
from .rank import Kept

if TYPE_CHECKING:  # pragma: no cover
    from .queue import Task, TaskQueue


class RemoteRef:
    """A task's result that stays on its rank. ``get()`` brings it here.

    Passed to a later task, it is read from that rank's store (a task that
    takes it runs on the rank that holds it). When the last reference to it
    is gone, the value is freed on its rank.

    Made by the task queue for a task submitted with ``keep=True``, not by hand.

    Parameters
    ----------
    kept : Kept
        Where the value is: its key in the rank's store, the rank and engine process that
        hold it, its size and type name.
    task : Task
        The task that made it: it runs again if the rank is lost.
    queue : TaskQueue
        The cluster's task queue, which fetches the value and frees it.

    Attributes
    ----------
    kept : Kept
        Where the value is now.
    task : Task
        The task that made it.
    """

    def __init__(self, kept: Kept, task: Task, queue: TaskQueue) -> None:
        self.kept = kept
        self.task = task  # the task that made it: it runs again if the rank is lost
        self._queue = queue
        self._finalizer = weakref.finalize(self, queue.free, kept)

    @property
    def rank(self) -> int:
        """The rank that holds the value."""
        return self.kept.rank

    @property
    def nbytes(self) -> int:
        """The value's size on its rank."""
        return self.kept.nbytes

    def move(self, kept: Kept) -> None:
        """The value was made again (its rank died): it is now ``kept``.

        The old place is no longer freed when the reference goes; the new one is.

        Parameters
        ----------
        kept : Kept
            Where the value is now.
        """
        self._finalizer.detach()
        self.kept = kept
        self._finalizer = weakref.finalize(self, self._queue.free, kept)

    def get(self, timeout: float | None = None) -> Any:
        """The value, brought to the notebook (recomputed first if its rank died).

        Parameters
        ----------
        timeout : float or None, optional
            The most seconds to wait for it; default None (no limit).

        Returns
        -------
        Any
            The value.

        Raises
        ------
        LostData
            If its rank died and the task that made it cannot run again.
        TaskError
            If the task that makes it again failed.
        TimeoutError
            If the value is not here within ``timeout`` seconds.
        """
        return self._queue.fetch(self, timeout)

    def __repr__(self) -> str:
        return (
            f"<RemoteRef {self.task.name}: {self.kept.type_name}, "
            f"{units.size(self.kept.nbytes)} on rank {self.kept.rank}>"
        )
