"""One task as the notebook's queue holds it (or one chunk of a ``map``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .future import Future

if TYPE_CHECKING:  # pragma: no cover
    from .ref import RemoteRef


@dataclass(eq=False)
class Task:
    """One task as the queue holds it, or one chunk of a ``map`` (``calls``)."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    futures: list[Future]  # one, or one per call of a chunk
    after: list[Future] = field(default_factory=list)
    waits: list[Future] = field(default_factory=list)  # done first: kept values made again
    retries: int = 0
    memory: int | None = None
    ranks: list[int] | None = None
    keep: bool = False
    calls: list[tuple[Any, ...]] | None = None
    plain: bool = False  # its calls hold no futures and no refs: nothing to look for in them
    queued: float = field(default_factory=time.monotonic)
    ar: Any = None  # ipyparallel's AsyncResult once handed over
    recompute_left: int = 0  # tries left to make a kept value again
    ref: RemoteRef | None = None  # the kept value this task makes again, if it is a recompute
    remade: Future | None = None  # the run that makes this task's kept value again, if any
    target: int | None = None  # the one rank it goes to, once kept values move to it
    offers: dict[str, Any] | None = None  # kept key -> the holder's answer (a move.Ticket)
    offered: float = 0.0  # when the offers were asked for (monotonic)
    tickets: list[tuple[int, str]] = field(default_factory=list)  # (holder, token) to withdraw

    def inputs(self) -> list[Future]:
        """The futures among the arguments (their values are needed)."""
        found = list(self.waits)
        found += [a for a in self.args if isinstance(a, Future)]
        found += [v for v in self.kwargs.values() if isinstance(v, Future)]
        for call in () if self.plain else self.calls or ():
            found += [a for a in call if isinstance(a, Future)]
        return found
