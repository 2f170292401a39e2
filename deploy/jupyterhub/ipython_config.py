"""The site's defaults and limits for lepton_nb clusters, for every user of the hub.

Copy this file to ``<sys.prefix>/etc/ipython/ipython_config.py`` (the environment the
single-user servers run) or to ``/etc/ipython/ipython_config.py``. Users may change the
defaults in their own notebooks; the limits (``max_*``, ``idle_timeout``) they can only lower.
"""

c = get_config()  # noqa: F821 - provided by IPython when it loads this file

# -- defaults: what %lepton_cluster start asks for unless told otherwise ----------
c.Cluster.launcher = "slurm"  # the team's GPUs are behind Slurm
c.Cluster.partition = "gpu"
c.Cluster.time = "4:00:00"
c.Cluster.gpus_per_node = 4  # one rank per GPU on each node
# c.Cluster.account = "team"
# c.Cluster.controller_ip = "10.1.0.5"   # the hub's address on the cluster network

# -- limits: a user cannot raise them from a notebook --------------------------------
c.Cluster.max_ranks = 32
c.Cluster.max_nodes = 8
c.Cluster.idle_timeout = 3600  # seconds without a cell, run, push or pull
c.Cluster.orphan_timeout = 30  # engines exit this long after their kernel is gone
