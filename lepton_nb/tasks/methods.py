"""The task methods of :class:`lepton_nb.Cluster`: submit, map, gather, store_info."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from . import api
from .future import Future

if TYPE_CHECKING:  # pragma: no cover
    from ..cluster.core import Cluster
    from ..cluster.rankspec import RankSpec


class TaskMethods:
    """Tasks on the cluster's ranks, through ipyparallel's load-balanced view."""

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        after: Iterable[Future] = (),
        retries: int = 0,
        memory: int | str | None = None,
        ranks: RankSpec = None,
        keep: bool = False,
        **kwargs: Any,
    ) -> Future:
        """Run ``fn(*args, **kwargs)`` on one rank, wherever there is room; a :class:`Future`.

        Parameters
        ----------
        fn:
            A picklable callable (TypeError naming it otherwise).
        after:
            Futures of this cluster that must finish first. A future among
            ``args``/``kwargs`` waits too, and its result is passed in its place.
        retries:
            Times the task runs again, on another rank, when it fails or its rank dies.
        memory:
            Bytes (an int, ``"2GB"``, ``"512MiB"``) that the rank must have free (GPU memory on a
            GPU rank, host memory on a CPU rank), as its latest metrics sample shows.
            Without such a rank for ``c.Cluster.task_timeout`` seconds, the task fails.
        ranks:
            Only these ranks (``"0,2"``, ``[1]``); default all.
        keep:
            Keep the result on its rank: the future's result is a :class:`RemoteRef`.

        Raises
        ------
        TypeError, ValueError
            For a bad argument, before anything is sent.
        """
        return api.submit(_cluster(self), fn, args, kwargs, after=after, retries=retries, memory=memory,
                          ranks=ranks, keep=keep)  # fmt: skip

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        chunksize: int | None = None,
        retries: int = 0,
        memory: int | str | None = None,
        keep: bool = False,
    ) -> list[Future]:
        """``fn`` over the iterables as tasks; one :class:`Future` per call, in input order.

        The calls pair the iterables' items as the builtin ``map`` does (up to the shortest).
        Calls go in chunks of ``chunksize``, one task per chunk; one call's error fails its
        own future only. A progress bar shows from 100 calls on.

        Parameters
        ----------
        fn : callable
            A picklable callable (TypeError naming it otherwise), called once per position.
        *iterables : iterable
            One iterable per argument of ``fn``; at least one. A future among their items
            waits, and its result is passed in its place, as with :meth:`submit`.
        chunksize : int or None, optional
            Calls per task, a positive int; default None: about 16 chunks per rank.
        retries : int, optional
            Times a chunk runs again, on another rank, when it fails or its rank dies;
            default 0.
        memory : int, str or None, optional
            Bytes (an int, ``"2GB"``, ``"512MiB"``) that the rank must have free, as for
            :meth:`submit`; default None (no requirement).
        keep : bool, optional
            Keep each result on its rank: each future's result is a :class:`RemoteRef`;
            default False.

        Returns
        -------
        list of Future
            One future per call, in input order.

        Raises
        ------
        TypeError
            If ``fn`` is not callable or not picklable, or no iterable is given.
        ValueError
            For negative or non-int ``retries``, a ``memory`` that does not parse, a
            ``chunksize`` that is not a positive int, or a future of another cluster among
            the arguments; all before anything is sent.
        """
        return api.map_tasks(_cluster(self), fn, iterables, chunksize=chunksize, retries=retries,
                             memory=memory, keep=keep)  # fmt: skip

    def gather(self, futures: Iterable[Future], timeout: float | None = None) -> list[Any]:
        """The futures' results, in order; raises the first :class:`TaskError` (task and rank).

        Waits for each future in turn; a progress bar shows from 100 futures on.

        Parameters
        ----------
        futures : iterable of Future
            Futures of :meth:`submit` or :meth:`map`.
        timeout : float or None, optional
            The most seconds to wait for them all; default None (no limit).

        Returns
        -------
        list
            Each future's result, in the order of ``futures``.

        Raises
        ------
        TypeError
            If ``futures`` holds something other than lepton_nb futures.
        TimeoutError
            If a task is not done within ``timeout`` seconds.
        TaskError
            The first failed task's error, by position (:class:`LostData` among them).
        concurrent.futures.CancelledError
            If the first future, by position, that did not succeed was cancelled.
        """
        return api.gather(futures, timeout)

    def store_info(self) -> dict[int, list[dict[str, Any]]]:
        """By rank: each kept value's ``key``, ``tier`` (gpu, host or disk) and ``nbytes``."""
        return api.store_info(_cluster(self))


def _cluster(methods: TaskMethods) -> Cluster:
    return cast("Cluster", methods)  # these methods are the Cluster's
