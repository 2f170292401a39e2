"""The queue's kept values: where a task that reads them goes, how they move there, and what
happens when their rank died (made again by their task, else :class:`LostData`).

:class:`KeptValues` is a part of :class:`lepton_nb.tasks.queue.TaskQueue`, run by its thread.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from . import move
from . import rank as on_rank
from .future import Future, LostData, TaskError
from .rank import Kept
from .ref import RemoteRef
from .task import Task

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    import ipyparallel as ipp

    from ..cluster.core import Cluster
    from .queue import TaskQueue

MOVE_FAILED = "kept value {key} on rank {rank} could not move to rank {target}: {why}"


class KeptValues:
    """Kept values for the queue's thread (the queue provides what is declared here)."""

    cluster: Cluster
    _client: ipp.Client
    _waiting: list[Task]
    _of: dict[int, Task]

    def put(self, task: Task) -> None:  # the queue's
        raise NotImplementedError

    def _fail(self, task: Task, error: TaskError) -> None:  # the queue's
        raise NotImplementedError

    def _on_rank(self, rank: int, fn: Callable[..., Any], *args: Any) -> Any:  # the queue's
        raise NotImplementedError

    def _queue(self) -> TaskQueue:
        return cast("TaskQueue", self)

    def _values(
        self, task: Task
    ) -> tuple[tuple[Any, ...], dict[str, Any], list[tuple[Any, ...]] | None, list[tuple[Kept, RemoteRef]]]:
        kept: list[tuple[Kept, RemoteRef]] = []

        def value(a: Any) -> Any:
            if isinstance(a, Future):
                a = a.result()
            if isinstance(a, RemoteRef):
                kept.append((a.kept, a))
                return a.kept
            return a

        args = tuple(value(a) for a in task.args)
        kwargs = {k: value(v) for k, v in task.kwargs.items()}
        calls = task.calls if task.plain or not task.calls else [tuple(value(a) for a in call) for call in task.calls]
        return args, kwargs, calls, kept

    def _target(self, ranks: list[int], kept: list[Kept]) -> int | None:
        """The one rank a task goes to when it reads kept values not all on one of ``ranks``:
        the rank among them holding the most of those bytes. None when no value must move."""
        holders = {k.rank for k in kept}
        if not kept or (len(holders) == 1 and holders <= set(ranks)):
            return None
        held = {r: sum(k.nbytes for k in kept if k.rank == r) for r in ranks}
        return max(ranks, key=lambda r: held[r])

    def _moved(self, task: Task, away: list[Kept]) -> dict[str, Any] | None:
        """Kept key -> a :class:`move.Moving` for each of ``away``, once every holder has
        offered its value to ``task.target``; None until then, or when one failed (then the
        task failed, or it waits for the value to be made again)."""
        table = self.cluster.ranks
        assert task.target is not None
        if task.offers is None:
            task.offered = time.monotonic()
            target = table[task.target]
            task.offers = {
                k.key: self._on_rank(
                    k.rank, move.offer, k.key, task.target, table[k.rank].host == target.host,
                    table[k.rank].addr, table.spans_hosts(), self.cluster.task_timeout,
                )
                for k in away
            }  # fmt: skip
        timeout = self.cluster.task_timeout
        slow = [k for k in away if task.offers[k.key] is not None and not task.offers[k.key].ready()]
        if slow and time.monotonic() - task.offered < timeout:
            return None
        if slow:  # a holder busy all along (e.g. with a task that never ends)
            k = slow[0]
            self._withdraw(task)
            self._fail(task, TaskError(task.name, k.rank, "CannotMove", MOVE_FAILED.format(
                key=k.key, rank=k.rank, target=task.target,
                why=f"its rank did not offer it within {timeout:g} s (c.Cluster.task_timeout)")))  # fmt: skip
            return None
        moved: dict[str, Any] = {}
        for k in away:
            ar = task.offers[k.key]
            ticket, error = None, None
            try:
                ticket = ar.get(0) if ar is not None else None
            except Exception as e:  # the value could not be offered (e.g. it does not pickle)
                error = e
            if ticket is None or error is not None:
                self._withdraw(task)
                if self._lost(k):  # its rank died: the value is made again, then moved
                    task.offers, task.target = None, None
                    return None
                why = _why(error) if error is not None else "its rank did not answer"
                self._fail(task, TaskError(task.name, k.rank, "CannotMove", MOVE_FAILED.format(
                    key=k.key, rank=k.rank, target=task.target, why=why)))  # fmt: skip
                return None
            task.tickets.append((k.rank, ticket.token))
            moved[k.key] = move.Moving(k, ticket)
        return moved

    def _withdraw(self, task: Task) -> None:
        """Tell each holder that ``task`` no longer needs what it offered."""
        tickets, task.tickets = task.tickets, []
        for holder, token in tickets:
            self._on_rank(holder, move.withdraw, [token])

    def _lost(self, kept: Kept) -> bool:
        """Whether the rank holding ``kept`` died (or is another process now)."""
        table = self.cluster.ranks
        if kept.rank >= len(table) or table[kept.rank].pid != kept.pid:
            return True
        if table.process_gone(kept.rank):
            return True
        return table[kept.rank].engine_id not in self._client.ids

    def _make_again(self, task: Task, refs: list[RemoteRef]) -> bool:
        """``task`` reads kept values whose rank died: run their tasks again, or LostData."""
        for ref in refs:
            maker = ref.task
            if maker.recompute_left <= 0:
                self._fail(task, _lost_data(ref))
                return True
        for ref in refs:
            maker = ref.task
            if maker.remade is not None and not maker.remade.done():
                task.waits.append(maker.remade)  # being made again already
                continue
            maker.recompute_left -= 1
            again = Task(
                maker.name, maker.fn, maker.args, maker.kwargs, [Future(self._queue(), maker.name)],
                retries=maker.retries, memory=maker.memory, ranks=None, keep=True, ref=ref,
            )  # fmt: skip
            again.recompute_left = maker.recompute_left
            maker.remade = again.futures[0]
            self._waiting.append(again)
            for f in again.futures:
                self._of[id(f)] = again
            task.waits.append(again.futures[0])  # then it reads the value through the ref
        return False

    def _fetch(self, ref: RemoteRef, answer: Any) -> None:
        if self._lost(ref.kept):
            maker = ref.task
            if maker.recompute_left <= 0:
                answer.set_exception(_lost_data(ref))
                return
            # make it again, then fetch: a task that reads it and returns it
            getter = Future(self._queue(), f"{maker.name}.get")
            self.put(Task(getter.task, _identity, (ref,), {}, [getter]))
            getter.add_done_callback(lambda f: _relay(f, answer))
            return
        future = self._on_rank(ref.rank, on_rank.value, ref.kept.key)
        if future is None:
            answer.set_exception(LostData(ref.task.name, ref.rank, "LostData", "its rank is gone"))
        else:
            future.add_done_callback(lambda f: _relay(f, answer))


