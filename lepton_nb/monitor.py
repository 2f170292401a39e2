"""The live monitor widget: placement, memory, link utilization and state of every rank.

``lepton_nb.monitor(cluster)`` (or ``%lepton_monitor``) shows an ipywidgets
``HTML`` widget, so it renders in JupyterLab and in the classic Notebook with
no extension of ours. A daemon thread redraws it from the cluster's snapshot
every ``interval`` seconds (only when something changed) and stops when the
cluster stops or the widget is closed, from Python or by the front end.
"""

from __future__ import annotations

import html
import logging
import sys
import threading
import time
import types
from typing import TYPE_CHECKING, Any

import ipywidgets
from traitlets import Bunch, Float, validate

from .cluster import NO_CLUSTER
from .errors import ClusterError
from .units import size

if TYPE_CHECKING:  # pragma: no cover
    from .cluster import Cluster
    from .metrics.snapshot import Snapshot

log = logging.getLogger(__name__)

BAD_INTERVAL = "The monitor's interval must be at least {min:g} s (got {value!r})"
MIN_INTERVAL = 0.1
_COLORS = {"idle": "#2e7d32", "busy": "#1565c0", "dead": "#c62828", "restarting": "#ef6c00"}
_METHODS = ("update", "request_state", "custom")


def _memory_cell(memory: dict[str, Any] | None) -> str:
    if not memory:
        return "n/a"
    used, total = memory["used"], memory.get("total")
    pct = 100.0 * used / total if total else 0.0
    label = f"{size(used)} / {size(total)}" if total else size(used)
    return (
        f'<div class="lepton-memory" data-bytes="{int(used)}" title="{memory["kind"]} memory" '
        'style="position:relative;width:160px;height:16px;background:#eee;border-radius:3px">'
        f'<div style="width:{min(pct, 100):.1f}%;height:100%;background:#64b5f6;'
        'border-radius:3px"></div>'
        '<span style="position:absolute;left:4px;top:0;font-size:11px;line-height:16px">'
        f"{html.escape(label)}</span></div>"
    )


def _rank_rows(snap: Snapshot) -> str:
    rows = []
    for r in snap["ranks"]:
        state = r["state"]
        device = r["device"] if r.get("gpu") is None else f"{r['device']} (GPU {r['gpu']})"
        cpu = r.get("cpu_percent")
        rows.append(
            f'<tr class="lepton-rank" data-rank="{r["rank"]}"><td>{r["rank"]}</td>'
            f"<td>{html.escape(str(r.get('host')))}</td><td>{html.escape(device)}</td>"
            f'<td><span class="lepton-state" style="color:{_COLORS.get(state, "#555")};'
            f'font-weight:bold">{state}</span></td>'
            f"<td>{_memory_cell(r.get('memory'))}</td>"
            f"<td>{'n/a' if cpu is None else f'{cpu:.0f}%'}</td></tr>"
        )
    head = "".join(f"<th>{c}</th>" for c in ("rank", "host", "device", "state", "memory", "CPU"))
    return f'<table class="lepton-ranks"><tr>{head}</tr>{"".join(rows)}</table>'


def _link_matrix(snap: Snapshot) -> str:
    ranks = [r["rank"] for r in snap["ranks"]]
    links = {(x["src"], x["dst"]): x for x in snap["links"]}
    top = max([x["rate"] for x in links.values()] + [1.0])
    sources = ([-1] if any(s == -1 for s, _ in links) else []) + ranks
    head = "<tr><th>from \\ to</th>" + "".join(f"<th>{d}</th>" for d in ranks) + "</tr>"
    body = []
    for s in sources:
        cells = []
        for d in ranks:
            x = links.get((s, d))
            if s == d or x is None:
                cells.append('<td style="color:#aaa">·</td>')
                continue
            shade = 0.08 + 0.6 * x["rate"] / top
            cells.append(
                f'<td class="lepton-link" data-src="{s}" data-dst="{d}" '
                f'title="{size(x["bytes"])} in all" '
                f'style="background:rgba(21,101,192,{shade:.2f})">{size(x["rate"], "B/s")}'
                f'<div style="font-size:10px;color:#555">{size(x["bytes"])}</div></td>'
            )
        name = "notebook" if s == -1 else str(s)
        body.append(f"<tr><th>{name}</th>{''.join(cells)}</tr>")
    return f'<table class="lepton-links">{head}{"".join(body)}</table>'


def render(snap: Snapshot | None, stopped: bool = False) -> str:
    """The widget's HTML for a snapshot (see ``lepton_nb.metrics.snapshot``)."""
    if snap is None:
        return "<div class='lepton-monitor'><b>Lepton</b>: no cluster</div>"
    when = time.strftime("%H:%M:%S", time.localtime(snap["time"]))
    title = (
        f"<b>Lepton cluster {html.escape(snap['cluster'])}</b>: {snap['world_size']} ranks, "
        f"{html.escape(str(snap.get('backend', '')))}, "
        + ("<b>stopped</b>" if stopped else f"updated {when}")
    )
    return (
        f"<div class='lepton-monitor' style='font-size:12px'><div>{title}</div>"
        f"{_rank_rows(snap)}<div style='margin-top:6px'>link utilization, bytes/s</div>"
        f"{_link_matrix(snap)}</div>"
    )


class Monitor(ipywidgets.HTML):
    """A live view of one cluster; redrawn by a daemon thread until closed or the cluster stops."""

    interval = Float(0.5, help="Seconds between two redraws.")
    value: str  # the HTML shown: ipywidgets.HTML's synced trait (ipywidgets has no type hints)

    def __init__(self, cluster: Cluster, interval: float = 0.5) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        if not cluster.running or cluster.collector is None:
            raise ClusterError(NO_CLUSTER)
        super().__init__(interval=interval)
        self.cluster = cluster
        self.redraws = 0
        self._last = cluster.collector.snapshot()
        self._draw(self._last)
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
        """True while the widget still redraws."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the redraws to end (cluster stopped, widget closed).

        True once they have ended.
        """
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self.running

    def _draw(self, snap: Snapshot | None, stopped: bool = False) -> None:
        text = render(snap, stopped)
        if text != self.value:
            self.value = text
            self.redraws += 1

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            collector = self.cluster.collector
            if collector is None or not self.cluster.running:
                self._draw(self._last, stopped=True)
                return
            try:
                self._last = collector.snapshot()
                self._draw(self._last)
            except Exception:  # keep drawing; say what went wrong once per redraw
                log.exception("the lepton monitor could not redraw")

    def _stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        """Stop redrawing and close the widget."""
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

    Display it as the last expression of a cell, or with ``display()``. It redraws
    every ``interval`` seconds (only when something changed) until the cluster
    stops or the widget is closed.

    Parameters
    ----------
    cluster : Cluster, optional
        The cluster to watch; default ``None``: the cluster the magics use (the last one
        started and not stopped).
    interval : float, optional
        Seconds between two redraws, at least 0.1; default 0.5.

    Returns
    -------
    Monitor
        The widget, already redrawing.

    Raises
    ------
    ClusterError
        When there is no running cluster (or ``cluster`` is not running), or ``interval`` is
        under 0.1 s.
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
