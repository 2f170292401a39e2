"""Everything a cluster can be asked for, as configurable traits.

Every option is ``config=True``, so an ``ipython_config.py`` sets the
defaults, the user's own or a site-wide one for a whole team::

    c.Cluster.launcher = "slurm"
    c.Cluster.partition = "gpu"
    c.Cluster.time = "4:00:00"

Arguments given to ``Cluster(...)`` (or to ``%lepton_cluster start``) win over
configuration.
"""

from __future__ import annotations

import inspect
from typing import Any

from traitlets import Any as AnyTrait
from traitlets import Bool, Dict, Float, Integer, List, Unicode, validate
from traitlets.config import LoggingConfigurable

from ..errors import ClusterError


class ClusterOptions(LoggingConfigurable):
    """The options of a :class:`lepton_nb.Cluster` (every one settable as ``c.Cluster.<name>``)."""

    # -- what to start --------------------------------------------------------
    n = Integer(
        None, allow_none=True, config=True,
        help="Number of ranks. Default: local: one per GPU, else 2; slurm: nodes x ranks_per_node; "
        "ssh: the sum of hosts.",
    )  # fmt: skip
    gpus = AnyTrait(
        "auto", config=True,
        help='"auto" (one GPU per rank where a host has GPUs, else CPU), "none" (CPU ranks '
        'everywhere), or GPU indices such as [0, 1] (on every host).',
    )  # fmt: skip
    launcher = Unicode(
        "local", config=True,
        help='How engines start: "local" (this host), "slurm" (a Slurm job), "ssh" (hosts over '
        "SSH), or a launcher registered under the lepton_nb.launchers entry points.",
    )  # fmt: skip

    # -- slurm ------------------------------------------------------------------
    nodes = Integer(None, allow_none=True, config=True, help="slurm: the number of nodes.")
    ranks_per_node = Integer(
        None, allow_none=True, config=True,
        help="slurm: ranks on each node; default: gpus_per_node when given, else 1.",
    )  # fmt: skip
    gpus_per_node = Integer(
        None, allow_none=True, config=True, help="slurm: GPUs to ask Slurm for on each node."
    )
    partition = Unicode(None, allow_none=True, config=True, help="slurm: the partition.")
    time = Unicode("1:00:00", config=True, help="slurm: the job's time limit (HH:MM:SS).")
    account = Unicode(None, allow_none=True, config=True, help="slurm: the account to charge.")
    slurm_args = List(
        Unicode(), config=True,
        help='slurm: more sbatch options, one per item, e.g. ["--qos=high", "--constraint=a100"].',
    )  # fmt: skip

    # -- ssh --------------------------------------------------------------------
    hosts = Dict(
        value_trait=Integer(), key_trait=Unicode(), config=True,
        help='ssh: host -> number of ranks, e.g. {"node1": 2, "node2": 2} ("user@host:port" works).',
    )  # fmt: skip
    python = Unicode(
        None, allow_none=True, config=True,
        help="ssh: the interpreter on the hosts; default: the notebook's own path.",
    )  # fmt: skip
    ssh_args = List(
        Unicode(), config=True, help='ssh: arguments for ssh and scp, e.g. ["-F", "~/.ssh/hpc"].'
    )

    # -- network ----------------------------------------------------------------
    controller_ip = Unicode(
        "", config=True,
        help="The address the controller (and the metrics channel) listens on; it must be "
        "reachable from every engine. Default: loopback for local; for slurm, the address "
        "that reaches slurmctld; for ssh, the address that reaches the first host.",
    )  # fmt: skip

    # -- site limits (a user can lower them, never raise them: see limits.py) -------------
    max_ranks = Integer(
        None, allow_none=True, config=True,
        help="Site limit: the most ranks one cluster may have (set in a site-wide config).",
    )  # fmt: skip
    max_nodes = Integer(
        None, allow_none=True, config=True,
        help="Site limit: the most nodes (Slurm) or hosts (SSH) one cluster may span.",
    )  # fmt: skip
    idle_timeout = Float(
        None, allow_none=True, config=True,
        help="Site limit: a cluster with no cell, run, push or pull for this many seconds "
        "stops itself (None: never).",
    )  # fmt: skip

    # -- waiting and behaviour ------------------------------------------------
    engine_timeout = Float(
        120.0, config=True, help="Seconds to wait for engines to register and join."
    )
    group_timeout = Float(
        1800.0, config=True,
        help="torch.distributed timeout in seconds for a collective that never completes.",
    )  # fmt: skip
    interrupt_grace = Float(
        3.0, config=True,
        help="Seconds a timed-out rank has to stop after SIGINT before it is restarted.",
    )  # fmt: skip
    progress = Bool(True, config=True, help="Show a progress bar while engines start.")
    run_timeout = Float(
        None, allow_none=True, config=True,
        help="Seconds cluster.run waits before interrupting the ranks (None: until done or Ctrl-C).",
    )  # fmt: skip
    orphan_timeout = Float(
        30.0, config=True,
        help="Seconds an engine goes on without hearing from the notebook before it exits "
        "(the kernel was killed, ran out of memory or was culled); the controller follows its "
        "kernel at once.",
    )  # fmt: skip
    metrics_interval = Float(
        0.5, config=True, help="Seconds between two metrics samples of each rank."
    )
    task_timeout = Float(
        300.0, config=True,
        help="Seconds a task with memory= waits for a rank with that much free before it fails.",
    )  # fmt: skip
    store_limit = Unicode(
        "4GB", config=True,
        help="Bytes each rank keeps of its tasks' kept values (keep=True) in each of GPU and "
        "host memory; past it the least recently used spill to host memory, then to disk.",
    )  # fmt: skip

    @validate("store_limit")
    def _size(self, proposal: Any) -> Any:
        from ..units import parse_size

        try:
            parse_size(proposal["value"])
        except ValueError as e:
            raise ClusterError(f"store_limit: {e}") from None
        return proposal["value"]

    @validate("n", "engine_timeout", "metrics_interval", "orphan_timeout", "task_timeout")
    def _positive(self, proposal: Any) -> Any:
        value, name = proposal["value"], proposal["trait"].name
        if value is not None and (isinstance(value, bool) or value <= 0):
            what = "number of ranks" if name == "n" else "number of seconds"
            raise ClusterError(f"{name} must be a positive {what}, got {value!r}")
        return value

    def default_local_ranks(self) -> int:
        """Ranks of a local cluster when n is not given: one per GPU of this host, else 2."""
        from .. import _nvml

        if isinstance(self.gpus, (list, tuple)):
            return len(self.gpus) or 2
        if str(self.gpus).lower() == "none":
            return 2
        return len(_nvml.host_gpus()) or 2