def _lost_data(ref: RemoteRef) -> LostData:
    """A kept value whose rank died, and whose task may not run again."""
    maker = ref.task
    return LostData(
        maker.name, ref.rank, "LostData",
        f"the value that task {maker.name} kept on rank {ref.rank} is lost (the rank died), "
        f"and the task cannot run again (retries={maker.retries})",
    )  # fmt: skip


def _identity(x: Any) -> Any:
    return x


def _relay(source: Any, answer: Any) -> None:
    if answer.done():
        return
    exc = source.exception()
    if exc is not None:
        answer.set_exception(exc)
    else:
        answer.set_result(source.result())


def swap_moved(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    calls: list[tuple[Any, ...]] | None,
    moved: dict[str, Any],
) -> tuple[tuple[Any, ...], dict[str, Any], list[tuple[Any, ...]] | None]:
    """The arguments with each kept value in ``moved`` replaced by its :class:`move.Moving`."""

    def swap(a: Any) -> Any:
        return moved.get(a.key, a) if isinstance(a, Kept) else a

    return (
        tuple(swap(a) for a in args),
        {name: swap(v) for name, v in kwargs.items()},
        [tuple(swap(a) for a in call) for call in calls] if calls else None,
    )


def _why(error: BaseException) -> str:
    return f"{getattr(error, 'ename', type(error).__name__)}: {getattr(error, 'evalue', error)}"
