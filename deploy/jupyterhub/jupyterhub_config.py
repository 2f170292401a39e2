"""A JupyterHub for a team whose notebooks drive lepton_nb clusters.

Run it as root from the environment that has lepton_nb installed::

    jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

- Users log in with their Unix accounts (PAM), and each user's server runs as
  that user (``LocalProcessSpawner``), so their kernels, controllers and
  engines run under their own uid, with their own files.
- The single-user servers run this environment's ``jupyterhub-singleuser``:
  the ``lepton`` kernelspec, the server extension and the Lab extension come
  with the package, in ``sys.prefix``, enabled for every user.
- Site defaults and limits for clusters live in a site-wide IPython
  configuration: copy ``ipython_config.py`` (next to this file) to
  ``sys.prefix/etc/ipython/`` (or ``/etc/ipython/``).
- jupyterhub-idle-culler stops servers nobody used for an hour; their
  kernels' clusters go with them (engines exit once their kernel is gone).

Settings read from the environment, for a site to adjust without editing this file:
``LEPTON_HUB_USERS`` (space-separated allowed users; default: any Unix user),
``LEPTON_HUB_ADMINS``, ``LEPTON_HUB_BIND_URL`` (default ``http://:8000``),
``LEPTON_HUB_CULL_TIMEOUT`` (seconds, default 3600), ``LEPTON_HUB_STATE``
(where the hub keeps its database and cookie secret; default the working folder).
"""

import os
import sys

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

env = os.environ.get
state = env("LEPTON_HUB_STATE", os.getcwd())

# -- who: real Unix users, each server running as its user ------------------------
c.JupyterHub.authenticator_class = "pam"
c.JupyterHub.spawner_class = "localprocess"
users = set(env("LEPTON_HUB_USERS", "").split())
if users:
    c.Authenticator.allowed_users = users
else:
    c.Authenticator.allow_all = True  # every Unix user of this machine may log in
c.Authenticator.admin_users = set(env("LEPTON_HUB_ADMINS", "").split())
c.LocalProcessSpawner.create_system_users = False  # the site creates its users

# -- what each user runs: this environment, with lepton_nb in it -------------------
c.Spawner.cmd = [os.path.join(sys.prefix, "bin", "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
# pointers to the site's configuration: Slurm's, for launcher="slurm"
c.Spawner.env_keep.extend(["SLURM_CONF"])

# -- where -----------------------------------------------------------------------------
c.JupyterHub.bind_url = env("LEPTON_HUB_BIND_URL", "http://:8000")
c.JupyterHub.db_url = f"sqlite:///{os.path.join(state, 'jupyterhub.sqlite')}"
c.JupyterHub.cookie_secret_file = os.path.join(state, "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = os.path.join(state, "jupyterhub-proxy.pid")

# -- the idle culler, as a hub service ---------------------------------------------------
cull = env("LEPTON_HUB_CULL_TIMEOUT", "3600")
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={cull}",
                    f"--cull-every={max(1, min(300, int(cull) // 4))}"],  # fmt: skip
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
