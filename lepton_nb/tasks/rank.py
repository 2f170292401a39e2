"""What runs on a rank for a task: kept values in and out, and no collectives.

The notebook sends :func:`run` (one task) or :func:`run_chunk` (several
calls of one function, for ``map``) through ipyparallel's load-balanced
view. A :class:`Kept` argument is the value of an earlier ``keep=True``
task, read from this rank's store; with ``keep=True`` the result stays in
the store and a :class:`Kept` comes back in its place. Each try says
which rank it runs on (ipyparallel's data publication), so an error after
retries names every rank tried.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import store as _store

#: torch.distributed's functions that need the other ranks: a task must not call them.
COLLECTIVES = (
    "all_gather", "all_gather_into_tensor", "all_gather_object", "all_reduce", "all_to_all",
    "all_to_all_single", "barrier", "batch_isend_irecv", "broadcast", "broadcast_object_list",
    "gather", "gather_object", "irecv", "isend", "monitored_barrier", "recv", "reduce",
    "reduce_scatter", "reduce_scatter_tensor", "scatter", "scatter_object_list", "send",
)  # fmt: skip

IN_A_TASK = (
    "task {task} called torch.distributed.{name}, a collective: a task runs on one rank while "
    "the others run other tasks, so it would wait forever. Run collective work in a "
    "%%lepton_distributed cell or with cluster.run()."
)


class CollectiveInTask(RuntimeError):
    """A task called a collective (which would hang: the other ranks are not in it)."""


@dataclass(frozen=True)
class Kept:
    """A value kept in a rank's store: its key, the rank and engine process that hold it."""

    key: str
    rank: int
    pid: int
    nbytes: int
    type_name: str


def run(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    task: str,
    keep: str | None,
    store_limit: int,
) -> Any:
    """On a rank: ``fn(*args, **kwargs)``, with kept arguments read; kept under ``keep`` if given."""
    _say_where(task)
    args = tuple(_read_kept(a) for a in args)
    kwargs = {k: _read_kept(v) for k, v in kwargs.items()}
    value = _call(fn, args, kwargs, task)
    return _keep(value, keep, store_limit) if keep else value


def run_chunk(
    fn: Callable[..., Any],
    calls: list[tuple[Any, ...]],
    task: str,
    keeps: list[str] | None,
    store_limit: int,
) -> list[tuple[str, Any]]:
    """On a rank: ``fn(*call)`` for each call; per call ("ok", value) or ("error", details).

    One call's exception does not fail the others: ``details`` is (ename,
    evalue, traceback) for the notebook to raise on that call's future.
    """
    _say_where(task)
    out: list[tuple[str, Any]] = []
    restore = _guard_collectives(task)  # once for the chunk: its calls run one after another
    try:
        for i, call in enumerate(calls):
            try:
                value = fn(*(_read_kept(a) for a in call))
                out.append(("ok", _keep(value, keeps[i], store_limit) if keeps else value))
            except Exception as e:  # handed back for this call alone
                out.append(("error", (type(e).__name__, str(e), traceback.format_exc())))
    finally:
        restore()
    return out


def value(key: str) -> Any:
    """On a rank: a kept value (``ref.get()``)."""
    return _store.store().get(key)


def free(keys: list[str]) -> int:
    """On a rank: forget kept values."""
    return _store.store().free(keys)


def info() -> list[dict[str, Any]]:
    """On a rank: what its store keeps, where."""
    return _store.store().info()


def _say_where(task: str) -> None:
    from ipyparallel.datapub import publish_data

    rank = my_rank()
    # one key per try: ipyparallel merges them, so the notebook sees every rank tried
    publish_data({f"lepton-try:{rank}:{os.getpid()}": task})


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], task: str) -> Any:
    restore = _guard_collectives(task)
    try:
        return fn(*args, **kwargs)
    finally:
        restore()


def _read_kept(value: Any) -> Any:
    from . import move  # (it builds on this module)

    if isinstance(value, move.Moving):  # kept on another rank: it comes from there
        return move.take(value)
    if isinstance(value, Kept):
        if value.pid != os.getpid():
            raise LookupError(
                f"kept value {value.key} is on rank {value.rank} (pid {value.pid}), not here"
            )
        return _store.store().get(value.key)
    return value


def _keep(value: Any, key: str, store_limit: int) -> Kept:
    entry = _store.store(store_limit).put(key, value)
    return Kept(key, my_rank(), os.getpid(), entry.nbytes, type(value).__name__)


def my_rank() -> int:
    """This engine's rank in its cluster (-1 before it has one)."""
    from ..engine import state

    facts = state.current()
    return int(facts["rank"]) if facts else -1


def _guard_collectives(task: str) -> Callable[[], None]:
    """Make torch.distributed's collectives raise while ``task`` runs; returns the undo.

    Only for the task's duration: outside tasks, torch.distributed is as torch made it
    (``P2POp`` compares ``isend`` and ``irecv`` by identity, for one).
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return lambda: None
    originals = {name: getattr(dist, name) for name in COLLECTIVES if callable(getattr(dist, name, None))}
    for name, original in originals.items():
        setattr(dist, name, _guarded(task, name, original))

    def restore() -> None:
        for name, original in originals.items():
            setattr(dist, name, original)

    return restore


def _guarded(task: str, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        raise CollectiveInTask(IN_A_TASK.format(task=task, name=name))

    return guarded
