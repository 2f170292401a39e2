"""The jupyter_server extension: REST, WebSocket and Prometheus views of running clusters.

Enabled automatically by the package's ``jupyter_server_config.d`` file. It
follows every cluster started from this server's kernels (see
:mod:`.registry`) and serves them on ``/lepton/...`` routes (see
:mod:`.handlers`), which the JupyterLab "Lepton" panel reads.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jupyter_server.utils import url_path_join
from traitlets import Bool, Float
from traitlets.config import Configurable

from .handlers import ClustersHandler, MetricsSocket, PrometheusHandler
from .prometheus import registry_for
from .registry import Clusters

if TYPE_CHECKING:  # pragma: no cover
    from jupyter_server.serverapp import ServerApp


class LeptonMonitor(Configurable):
    """Settings of the lepton server extension (``c.LeptonMonitor.<name>``)."""

    own_kernels_only = Bool(
        True,
        config=True,
        help="Follow only clusters started from this server's kernels "
        "(off: every cluster of this user in the runtime directory).",
    )
    poll_interval = Float(
        1.0, config=True, help="Seconds between two looks for new or stopped clusters."
    )


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "lepton_nb.server"}]


def _kernel_files(serverapp: ServerApp) -> set[str]:
    """Base names of this server's kernels' connection files."""
    km = serverapp.kernel_manager
    files = set()
    for kid in km.list_kernel_ids():
        try:
            files.add(os.path.basename(km.get_kernel(kid).connection_file))
        except KeyError:  # the kernel went away meanwhile
            continue
    return files


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    config = LeptonMonitor(parent=serverapp)
    kernels = None if not config.own_kernels_only else (lambda: _kernel_files(serverapp))
    clusters = Clusters(serverapp.log, kernels, poll_interval=config.poll_interval)
    clusters.start()
    web_app = serverapp.web_app
    web_app.settings["lepton_clusters"] = clusters
    web_app.settings["lepton_registry"] = registry_for(clusters)
    base = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "lepton/api/clusters"), ClustersHandler),
            (url_path_join(base, "lepton/api/metrics"), MetricsSocket),
            (url_path_join(base, "lepton/metrics"), PrometheusHandler),
        ],
    )
    serverapp.log.info("lepton: cluster monitor at %slepton/api/clusters", base)


def _unload_jupyter_server_extension(serverapp: ServerApp) -> None:
    clusters = serverapp.web_app.settings.pop("lepton_clusters", None)
    if clusters is not None:
        clusters.stop()
