"""``cluster.submit``, ``cluster.map``, ``cluster.gather``, ``cluster.store_info``: checked here.

Every argument is checked before anything is sent: a function that is not
callable or not picklable, a memory size that does not parse, negative
retries, an ``after`` that holds something other than this cluster's futures.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from .. import units
from . import rank as on_rank
from .future import Future
from .queue import Task, calls_of
from .ref import RemoteRef

if TYPE_CHECKING:  # pragma: no cover
    from ..cluster.core import Cluster
    from ..cluster.rankspec import RankSpec

#: ``map`` shows a progress bar from this many calls on; so does ``gather``.
BAR_FROM = 100
#: With chunksize=None, ``map`` sends about this many chunks per rank.
CHUNKS_PER_RANK = 16


def submit(
    cluster: Cluster,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    after: Iterable[Future] = (),
    retries: int = 0,
    memory: int | str | None = None,
    ranks: RankSpec = None,
    keep: bool = False,
) -> Future:
    """One task; see :meth:`lepton_nb.Cluster.submit`."""
    queue = cluster.task_queue()
    _check_fn(fn)
    task = Task(
        queue.name(fn), fn, tuple(args), dict(kwargs), [],
        after=_check_after(cluster, after), retries=_check_retries(retries),
        memory=_check_memory(memory), ranks=None if ranks is None else cluster.select(ranks),
        keep=bool(keep),
    )  # fmt: skip
    for value in (*task.args, *task.kwargs.values()):
        _check_own(cluster, value, "an argument")
    task.futures.append(Future(queue, task.name))
    queue.put(task)
    return task.futures[0]


def map_tasks(
    cluster: Cluster,
    fn: Callable[..., Any],
    iterables: Sequence[Iterable[Any]],
    *,
    chunksize: int | None = None,
    retries: int = 0,
    memory: int | str | None = None,
    keep: bool = False,
) -> list[Future]:
    """``fn`` over the iterables; see :meth:`lepton_nb.Cluster.map`."""
    queue = cluster.task_queue()
    _check_fn(fn)
    if not iterables:
        raise TypeError("map() needs at least one iterable of arguments")
    retries, size = _check_retries(retries), _check_memory(memory)
    calls = calls_of(iterables)
    plain = True  # no futures, no refs among the arguments (most maps)
    for call in calls:
        for value in call:
            if isinstance(value, (Future, RemoteRef)):
                _check_own(cluster, value, "an argument")
                plain = False
    if chunksize is None:
        chunksize = max(1, math.ceil(len(calls) / (cluster.world_size * CHUNKS_PER_RANK)))
    elif isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive int, got {chunksize!r}")
    futures: list[Future] = []
    tasks: list[Task] = []
    with tqdm(total=len(calls), desc=f"map {getattr(fn, '__name__', 'fn')}", unit="task",
              disable=len(calls) < BAR_FROM, leave=False) as bar, _collector_paused():  # fmt: skip
        for start in range(0, len(calls), chunksize):
            part = calls[start : start + chunksize]
            mine = [Future(queue, queue.name(fn)) for _ in part]
            tasks.append(Task(mine[0].task, fn, (), {}, mine, retries=retries, memory=size,
                              keep=bool(keep), calls=part, plain=plain))  # fmt: skip
            futures += mine
            bar.update(len(part))
    queue.put_many(tasks)  # all at once: the queue's thread wakes once, not once per chunk
    return futures


def gather(futures: Iterable[Future], timeout: float | None = None, bar: bool | None = None) -> list[Any]:
    """Each future's result, in order; the first task error raised. A bar for long lists
    (``bar``: always, or never)."""
    fs = list(futures)
    for f in fs:
        if not isinstance(f, Future):
            raise TypeError(f"gather() takes lepton_nb futures, not {type(f).__name__}")
    deadline = None if timeout is None else time.monotonic() + timeout
    with tqdm(total=len(fs), desc="gather", unit="task", leave=False,
              disable=not (bar or (bar is None and len(fs) >= BAR_FROM))) as progress:  # fmt: skip
        for f in fs:  # in order: no waiter on every future (as_completed's), which costs
            if not f.done():
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    f.exception(left)
                except cf.TimeoutError:
                    raise TimeoutError(f"gather: task {f.task} not done within {timeout:g} s") from None
                except cf.CancelledError:
                    pass  # raised below, in order
            progress.update(1)
    return [f.result() for f in fs]


def store_info(cluster: Cluster) -> dict[int, list[dict[str, Any]]]:
    """What each rank's store keeps, and where; see :meth:`lepton_nb.Cluster.store_info`."""
    return dict(enumerate(cluster.run(on_rank.info)))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a map makes its futures: they hold no
    cycles, and the collections their allocations trigger took most of a large map's time
    (0.06-0.2 s of 0.1-0.25 s for 10,000 calls)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# -- checks -----------------------------------------------------------------------
def _check_fn(fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"a task's function must be callable, not {type(fn).__name__}: {fn!r:.80}")
    from ipyparallel.serialize import serialize_object

    try:
        serialize_object(fn)
    except Exception as e:  # what pickle raises varies: the message says it
        name = getattr(fn, "__qualname__", repr(fn))
        raise TypeError(f"task function {name} cannot be sent to a rank (not picklable): {e}") from None


def _check_retries(retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int of 0 or more, got {retries!r}")
    return retries


def _check_memory(memory: int | str | None) -> int | None:
    if memory is None:
        return None
    try:
        return units.parse_size(memory)
    except ValueError as e:
        raise ValueError(f"memory: {e}") from None


def _check_after(cluster: Cluster, after: Iterable[Any]) -> list[Future]:
    if isinstance(after, Future):
        after = [after]
    found = list(after)
    for f in found:
        if not isinstance(f, Future):
            raise TypeError(f"after= takes futures of this cluster, not {type(f).__name__}: {f!r:.80}")
        _check_own(cluster, f, "after=")
    return found


def _check_own(cluster: Cluster, value: Any, what: str) -> None:
    if isinstance(value, Future) and value.cluster_id != cluster.cluster_id:
        raise ValueError(f"{what}: future {value.task} belongs to another cluster ({value.cluster_id})")
