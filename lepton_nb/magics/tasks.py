"""``%lepton_map``: a function over an iterable as tasks, with a progress bar; ``_`` is bound."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ..tasks import api
from .args import parse_line
from .cluster import running_cluster
from .shell import user_namespace

MAP_USAGE = "Usage: %lepton_map FN ITERABLE [--memory 2GB] [--retries N]"
CANNOT_EVALUATE = "%lepton_map: cannot evaluate {what} {expr!r}: {error}. " + MAP_USAGE


@magic_arguments("lepton_map")
@argument("fn", nargs="?", default=None, help="the function: a name or expression (no spaces)")
@argument("iterable", nargs="?", default=None, help="what to map it over, e.g. tiles or range(100)")
@argument("--memory", default=None, help="free memory each task needs on its rank, e.g. 2GB")
@argument("--retries", default="0", help="times a task runs again when it fails or its rank dies")
@argument("--chunksize", default=None, help="calls per task (default: about 16 tasks per rank)")
def map_args(line: str) -> None:
    """Run FN on each item of ITERABLE as tasks on the ranks; ``_`` holds the results, in order.

    Tasks go wherever there is room (ipyparallel's load-balanced view), with a
    progress bar. The first task that failed is raised, naming its task and rank.
    """


@magics_class
class TaskMagics(Magics):
    """Tasks from the notebook."""

    @line_magic
    def lepton_map(self, line: str) -> None:
        args = parse_line(map_args, line, MAP_USAGE)
        if args.fn is None or args.iterable is None:
            raise UsageError("Name a function and an iterable, e.g.: %lepton_map blur tiles")
        try:
            retries = int(args.retries)
            chunksize = None if args.chunksize is None else int(args.chunksize)
        except ValueError as e:
            raise UsageError(f"%lepton_map: {e}. {MAP_USAGE}") from None
        fn = self._evaluate(args.fn, "the function")
        iterable = self._evaluate(args.iterable, "the iterable")
        try:
            items = list(iterable)
        except TypeError as e:
            raise UsageError(CANNOT_EVALUATE.format(what="the iterable", expr=args.iterable,
                                                    error=e)) from None  # fmt: skip
        cluster = running_cluster()
        try:
            futures = cluster.map(fn, items, chunksize=chunksize, retries=retries, memory=args.memory)
        except (TypeError, ValueError) as e:
            raise UsageError(f"%lepton_map: {e}") from None
        results = api.gather(futures, bar=True)
        user_namespace(self.shell)["_"] = results
        print(f"{len(results)} results in _")

    def _evaluate(self, expr: str, what: str) -> Any:
        try:
            return eval(expr, user_namespace(self.shell))  # the user's own expression
        except Exception as e:  # any error of the user's expression, said as such
            raise UsageError(CANNOT_EVALUATE.format(what=what, expr=expr, error=e)) from None

    lepton_map.__doc__ = map_args.__doc__
