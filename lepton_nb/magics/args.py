"""Argument parsing for the magics: pure functions that raise UsageError.

Everything here runs before anything reaches an engine, so bad input costs
nothing and loses nothing.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..cluster.placement import check_gpus_exist, parse_gpus
from ..cluster.rankspec import parse_ranks
from ..names import is_name

ACTIONS = ("start", "status", "scale", "restart", "stop")

UNKNOWN_ACTION = (
    "Unknown subcommand {action!r}. Use one of: start [-n N] [--gpus auto|none|0,1], "
    "status, scale N, restart [RANK], stop. Example: %lepton_cluster start -n 2"
)
MISSING_ACTION = (
    "Say what to do, e.g.: %lepton_cluster start -n 2 (or status, scale N, restart, stop)"
)
BAD_N = "-n must be a whole number of ranks of at least 1, got {value!r}. Example: %lepton_cluster start -n 2"
BAD_SCALE = "scale needs a whole number of ranks of at least 1, got {value!r}. Example: %lepton_cluster scale 4"
BAD_RESTART = "restart takes a rank number, got {value!r}. Example: %lepton_cluster restart 1"
BAD_RESTART_RANK = (
    "rank {rank} does not exist: the cluster has ranks 0-{last}. Example: %lepton_cluster restart 0"
)
EXTRA_VALUE = "{action} takes no value (got {value!r}). Example: %lepton_cluster {action}"
START_ONLY = (
    "{option} belongs to start. Example: %lepton_cluster start -n 2 --gpus none"
)
BAD_COUNT = "{option} must be a whole number of at least 1, got {value!r}. Example: {option} 2"
BAD_LAUNCHER = "--launcher must be one of {known}, got {value!r}. Example: --launcher slurm"
BAD_TIME = "--time must be a Slurm time limit such as 1:00:00, got {value!r}"
BAD_HOSTS = (
    "--hosts takes HOST:RANKS pairs separated by commas, got {value!r}. "
    "Example: --hosts node1:2,node2:2"
)
BAD_GPUS = "{error}"
BAD_RANKS = "--ranks: {error}. Examples: --ranks all, --ranks 0,2, --ranks 1-3"
BAD_TIMEOUT = (
    "--timeout must be a number of seconds greater than 0, got {value!r}. Example: --timeout 60"
)
BAD_GATHER = (
    "--gather: {name!r} is not a Python name. "
    "Give names separated by commas, e.g. --gather loss,accuracy"
)
BAD_BACKEND = "--backend must be auto, gloo or nccl, got {value!r}"
NCCL_NEEDS_GPUS = "--backend nccl needs a GPU on every rank; this cluster has CPU ranks. Use --backend gloo or auto"
BAD_SYNTAX = "Cannot read the arguments ({error}). {usage}"
CLUSTER_USAGE = "Usage: %lepton_cluster start|status|scale N|restart [RANK]|stop"
DISTRIBUTED_USAGE = (
    "Usage: %%lepton_distributed [--ranks all|0,2|1-3] [--timeout SECONDS] "
    "[--gather NAME[,NAME...]] [--backend auto|gloo|nccl] [--no-stream]"
)


@magic_arguments("lepton_cluster")
@argument("action", nargs="?", default=None, help="start | status | scale | restart | stop")
@argument("value", nargs="?", default=None, help="N for scale, RANK for restart")
@argument("-n", dest="n", default=None, help="start: number of ranks (default: GPUs, else 2)")
@argument("--gpus", default=None, help="start: auto (default) | none | 0,1,...")
@argument("--launcher", default=None, help="start: local (default) | slurm | ssh")
@argument("--nodes", default=None, help="start, slurm: the number of nodes")
@argument("--ranks-per-node", dest="ranks_per_node", default=None,
          help="start, slurm: ranks per node (default: --gpus-per-node, else 1)")  # fmt: skip
@argument("--gpus-per-node", dest="gpus_per_node", default=None,
          help="start, slurm: GPUs to ask Slurm for on each node")  # fmt: skip
@argument("--partition", default=None, help="start, slurm: the partition")
@argument("--time", default=None, help="start, slurm: the time limit, HH:MM:SS")
@argument("--account", default=None, help="start, slurm: the account to charge")
@argument("--hosts", default=None, help="start, ssh: HOST:RANKS,... e.g. node1:2,node2:2")
def cluster_args(line: str) -> None:
    """Start, inspect, resize, restart or stop the engine cluster.

    %lepton_cluster start [-n N] [--gpus auto|none|0,1,...] [--launcher local|slurm|ssh]
                          [--nodes K] [--ranks-per-node R] [--gpus-per-node G]
                          [--partition P] [--time HH:MM:SS] [--account A] [--hosts h1:2,h2:2]
    %lepton_cluster status
    %lepton_cluster scale N
    %lepton_cluster restart [RANK]
    %lepton_cluster stop

    Options not given come from the configuration (c.Cluster.launcher,
    c.Cluster.partition, ... in ipython_config.py).
    """


@magic_arguments("%lepton_distributed")  # a cell magic: %%lepton_distributed
@argument("--ranks", default="all", help="ranks to run on: all (default), 0,2 or 1-3")
@argument("--timeout", default=None, help="seconds; ranks still running are interrupted")
@argument("--gather", default=None, help="NAME[,NAME...]: bring each rank's value back as a list")
@argument("--backend", default="auto", help="auto (default) | gloo | nccl")
@argument("--no-stream", dest="no_stream", action="store_true", help="print output after the cell")
def distributed_args(line: str) -> None:
    """Run the cell on every rank, with rank, world_size, local_rank and device bound.

    torch.distributed is initialized with one process group over all ranks, and
    each rank's namespace persists between cells. Output streams back prefixed
    by rank; --gather brings named values back into the notebook, ordered by rank.
    """


def parse_line(spec, line: str, usage: str):  # noqa: ANN001 - IPython's decorated stub
    """Parse ``line`` with a magic_arguments ``spec``; UsageError ending with ``usage``."""
    try:
        shlex.split(line)
        return parse_argstring(spec, line)
    except UsageError as e:
        raise UsageError(f"{e}. {usage}") from None
    except SystemExit:  # argparse's -h / --help
        raise UsageError(spec.__doc__ or usage) from None
    except ValueError as e:
        raise UsageError(BAD_SYNTAX.format(error=e, usage=usage)) from None


def _positive_int(value: str | None, message: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        raise UsageError(message.format(value=value)) from None
    if n < 1:
        raise UsageError(message.format(value=value))
    return n


START_OPTIONS = ("n", "gpus", "launcher", "nodes", "ranks_per_node", "gpus_per_node",
                 "partition", "time", "account", "hosts")  # fmt: skip
_FLAGS = {"n": "-n", "ranks_per_node": "--ranks-per-node", "gpus_per_node": "--gpus-per-node"}


@dataclass
class ClusterCommand:
    """A checked ``%lepton_cluster`` line."""

    action: str
    n: int | None = None
    gpus: str = "auto"
    rank: int | None = None
    #: the start options given on the line (the rest come from configuration)
    options: dict = field(default_factory=dict)


def _flag(option: str) -> str:
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def parse_hosts(text: str) -> dict[str, int]:
    """``node1:2,node2:2`` as ``{"node1": 2, "node2": 2}``; UsageError saying the form."""
    hosts: dict[str, int] = {}
    for part in str(text).split(","):
        name, sep, count = part.strip().rpartition(":")
        if not sep or not name or not count.strip().isdigit() or int(count) < 1 or name in hosts:
            raise UsageError(BAD_HOSTS.format(value=text))
        hosts[name] = int(count)
    return hosts


def _start_options(args) -> dict:  # noqa: ANN001 - argparse's namespace
    from ..cluster.launchers import available

    options: dict = {}
    if args.n is not None:
        options["n"] = _positive_int(args.n, BAD_N)
    if args.gpus is not None:
        try:
            parse_gpus(args.gpus)
        except ValueError as e:
            raise UsageError(BAD_GPUS.format(error=e)) from None
        options["gpus"] = args.gpus
    if args.launcher is not None:
        known = sorted(available())
        if args.launcher.strip().lower() not in known:
            raise UsageError(BAD_LAUNCHER.format(known=", ".join(known), value=args.launcher))
        options["launcher"] = args.launcher.strip().lower()
    for option in ("nodes", "ranks_per_node", "gpus_per_node"):
        value = getattr(args, option)
        if value is not None:
            message = BAD_COUNT.replace("{option}", _flag(option))
            options[option] = _positive_int(value, message)
    if args.time is not None:
        if not re.match(r"^(\d+-)?\d+(:\d{1,2}){0,2}$", args.time.strip()):
            raise UsageError(BAD_TIME.format(value=args.time))
        options["time"] = args.time.strip()
    for option in ("partition", "account"):
        if getattr(args, option) is not None:
            options[option] = getattr(args, option)
    if args.hosts is not None:
        options["hosts"] = parse_hosts(args.hosts)
    return options


def parse_cluster_line(
    line: str, gpus_available: int | None = None, world_size: int | None = None
) -> ClusterCommand:
    """Check a ``%lepton_cluster`` line; raise UsageError saying what to type instead.

    ``gpus_available``: the GPUs of this host, to check ``--gpus`` against when the
    engines start here (None: they may start elsewhere, checked at placement).
    """
    args = parse_line(cluster_args, line, CLUSTER_USAGE)
    action = args.action
    if action is None:
        raise UsageError(MISSING_ACTION)
    if action not in ACTIONS:
        raise UsageError(UNKNOWN_ACTION.format(action=action))
    if action != "start":
        given = [o for o in START_OPTIONS if getattr(args, o) is not None]
        if given:
            raise UsageError(START_ONLY.format(option=_flag(given[0])))
    cmd = ClusterCommand(action)
    if action == "start":
        if args.value is not None:
            raise UsageError(EXTRA_VALUE.format(action="start -n N", value=args.value))
        cmd.options = _start_options(args)
        cmd.n = cmd.options.get("n")
        cmd.gpus = cmd.options.get("gpus", "auto")
        if gpus_available is not None and cmd.options.get("launcher", "local") == "local":
            try:
                check_gpus_exist(parse_gpus(cmd.gpus), "this machine", range(gpus_available))
            except ValueError as e:
                raise UsageError(BAD_GPUS.format(error=e)) from None
    elif action == "scale":
        cmd.n = _positive_int(args.value, BAD_SCALE)
    elif action == "restart" and args.value is not None:
        try:
            cmd.rank = int(str(args.value).strip())
        except ValueError:
            raise UsageError(BAD_RESTART.format(value=args.value)) from None
        if world_size is not None and not 0 <= cmd.rank < world_size:
            raise UsageError(BAD_RESTART_RANK.format(rank=cmd.rank, last=world_size - 1))
    elif action in ("status", "stop") and args.value is not None:
        raise UsageError(EXTRA_VALUE.format(action=action, value=args.value))
    return cmd


@dataclass
class DistributedOptions:
    """A checked ``%%lepton_distributed`` line."""

    ranks: list[int]
    timeout: float | None = None
    gather: list[str] = field(default_factory=list)
    backend: str = "auto"
    stream: bool = True


def parse_distributed_line(
    line: str, world_size: int, gpu_ranks: bool = False
) -> DistributedOptions:
    """Check a ``%%lepton_distributed`` line against a cluster of ``world_size`` ranks."""
    args = parse_line(distributed_args, line, DISTRIBUTED_USAGE)
    try:
        ranks = parse_ranks(args.ranks, world_size)
    except ValueError as e:
        raise UsageError(BAD_RANKS.format(error=e)) from None
    timeout = None
    if args.timeout is not None:
        try:
            timeout = float(args.timeout)
        except ValueError:
            raise UsageError(BAD_TIMEOUT.format(value=args.timeout)) from None
        if not timeout > 0 or timeout == float("inf"):
            raise UsageError(BAD_TIMEOUT.format(value=args.timeout))
    gather: list[str] = []
    if args.gather is not None:
        for name in str(args.gather).split(","):
            name = name.strip()
            if not is_name(name):
                raise UsageError(BAD_GATHER.format(name=name))
            gather.append(name)
    backend = str(args.backend).strip().lower()
    if backend not in ("auto", "gloo", "nccl"):
        raise UsageError(BAD_BACKEND.format(value=args.backend))
    if backend == "nccl" and not gpu_ranks:
        raise UsageError(NCCL_NEEDS_GPUS)
    return DistributedOptions(ranks, timeout, gather, backend, not args.no_stream)


PUSH_USAGE = "Usage: %lepton_push NAME [NAME ...] [--ranks all|0,2|1-3] [--noblock]"
PULL_USAGE = "Usage: %lepton_pull NAME [--rank R]"
UNDEFINED_NAME = (
    "{name!r} is not defined in the notebook; define it first, or check the spelling. " + PUSH_USAGE
)
MISSING_NAMES = "Name what to push, e.g.: %lepton_push x y --ranks all"
BAD_PULL_RANK = "--rank must be a rank of the cluster (0-{last}), got {value!r}. Example: %lepton_pull x --rank 1"
BAD_NAME = "{name!r} is not a Python name. {usage}"


@magic_arguments("lepton_push")
@argument("names", nargs="*", help="notebook names to bind on the ranks")
@argument("--ranks", default="all", help="ranks to push to: all (default), 0,2 or 1-3")
@argument(
    "--noblock",
    action="store_true",
    help="return at once; the ranks' next cells still see the values",
)
def push_args(line: str) -> None:
    """Push notebook variables to the ranks, under the same names.

    Large arrays and CPU tensors are shared copy-on-write on this host and sent
    as compressed bytes to other hosts; unchanged data sends only its hash.
    """


@magic_arguments("lepton_pull")
@argument("name", nargs="?", default=None, help="the name to fetch")
@argument("--rank", default="0", help="the rank to fetch it from (default 0)")
def pull_args(line: str) -> None:
    """Fetch a variable from one rank and bind it in the notebook under the same name."""


@dataclass
class PushCommand:
    """A checked ``%lepton_push`` line."""

    names: list[str]
    ranks: list[int]
    block: bool = True


def parse_push_line(line: str, namespace: dict, world_size: int) -> PushCommand:
    """Check a ``%lepton_push`` line against the notebook namespace and the cluster."""
    args = parse_line(push_args, line, PUSH_USAGE)
    if not args.names:
        raise UsageError(MISSING_NAMES)
    for name in args.names:
        if not is_name(name):
            raise UsageError(BAD_NAME.format(name=name, usage=PUSH_USAGE))
        if name not in namespace:
            raise UsageError(UNDEFINED_NAME.format(name=name))
    try:
        ranks = parse_ranks(args.ranks, world_size)
    except ValueError as e:
        raise UsageError(BAD_RANKS.format(error=e)) from None
    return PushCommand(list(dict.fromkeys(args.names)), ranks, not args.noblock)


def parse_pull_line(line: str, world_size: int) -> tuple[str, int]:
    """Check a ``%lepton_pull`` line; returns (name, rank)."""
    args = parse_line(pull_args, line, PULL_USAGE)
    if args.name is None:
        raise UsageError("Name what to pull, e.g.: %lepton_pull x --rank 0")
    if not is_name(args.name):
        raise UsageError(BAD_NAME.format(name=args.name, usage=PULL_USAGE))
    try:
        rank = int(str(args.rank).strip())
    except ValueError:
        raise UsageError(BAD_PULL_RANK.format(last=world_size - 1, value=args.rank)) from None
    if not 0 <= rank < world_size:
        raise UsageError(BAD_PULL_RANK.format(last=world_size - 1, value=args.rank))
    return args.name, rank
