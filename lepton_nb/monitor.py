"""The live monitor widget: charts of every rank, a picture of hosts and links, events, state.

``lepton_nb.monitor(cluster)`` (or ``%lepton_monitor``) shows an anywidget
whose front end is the Lab panel's own renderer (``labextension/src/view.ts``,
bundled into ``lepton_nb/static/monitor.js``), so it draws the same in
JupyterLab, Notebook 7 and other front ends that run anywidget. The Python
side draws nothing: a daemon thread sends each snapshot the collector
publishes (every ``metrics_interval``), once, as a custom message, and the
browser keeps the history. It stops when the cluster stops (after a
``gone`` message) or the widget is closed, from Python or by the front end.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
from traitlets import Bunch, Float, Unicode, validate

from .cluster import NO_CLUSTER
from .errors import ClusterError

if TYPE_CHECKING:  # pragma: no cover
    from .cluster import Cluster

log = logging.getLogger(__name__)

BAD_INTERVAL = "The monitor's interval must be at least {min:g} s (got {value!r})"
NOT_BUILT = (
    "The monitor's front end is not built ({path} is missing): reinstall lepton_nb "
    "(make install, or pip install -e .) without LEPTON_SKIP_JS=1"
)
MIN_INTERVAL = 0.1
#: Where the build puts the bundled front end (npm run build:widget in labextension/).
STATIC = Path(__file__).parent / "static"
_METHODS = ("update", "request_state", "custom")


@cache
def _front_end(name: str) -> str:
    path = STATIC / name
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ClusterError(NOT_BUILT.format(path=path)) from None


class Monitor(anywidget.AnyWidget):
    """A live view of one cluster; sends each new snapshot until closed or the cluster stops."""

    interval = Float(0.5, help="Seconds between two looks for a new snapshot.")
    cluster_id = Unicode(help="The cluster shown.").tag(sync=True)

    def __init__(self, cluster: Cluster, interval: float = 0.5) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        if not cluster.running or cluster.collector is None:
            raise ClusterError(NO_CLUSTER)
        cls = type(self)
        cls._esm, cls._css = _front_end("monitor.js"), _front_end("monitor.css")
        super().__init__(interval=interval, cluster_id=cluster.cluster_id)
        self.cluster = cluster
        #: snapshots sent to the front end so far
        self.sent = 0
        self._seq: int | None = None
        self._send_new()
        if self.comm is not None:
            self.comm.on_close(lambda msg: self._stop())
        self._thread = threading.Thread(target=self._loop, name="lepton-monitor", daemon=True)
        self._thread.start()

    @validate("interval")
    def _check_interval(self, proposal: Bunch) -> float:
        value = proposal["value"]
        if value is None or value < MIN_INTERVAL:
            raise ClusterError(BAD_INTERVAL.format(min=MIN_INTERVAL, value=value))
        return float(value)

    @property
    def running(self) -> bool:
        """True while the widget still sends snapshots."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the sending to end (cluster stopped, widget closed).

        True once it has ended.
        """
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self.running

    def _send_new(self) -> None:
        collector = self.cluster.collector
        snap = None if collector is None else collector.published
        if snap is not None and snap.get("seq") != self._seq:
            self._seq = snap.get("seq")
            self.send(snap)
            self.sent += 1

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            if self.cluster.collector is None or not self.cluster.running:
                self.send({"type": "gone", "cluster": self.cluster_id})
                return
            try:
                self._send_new()
            except Exception:  # keep sending; say what went wrong each time
                log.exception("the lepton monitor could not send a snapshot")

    def _stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        """Stop sending and close the widget."""
        self._stop()
        self.wait(5)
        super().close()

    def _handle_msg(self, msg: dict[str, Any]) -> None:
        """Messages from the front end; malformed ones are logged and ignored."""
        try:
            data = msg["content"]["data"]
            if not isinstance(data, dict) or data.get("method") not in _METHODS:
                raise ValueError(f"unknown method in {data!r:.200}")
            if data["method"] == "update":
                state = data.get("state")
                if not isinstance(state, dict) or not set(state) <= set(self.keys):
                    raise ValueError(f"not a state of this widget: {state!r:.200}")
                self.set_state(state)  # a wrong value raises here, not in ipywidgets' log
                return
            super()._handle_msg(msg)
        except Exception as e:
            log.warning("lepton monitor: ignored a malformed comm message: %s", e)


def monitor(cluster: Cluster | None = None, interval: float = 0.5) -> Monitor:
    """A live :class:`Monitor` of ``cluster`` (default: the cluster the magics use).

    Display it as the last expression of a cell, or with ``display()``. Per rank it
    charts memory, utilization and bytes/s sent over the last 5 minutes (click a rank
    for a larger chart), draws the hosts, ranks and links, and lists the events
    (cells, pushes, ranks that died or restarted), until the cluster stops or the
    widget is closed. The Lab panel "Lepton" draws the same.

    Parameters
    ----------
    cluster : Cluster, optional
        The cluster to watch; default ``None``: the cluster the magics use (the last one
        started and not stopped).
    interval : float, optional
        Seconds between two looks for a new snapshot, at least 0.1; default 0.5 (the
        snapshots themselves come every ``metrics_interval``).

    Returns
    -------
    Monitor
        The widget, already sending.

    Raises
    ------
    ClusterError
        When there is no running cluster (or ``cluster`` is not running), ``interval`` is
        under 0.1 s, or the front end was not built (``LEPTON_SKIP_JS=1``).
    """
    if cluster is None:
        from .cluster import get_cluster

        cluster = get_cluster()
    if cluster is None:
        raise ClusterError(NO_CLUSTER)
    return Monitor(cluster, interval)


class _CallableModule(types.ModuleType):
    """``lepton_nb.monitor`` is this module and, called, the :func:`monitor` function.

    The package loads it lazily (engines never need widgets), so the name
    ``lepton_nb.monitor`` can be bound to the module; calling it still works.
    """

    def __call__(self, cluster: Cluster | None = None, interval: float = 0.5) -> Monitor:
        return monitor(cluster, interval)


sys.modules[__name__].__class__ = _CallableModule
