"""Where a cluster's defaults come from: the site's and the user's IPython configuration.

In a kernel (or any IPython shell) that is the shell's own configuration, so
``c.Cluster.*`` in ``ipython_config.py`` applies: in the user's profile, in
``sys.prefix/etc/ipython`` or ``/etc/ipython`` for a whole site. Outside
IPython the same files are read, in the same order.
"""

from __future__ import annotations

import os

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader


def site_config() -> Config:
    """The configuration a new cluster starts from (a copy)."""
    from IPython import get_ipython

    ip = get_ipython()
    if ip is not None:
        return Config(ip.config)
    return _load_files()


def config_files(site_only: bool = False) -> list[str]:
    """The ``ipython_config.py`` files IPython reads, lowest priority first.

    ``site_only``: the site-wide ones only (``/etc/ipython``, ``sys.prefix/etc/ipython``),
    which users of a shared installation cannot write.
    """
    from IPython.core.application import ENV_CONFIG_DIRS, SYSTEM_CONFIG_DIRS
    from IPython.paths import get_ipython_dir

    folders = list(reversed(SYSTEM_CONFIG_DIRS)) + list(ENV_CONFIG_DIRS)
    if not site_only:
        folders.append(os.path.join(get_ipython_dir(), "profile_default"))
    return [
        os.path.join(d, "ipython_config.py")
        for d in folders
        if os.path.isfile(os.path.join(d, "ipython_config.py"))
    ]


def site_only_config() -> Config:
    """The site-wide configuration alone (where the site's limits are set)."""
    return _load_files(site_only=True)


def _load_files(site_only: bool = False) -> Config:
    config = Config()
    for path in config_files(site_only):
        loader = PyFileConfigLoader(os.path.basename(path), os.path.dirname(path))
        config.merge(loader.load_config())
    return config
