"""``%lepton_monitor``: the live monitor widget of the running cluster."""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..monitor import BAD_INTERVAL, MIN_INTERVAL, Monitor
from .cluster import running_cluster

BAD_SYNTAX = "Cannot read the arguments ({error}). Usage: %lepton_monitor [--interval SECONDS]"


@magic_arguments("lepton_monitor")
@argument("--interval", default="0.5", help="seconds between two redraws (default 0.5)")
def monitor_args(line: str) -> None:
    """Show a live widget of the running cluster: placement, memory, links, state.

    %lepton_monitor [--interval SECONDS]

    It redraws every interval until the cluster stops or the widget is closed.
    The same from Python: lepton_nb.monitor(cluster, interval=0.5).
    """


def parse_monitor_line(line: str) -> float:
    """The redraw interval in seconds, or UsageError saying what to type."""
    try:
        args = parse_argstring(monitor_args, line)
    except UsageError as e:
        raise UsageError(BAD_SYNTAX.format(error=e)) from None
    try:
        interval = float(args.interval)
    except ValueError:
        interval = float("nan")
    if not interval >= MIN_INTERVAL:
        raise UsageError(BAD_INTERVAL.format(min=MIN_INTERVAL, value=args.interval))
    return interval


@magics_class
class MonitorMagics(Magics):
    """The ``%lepton_monitor`` line magic."""

    @line_magic
    def lepton_monitor(self, line: str) -> Monitor:
        interval = parse_monitor_line(line)
        return Monitor(running_cluster(), interval)

    lepton_monitor.__doc__ = monitor_args.__doc__
