"""The notebook's side of tasks: a thread that hands them to ipyparallel's load-balanced view.

ipyparallel's ``LoadBalancedView`` places every task on an engine, orders it
after its ``after`` tasks (the view's own dependencies) and retries it on
another engine when its engine dies (its ``retries`` flag). This module
only decides what the view is given:

- a task whose arguments hold futures waits here until they are done, and
  gets their values (or, for ``keep=True`` ones, the rank-side :class:`Kept`
  placeholder, and runs on the rank that holds it);
- ``memory=`` restricts the view's targets to ranks whose latest metrics
  sample shows that much room (:func:`lepton_nb.metrics.snapshot.room`);
- a kept value whose rank died is made again by the task that made it, while
  its retries allow, else :class:`LostData`.

The queue has its own ipyparallel client, used by its thread alone (a client
is not thread safe; the notebook's own client stays the main thread's).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .. import units
from ..metrics import snapshot
from . import rank as on_rank
from .future import Future, TaskError
from .kept import KeptValues, swap_moved
from .rank import Kept
from .ref import RemoteRef
from .task import Task

if TYPE_CHECKING:  # pragma: no cover
    import ipyparallel as ipp

    from ..cluster.core import Cluster

log = logging.getLogger(__name__)

#: Seconds between two looks at the tasks that wait (for futures, for room).
POLL_S = 0.05
#: Seconds ``cancel()`` waits for ipyparallel to say whether a handed-over task was aborted.
ABORT_WAIT_S = 5.0
#: Finished tasks between two purges of their records in the hub.
PURGE_EVERY = 500

NO_ROOM = (
    "task {task} asked for memory={memory}, and no rank had that much free within "
    "{timeout:g} s (c.Cluster.task_timeout); the most free was {best}"
)
STOPPED = "the cluster stopped before task {task} finished"


class TaskQueue(KeptValues):
    """Tasks of one cluster: accepted from any thread, handed to ipyparallel by one."""

    def __init__(self, cluster: Cluster, client: ipp.Client) -> None:
        self.cluster = cluster
        self.cluster_id = cluster.cluster_id
        self._client = client
        self._view = client.load_balanced_view()
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._waiting: list[Task] = []
        self._of: dict[int, Task] = {}  # id(future) -> its task, until it is done
        self._seq = itertools.count(1)
        self._purge: list[str] = []  # finished tasks' msg_ids, to drop from the hub's records
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lepton-tasks", daemon=True)
        self._thread.start()

    # -- from any thread ---------------------------------------------------------
    def name(self, fn: Callable[..., Any]) -> str:
        """A fresh task name: the function's name and a number, e.g. ``blur-12``."""
        return f"{getattr(fn, '__name__', type(fn).__name__)}-{next(self._seq)}"

    def put(self, task: Task) -> None:
        """Accept ``task``: it is handed over when its inputs are done and a rank has room."""
        self.put_many([task])

    def put_many(self, tasks: list[Task]) -> None:
        """Accept several tasks at once (a ``map``'s chunks): one wake-up of the thread."""
        if self._closed.is_set():
            raise RuntimeError(STOPPED.format(task=tasks[0].name if tasks else "?"))
        for task in tasks:
            task.recompute_left = task.retries
            for f in task.futures:
                self._of[id(f)] = task
        self._inbox.put(("tasks", tasks))

    def cancel(self, future: Future) -> bool:
        """Cancel ``future``'s task if it has not started; True if it will not run."""
        decided = threading.Event()
        self._inbox.put(("cancel", future, decided))
        decided.wait(ABORT_WAIT_S)
        # a task already handed over: ipyparallel answers TaskAborted if it had not begun
        deadline = time.monotonic() + ABORT_WAIT_S
        while not future.done() and time.monotonic() < deadline and self._of.get(id(future)):
            task = self._of.get(id(future))
            if task is None or task.ar is None or len(task.futures) > 1:
                break
            time.sleep(POLL_S)
        return future.cancelled()

    def free(self, kept: Kept) -> None:
        """Forget a kept value on its rank (its last reference is gone)."""
        if not self._closed.is_set():
            self._inbox.put(("free", kept))

    def fetch(self, ref: RemoteRef, timeout: float | None) -> Any:
        """A kept value, brought to the notebook; made again first if its rank died."""
        import concurrent.futures as cf

        answer: cf.Future[Any] = cf.Future()
        self._inbox.put(("fetch", ref, answer))
        return answer.result(timeout)

    def close(self) -> None:
        """Fail what is not done, stop the thread, close the client."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._inbox.put(("close",))
        self._thread.join(10)
        try:
            self._client.close()
        except Exception:  # the controller may be gone already
            pass

    # -- the thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                try:
                    command = self._inbox.get(timeout=POLL_S if self._waiting else 0.5)
                except queue.Empty:
                    command = None
                while command is not None:
                    self._handle(command)
                    try:
                        command = self._inbox.get_nowait()
                    except queue.Empty:
                        command = None
                self._waiting = [t for t in self._waiting if not self._try(t)]
        except Exception:  # the thread must say why it stopped
            log.exception("the task queue stopped")
        finally:
            self._fail_all()

    def _handle(self, command: tuple[Any, ...]) -> None:
        kind = command[0]
        if kind == "tasks":
            self._waiting += [task for task in command[1] if not self._try(task)]
        elif kind == "done":
            self._done(command[1])
        elif kind == "cancel":
            self._cancel(command[1])
            command[2].set()
        elif kind == "free":
            kept = command[1]
            self._on_rank(kept.rank, on_rank.free, [kept.key])
        elif kind == "fetch":
            self._fetch(command[1], command[2])

    # -- handing over ----------------------------------------------------------------
    def _try(self, task: Task) -> bool:
        """Hand ``task`` over if it can go; True once it is handled (handed over or failed)."""
        if all(f.done() for f in task.futures):
            return True  # every future cancelled
        inputs = task.inputs()
        bad = next((d for d in [*inputs, *task.after] if d.done() and _failed(d)), None)
        if bad is not None:
            self._fail(task, _dependency_error(task, bad))
            return True
        if any(not d.done() for d in inputs):
            return False
        # ordering alone (after=) is ipyparallel's: once each is handed over, the view waits
        if any(d.done() is False and self._ar_of(d) is None for d in task.after):
            return False
        args, kwargs, calls, kept = self._values(task)
        lost = [k for k in kept if self._lost(k[0])]
        if lost:
            return self._make_again(task, [k[1] for k in lost])
        ranks = self._candidates(task, {k.rank for k, _ in kept})
        if ranks is None:
            return False  # waiting for room
        if not ranks:
            return True  # failed (no room within the timeout)
        if task.target is None:
            task.target = self._target(ranks, [k for k, _ in kept])
        if task.target is not None:  # some kept values are elsewhere: they move rank to rank
            moved = self._moved(task, [k for k, _ in kept if k.rank != task.target])
            if moved is None:  # the holders have not answered yet, or it failed
                return all(f.done() for f in task.futures)
            ranks = [task.target]
            args, kwargs, calls = swap_moved(args, kwargs, calls, moved)
        self._hand_over(task, args, kwargs, calls, ranks)
        return True

    def _candidates(self, task: Task, holders: set[int]) -> list[int] | None:
        """The ranks ``task`` may go to; None to wait for room; [] when it failed for want of it."""
        table = self.cluster.ranks
        ranks = list(task.ranks) if task.ranks is not None else [r.rank for r in table]
        live = set(self._client.ids)
        ranks = [r for r in ranks if table[r].engine_id in live] or ranks
        if holders:  # it reads kept values: it runs where they are, with no transfer
            ranks = [r for r in ranks if r in holders] or ranks
        if task.memory is None:
            return ranks
        collector = self.cluster.collector
        samples = collector.latest() if collector is not None else {}
        hosts = table.hosts()
        room = {
            r: snapshot.room(samples[r], len(hosts.get(table[r].host, [r])))
            for r in ranks if r in samples
        }  # fmt: skip
        fits = [r for r in ranks if room.get(r, 0) >= task.memory]
        if fits:
            return fits
        timeout = self.cluster.task_timeout
        if time.monotonic() - task.queued < timeout:
            return None
        best = max(room.items(), key=lambda kv: kv[1], default=None)
        said = f"{units.size(best[1])} on rank {best[0]}" if best else "unknown (no samples)"
        self._fail(task, TaskError(task.name, None, "NoRoom", NO_ROOM.format(
            task=task.name, memory=units.size(task.memory), timeout=timeout, best=said)))  # fmt: skip
        return []

    def _hand_over(
        self,
        task: Task,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        calls: list[tuple[Any, ...]] | None,
        ranks: list[int],
    ) -> None:
        engines = list(self.cluster.ranks.engine_ids(ranks).values())
        after = [ar for ar in (self._ar_of(d) for d in task.after) if ar is not None]
        limit = units.parse_size(self.cluster.store_limit)
        with self._view.temp_flags(retries=task.retries, targets=engines, after=after):
            if calls is None:
                key = _key(task.name) if task.keep else None
                task.ar = self._view.apply_async(on_rank.run, task.fn, args, kwargs, task.name, key, limit)
            else:
                keys = [_key(f.task) for f in task.futures] if task.keep else None
                task.ar = self._view.apply_async(on_rank.run_chunk, task.fn, calls, task.name, keys, limit)
        task.ar.add_done_callback(lambda _: self._inbox.put(("done", task)))

    def _ar_of(self, future: Future) -> Any:
        task = self._of.get(id(future))
        return task.ar if task is not None else None

    # -- results -----------------------------------------------------------------
    def _done(self, task: Task) -> None:
        ar = task.ar
        rank = self._rank_of(ar)
        try:
            value = ar.get(0)
        except Exception as e:  # the task's error, or ipyparallel's for it
            self._failed_remotely(task, ar, e, rank)
        else:
            if task.calls is None:
                self._resolve(task, task.futures[0], value, rank)
            else:
                for f, call, (status, out) in zip(task.futures, task.calls, value):
                    if status == "ok" and not task.keep:  # the common case, kept short
                        f.rank = rank
                        with contextlib.suppress(cf.InvalidStateError):  # cancelled meanwhile
                            f.set_result(out)
                    elif status == "ok":
                        self._resolve(task, f, out, rank, call)
                    elif not f.done():
                        f.rank = rank
                        ename, evalue, tb = out
                        f.set_exception(TaskError(f.task, rank, ename, evalue, tb,
                                                  host=self._host(rank)))  # fmt: skip
        finally:
            self._forget(task)
            # what ipyparallel may still hold (the AsyncResult, its callback) must not keep the
            # futures, and so a kept value's last reference, alive
            task.ar, task.futures = None, []

    def _resolve(
        self, task: Task, future: Future, value: Any, rank: int | None,
        call: tuple[Any, ...] | None = None,
    ) -> None:  # fmt: skip
        future.rank = rank
        if isinstance(value, Kept):
            if task.ref is not None:  # made again: the old ref now points here
                task.ref.move(value)
                value = task.ref
            else:
                maker = task
                if call is not None:  # one call of a chunk: it alone is made again if lost
                    maker = Task(future.task, task.fn, call, {}, [], retries=task.retries, keep=True)
                    maker.recompute_left = task.recompute_left
                value = RemoteRef(value, maker, self)
        if not future.done():
            future.set_result(value)

    def _failed_remotely(self, task: Task, ar: Any, e: BaseException, rank: int | None) -> None:
        ename = getattr(e, "ename", type(e).__name__)
        if ename == "TaskAborted":
            for f in task.futures:
                f._cancel_now()
            return
        if ename in ("ImpossibleDependency", "DependencyTimeout"):
            bad = next((d for d in task.after if _failed(d)), None)
            if bad is not None:
                self._fail(task, _dependency_error(task, bad))
                return
        tried = self._tried(ar)
        where = rank if rank is not None else (tried[-1] if tried else None)
        self._fail(task, TaskError(
            task.name, where, ename, str(getattr(e, "evalue", e)),
            getattr(e, "traceback", "") or "", tried, self._host(where),
        ))  # fmt: skip

    def _fail(self, task: Task, error: TaskError) -> None:
        for f in task.futures:
            if not f.done():
                f.rank = error.rank
                f.set_exception(error if len(task.futures) == 1 else _for_call(error, f))

    def _forget(self, task: Task) -> None:
        self._withdraw(task)
        for f in task.futures:
            self._of.pop(id(f), None)
        if task.ar is None:
            return
        try:
            self._purge += task.ar.msg_ids
            self._client.purge_local_results(task.ar)
            if len(self._purge) >= PURGE_EVERY:
                jobs, self._purge = self._purge, []
                self._client.purge_hub_results(jobs)
        except Exception as e:  # bookkeeping only
            log.debug("purging task results: %s", e)

    def _rank_of(self, ar: Any) -> int | None:
        engine = getattr(ar, "engine_id", None)
        if isinstance(engine, list):
            engine = engine[0] if engine else None
        return self.cluster.ranks.rank_of_engine(engine) if engine is not None else None

    def _tried(self, ar: Any) -> list[int]:
        """Every rank that ran a try of ``ar`` (each try published one key)."""
        try:
            data = ar.data or {}
        except Exception:  # no metadata: nothing known
            return []
        tried = []
        for key in data:
            if isinstance(key, str) and key.startswith("lepton-try:"):
                rank = int(key.split(":")[1])
                if rank not in tried:
                    tried.append(rank)
        return tried

    def _host(self, rank: int | None) -> str | None:
        return self.cluster.ranks.hosts_to_name().get(rank) if rank is not None else None

    def _on_rank(self, rank: int, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on one rank, through this queue's client; its AsyncResult (or None)."""
        try:
            engine = self.cluster.ranks[rank].engine_id
            if engine not in self._client.ids:
                return None
            return self._client[engine].apply_async(fn, *args)
        except Exception as e:  # a rank gone: nothing to free there
            log.debug("on rank %s: %s", rank, e)
            return None

    # -- cancelling, stopping ------------------------------------------------------
    def _cancel(self, future: Future) -> None:
        task = self._of.get(id(future))
        if task is None or future.done():
            return
        if task.ar is None:
            future._cancel_now()  # never handed over: it will not run
            if all(f.done() for f in task.futures):
                self._forget(task)
            return
        if len(task.futures) == 1:
            try:
                self._client.abort(task.ar, block=False)  # ipyparallel answers TaskAborted if it had not begun
            except Exception as e:  # already running or done
                log.debug("abort %s: %s", task.name, e)

    def _fail_all(self) -> None:
        for task in {id(t): t for t in self._of.values()}.values():
            for f in task.futures:
                if not f.done():
                    f.set_exception(TaskError(f.task, None, "ClusterStopped", STOPPED.format(task=f.task)))
        self._of.clear()
        self._waiting.clear()


def _failed(future: Future) -> bool:
    return future.cancelled() or future.exception() is not None


def _dependency_error(task: Task, bad: Future) -> TaskError:
    why = "was cancelled" if bad.cancelled() else f"failed: {bad.exception()}"
    return TaskError(task.name, None, "DependencyError", f"it depends on task {bad.task}, which {why}")


def _for_call(error: TaskError, future: Future) -> TaskError:
    return TaskError(future.task, error.rank, error.ename, error.evalue, error.traceback,
                     error.tried, error.host)  # fmt: skip


def _key(name: str) -> str:
    return f"{name}-{os.urandom(6).hex()}"


def calls_of(iterables: Iterable[Iterable[Any]]) -> list[tuple[Any, ...]]:
    """``map``'s calls: one tuple of arguments per position, as the builtin ``map`` pairs them."""
    return list(zip(*iterables))
