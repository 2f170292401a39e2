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


def config_files() -> list[str]:
    """The ``ipython_config.py`` files IPython reads, lowest priority first."""
    from IPython.core.application import ENV_CONFIG_DIRS, SYSTEM_CONFIG_DIRS
    from IPython.paths import get_ipython_dir

    profile = os.path.join(get_ipython_dir(), "profile_default")
    folders = list(reversed(SYSTEM_CONFIG_DIRS)) + list(ENV_CONFIG_DIRS) + [profile]
    return [
        os.path.join(d, "ipython_config.py")
        for d in folders
        if os.path.isfile(os.path.join(d, "ipython_config.py"))
    ]


def _load_files() -> Config:
    config = Config()
    for path in config_files():
        loader = PyFileConfigLoader(os.path.basename(path), os.path.dirname(path))
        config.merge(loader.load_config())
    return config
