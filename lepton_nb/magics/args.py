"""Argument parsing for the magics: pure functions that raise UsageError.

Everything here runs before anything reaches an engine, so bad input costs
nothing and loses nothing.
"""

from __future__ import annotations

import keyword
import shlex
from dataclasses import dataclass, field

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ..placement import parse_gpus
from ..rankspec import parse_ranks

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
START_ONLY = "-n and --gpus belong to start. Example: %lepton_cluster start -n 2 --gpus none"
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


@magic_arguments()
@argument("action", nargs="?", default=None, help="start | status | scale | restart | stop")
@argument("value", nargs="?", default=None, help="N for scale, RANK for restart")
@argument("-n", dest="n", default=None, help="start: number of ranks (default: GPUs, else 2)")
@argument("--gpus", default=None, help="start: auto (default) | none | 0,1,...")
def cluster_args(line: str) -> None:
    """Start, inspect, resize, restart or stop the engine cluster.

    %lepton_cluster start [-n N] [--gpus auto|none|0,1,...]
    %lepton_cluster status
    %lepton_cluster scale N
    %lepton_cluster restart [RANK]
    %lepton_cluster stop
    """


@magic_arguments()
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


def _parse(spec, line: str, usage: str):  # noqa: ANN001 - IPython's decorated stub
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


@dataclass
class ClusterCommand:
    """A checked ``%lepton_cluster`` line."""

    action: str
    n: int | None = None
    gpus: str = "auto"
    rank: int | None = None


def parse_cluster_line(
    line: str, gpus_available: int, world_size: int | None = None
) -> ClusterCommand:
    """Check a ``%lepton_cluster`` line; raise UsageError saying what to type instead."""
    args = _parse(cluster_args, line, CLUSTER_USAGE)
    action = args.action
    if action is None:
        raise UsageError(MISSING_ACTION)
    if action not in ACTIONS:
        raise UsageError(UNKNOWN_ACTION.format(action=action))
    if action != "start" and (args.n is not None or args.gpus is not None):
        raise UsageError(START_ONLY)
    cmd = ClusterCommand(action)
    if action == "start":
        if args.value is not None:
            raise UsageError(EXTRA_VALUE.format(action="start -n N", value=args.value))
        cmd.n = None if args.n is None else _positive_int(args.n, BAD_N)
        cmd.gpus = args.gpus if args.gpus is not None else "auto"
        try:
            parse_gpus(cmd.gpus, gpus_available)
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
    args = _parse(distributed_args, line, DISTRIBUTED_USAGE)
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
            if not name.isidentifier() or keyword.iskeyword(name):
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


@magic_arguments()
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


@magic_arguments()
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
    args = _parse(push_args, line, PUSH_USAGE)
    if not args.names:
        raise UsageError(MISSING_NAMES)
    for name in args.names:
        if not name.isidentifier() or keyword.iskeyword(name):
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
    args = _parse(pull_args, line, PULL_USAGE)
    if args.name is None:
        raise UsageError("Name what to pull, e.g.: %lepton_pull x --rank 0")
    if not args.name.isidentifier() or keyword.iskeyword(args.name):
        raise UsageError(BAD_NAME.format(name=args.name, usage=PULL_USAGE))
    try:
        rank = int(str(args.rank).strip())
    except ValueError:
        raise UsageError(BAD_PULL_RANK.format(last=world_size - 1, value=args.rank)) from None
    if not 0 <= rank < world_size:
        raise UsageError(BAD_PULL_RANK.format(last=world_size - 1, value=args.rank))
    return args.name, rank