def signature() -> inspect.Signature:
    """``Cluster(n=None, gpus="auto", *, launcher="local", ...)``, for ``Cluster?``."""
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    traits = ClusterOptions.class_traits(config=True)
    for name in ("n", "gpus"):
        params.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        default=traits[name].default()))  # fmt: skip
    for name, trait in traits.items():
        if name not in ("n", "gpus"):
            params.append(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=trait.default())
            )
    params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None))
    return inspect.Signature(params)


#: start options as %lepton_cluster start flags
_FLAGS = {"n": "-n", "gpus": "--gpus", "launcher": "--launcher", "nodes": "--nodes",
          "ranks_per_node": "--ranks-per-node", "gpus_per_node": "--gpus-per-node",
          "partition": "--partition", "time": "--time", "account": "--account", "hosts": "--hosts"}  # fmt: skip


def start_line(given: dict[str, Any]) -> str:
    """The ``%lepton_cluster start`` line that asks for ``given`` again (else ``cluster.start()``)."""
    behaviour = {"progress", "engine_timeout", "group_timeout", "interrupt_grace", "run_timeout",
                 "metrics_interval", "orphan_timeout", "max_ranks", "max_nodes", "idle_timeout"}  # fmt: skip
    if any(k not in _FLAGS and k not in behaviour for k in given if k != "config"):
        return "cluster.start()"  # ssh_args, python, ...: no magic flag says them
    parts = ["%lepton_cluster start"]
    for name, flag in _FLAGS.items():
        if name not in given:
            continue
        value = given[name]
        if name == "hosts":
            value = ",".join(f"{h}:{c}" for h, c in value.items())
        elif isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        parts.append(f"{flag} {value}")
    return " ".join(parts) + " (or cluster.start())"
