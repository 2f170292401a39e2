"""The server's routes; every one requires an authenticated user (403 otherwise).

- ``GET /lepton/api/clusters``: the clusters and their ranks (JSON);
- ``/lepton/api/metrics``: a WebSocket streaming every cluster's snapshots;
- ``GET /lepton/metrics``: Prometheus text format.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web, websocket

from ..metrics import wire
from .registry import Clusters

#: Bounds of the rate a WebSocket client may ask for, in seconds between snapshots.
MIN_INTERVAL, MAX_INTERVAL = 0.25, 60.0
#: The largest WebSocket message a client may send (a rate is 40 bytes); larger closes it (1009).
MAX_MESSAGE_BYTES = 4096


class ClustersHandler(APIHandler):
    """``GET /lepton/api/clusters``."""

    @web.authenticated
    def get(self) -> None:
        """``{"clusters": [...]}``: each followed cluster and its ranks."""
        clusters: Clusters = self.settings["lepton_clusters"]
        self.finish(json.dumps({"clusters": clusters.describe()}))


class PrometheusHandler(APIHandler):
    """``GET /lepton/metrics``."""

    @web.authenticated
    def get(self) -> None:
        """Every followed cluster's latest snapshot, in Prometheus text format."""
        body = generate_latest(self.settings["lepton_registry"])
        self.finish(body, set_content_type=CONTENT_TYPE_LATEST)


class MetricsSocket(JupyterHandler, websocket.WebSocketHandler):
    """``/lepton/api/metrics``: each snapshot as a JSON text message.

    A client may send ``{"type": "rate", "interval": S}`` to get at most one
    snapshot per cluster every S seconds. Anything else is ignored, and logged
    once per flood (:attr:`.Clusters.bad_requests`). A client that does not
    read skips snapshots rather than queueing them in the server.
    """

    interval = 0.0
    _last: dict[str, float]
    _writing: asyncio.Future[None] | None = None

    @property
    def max_message_size(self) -> int:
        """The largest message a client may send (tornado closes the connection beyond it)."""
        return MAX_MESSAGE_BYTES

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Upgrade to a WebSocket, for an authenticated user only (403 otherwise)."""
        res = super().get(*args, **kwargs)
        if res is not None:
            await res

    def get_login_url(self) -> str:
        """Refuse (403) rather than redirect a stranger to the login page, as APIHandler does."""
        if not self.current_user:
            raise web.HTTPError(403)
        return super().get_login_url()

    @property
    def clusters(self) -> Clusters:
        """The server's followed clusters (see :mod:`.registry`)."""
        return self.settings["lepton_clusters"]

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Say hello with the clusters, send each latest snapshot, then follow new ones."""
        self._last = {}
        self._send({"type": "hello", "clusters": self.clusters.describe()})
        for snap in list(self.clusters.snapshots.values()):
            self.on_snapshot(snap)
        self.clusters.add_listener(self.on_snapshot)

    def on_snapshot(self, message: dict[str, Any]) -> None:
        """Pass on a snapshot (at most one per cluster each ``interval``) or a ``gone``."""
        cid = str(message.get("cluster"))
        now = time.monotonic()
        snapshot = message.get("type") == "snapshot"
        if snapshot and now - self._last.get(cid, -1e9) < self.interval:
            return
        self._last[cid] = now
        self._send(message, latest_only=snapshot)

    def _send(self, message: dict[str, Any], latest_only: bool = False) -> None:
        """Write ``message``; with ``latest_only``, not while the last write is still queued."""
        if latest_only and self._writing is not None and not self._writing.done():
            return  # a client that does not read gets the next snapshot, not a growing queue
        try:
            self._writing = self.write_message(json.dumps(message))
        except websocket.WebSocketClosedError:
            self.clusters.remove_listener(self.on_snapshot)
            return
        self._writing.add_done_callback(_seen)

    def on_message(self, message: str | bytes) -> None:
        """``{"type": "rate", "interval": S}`` sets the client's rate; anything else is refused."""
        refused = self.clusters.bad_requests
        try:
            msg = wire.loads(message)
            if not isinstance(msg, dict) or msg.get("type") != "rate":
                raise ValueError("expected {'type': 'rate', 'interval': seconds}")
            interval = msg.get("interval")
            if isinstance(interval, bool) or not isinstance(interval, (int, float)):
                raise ValueError(f"interval must be a number, got {interval!r}")
            if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
                raise ValueError(
                    f"interval must be {MIN_INTERVAL}-{MAX_INTERVAL} s, got {interval}"
                )
        except ValueError as e:  # wire.BadMessage too
            refused.refuse(f"{message!r:.200}: {e}")
            return
        self.interval = float(interval)
        refused.flush()

    def on_close(self) -> None:
        """Stop following snapshots for this client."""
        self.clusters.remove_listener(self.on_snapshot)


def _seen(write: asyncio.Future[None]) -> None:
    """Take a finished write's outcome: a client gone meanwhile is no error to report."""
    if not write.cancelled():
        write.exception()
