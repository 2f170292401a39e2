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

        Calls go in chunks of ``chunksize`` (None: about 16 chunks per rank); one
        call's error fails its own future only. Other parameters as :meth:`submit`.
        """
        return api.map_tasks(_cluster(self), fn, iterables, chunksize=chunksize, retries=retries,
                             memory=memory, keep=keep)  # fmt: skip

    def gather(self, futures: Iterable[Future], timeout: float | None = None) -> list[Any]:
        """The futures' results, in order; raises the first :class:`TaskError` (task and rank)."""
        return api.gather(futures, timeout)

    def store_info(self) -> dict[int, list[dict[str, Any]]]:
        """By rank: each kept value's ``key``, ``tier`` (gpu, host or disk) and ``nbytes``."""
        return api.store_info(_cluster(self))


def _cluster(methods: TaskMethods) -> Cluster:
    return cast("Cluster", methods)  # these methods are the Cluster's
