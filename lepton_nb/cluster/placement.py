"""Placing ranks from what the engines report: rank numbers, local ranks, GPUs and threads.

Ranks are numbered so that each host's ranks are contiguous, hosts in the
order they first appear, and within a host in launcher order (local index,
then process index). Each new engine gets the first GPU it may use that no
other rank on its host holds; a rank keeps its GPU for its whole life, so a
scale never moves a GPU under a running engine. An engine whose Python,
torch or lepton_nb differs from the notebook's is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Union

from ..engine.identity import EngineReport
from ..errors import ClusterError, RankState
from .ranks import RankRecord

GpuSpec = Union[str, Sequence[int]]

VERSION_MISMATCH = (
    "the engine on {host} (pid {pid}) runs {what} {theirs}, but the notebook runs {ours}. "
    "Every host must run the same environment: install the same versions there, or point "
    "the cluster at the right interpreter (python=..., c.Cluster.python)."
)
TOO_MANY_RANKS = (
    "{host} has {count} GPU(s) ({gpus}) for {ranks} ranks: ask for at most {count} ranks "
    "per host there (--ranks-per-node / hosts), or use --gpus none for CPU ranks"
)
NO_SUCH_GPU = (
    "GPU {gpu} is not there: {host} has {have}. Use --gpus auto, or --gpus none for CPU ranks."
)
WRONG_HOST = (
    "rank {rank} was restarted on {host}, but no new engine registered from there "
    "(new engines came from: {came})"
)


@dataclass(frozen=True)
class Registered:
    """An engine that has registered and reported, not yet a rank."""

    engine_id: int
    engine_set: str
    report: EngineReport
    seq: int = 0  # the order its engine set was launched in

    def order(self) -> tuple[int, int, int, int]:
        launch = self.report.launch
        local = launch.local_index if launch.local_index is not None else 1 << 30
        proc = launch.proc_index if launch.proc_index is not None else 1 << 30
        return (self.seq, local, proc, self.engine_id)


def notebook_versions() -> dict[str, str | None]:
    """The versions an engine must match: Python (major.minor), torch and lepton_nb."""
    from .. import __version__

    try:
        torch: str | None = metadata.version("torch")
    except metadata.PackageNotFoundError:  # pragma: no cover - torch is a dependency
        torch = None
    return {"python": f"{sys.version_info[0]}.{sys.version_info[1]}", "torch": torch,
            "lepton_nb": __version__}  # fmt: skip


def version_problem(report: EngineReport, ours: dict[str, str | None]) -> str | None:
    """Why an engine must be refused, naming its host and both versions; None if it matches."""
    theirs = report.versions()
    for what in ("python", "torch", "lepton_nb"):
        if theirs[what] != ours[what]:
            return VERSION_MISMATCH.format(
                host=report.host, pid=report.pid, what=what, theirs=theirs[what], ours=ours[what]
            )
    return None


def parse_gpus(spec: GpuSpec) -> list[int] | str:
    """``"auto"``, ``"none"``, or a list of GPU indices (from ``[0, 1]`` or ``"0,1"``).

    Raises ValueError saying what is accepted.
    """
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("auto", "none"):
            return text
        try:
            spec = [int(p) for p in text.split(",")]
        except ValueError:
            raise ValueError(
                f"--gpus must be auto, none or a list like 0,1; got {spec!r}"
            ) from None
    try:
        indices = [int(i) for i in spec]
    except (TypeError, ValueError):
        raise ValueError(f"--gpus must be auto, none or a list like 0,1; got {spec!r}") from None
    if not indices:
        raise ValueError("--gpus needs at least one GPU index, or auto / none")
    if any(i < 0 for i in indices):
        raise ValueError(f"--gpus takes GPU indices of 0 or more; got {spec!r}")
    if len(set(indices)) != len(indices):
        raise ValueError(f"--gpus lists a GPU twice: {spec!r}")
    return indices


def check_gpus_exist(gpus: list[int] | str, host: str, available: Sequence[int]) -> None:
    """ValueError naming the first listed GPU that ``host`` does not have."""
    if isinstance(gpus, str):
        return
    for g in gpus:
        if g not in available:
            raise ValueError(NO_SUCH_GPU.format(gpu=g, host=host, have=_have(available)))


def _have(gpus: Sequence[int]) -> str:
    """``no GPU``, ``GPUs 0-3`` or ``GPUs 2,5``."""
    gpus = list(gpus)
    if not gpus:
        return "no GPU"
    if gpus == list(range(len(gpus))) and len(gpus) > 1:
        return f"GPUs 0-{len(gpus) - 1}"
    return ("GPU " if len(gpus) == 1 else "GPUs ") + ",".join(str(g) for g in gpus)


def _choose_gpu(report: EngineReport, gpus: list[int] | str, taken: set[int], ranks: int) -> int | None:
    """The first GPU this engine may use that no rank on its host holds; None for a CPU rank."""
    if gpus == "none":
        return None
    usable = list(report.gpus)
    if not isinstance(gpus, str):
        try:
            check_gpus_exist(gpus, report.host, usable)
        except ValueError as e:
            raise ClusterError(str(e)) from None
        usable = [g for g in usable if g in gpus]
    if not usable:
        return None  # gpus="auto" on a host with no GPU: a CPU rank
    free = [g for g in usable if g not in taken]
    if not free:
        raise ClusterError(TOO_MANY_RANKS.format(host=report.host, count=len(usable),
                                                 gpus=_have(usable), ranks=ranks))  # fmt: skip
    return free[0]


def place(
    existing: Sequence[RankRecord],
    new: Sequence[Registered],
    gpus: list[int] | str,
) -> list[RankRecord]:
    """The ranks after ``new`` engines join ``existing`` ones (start or scale up).

    Hosts keep the order of their first rank; new hosts follow. Every host's
    ranks are contiguous; existing ranks keep their order, new engines go
    after them on their host in launcher order. Raises ClusterError before any
    group forms when a host has more ranks than GPUs.
    """
    hosts: dict[str, list[RankRecord | Registered]] = {}
    for rec in existing:
        hosts.setdefault(rec.host, []).append(rec)
    for reg in sorted(new, key=Registered.order):
        hosts.setdefault(reg.report.host, []).append(reg)
    out: list[RankRecord] = []
    for members in hosts.values():
        taken = {m.gpu for m in members if isinstance(m, RankRecord) and m.gpu is not None}
        threads = max(1, _host_cpus(members) // len(members))
        for local, m in enumerate(members):
            rank = len(out)
            if isinstance(m, RankRecord):
                out.append(m.with_(rank=rank, local_rank=local))
                continue
            gpu = _choose_gpu(m.report, gpus, taken, len(members))
            if gpu is not None:
                taken.add(gpu)
            out.append(RankRecord(rank, local, m.engine_id, m.engine_set, m.report, gpu, threads))
    return out


def replace_ranks(
    existing: Sequence[RankRecord], restarted: Sequence[int], new: Sequence[Registered]
) -> list[RankRecord]:
    """``existing`` with each ``restarted`` rank now held by a new engine from the same host.

    The rank keeps its number, local rank and GPU.
    """
    pool = sorted(new, key=Registered.order)
    out = list(existing)
    for r in sorted(restarted):
        old = existing[r]
        match = next((reg for reg in pool if reg.report.host == old.host), None)
        if match is None:
            came = ", ".join(sorted({reg.report.host for reg in pool})) or "nowhere"
            raise ClusterError(WRONG_HOST.format(rank=r, host=old.host, came=came))
        pool.remove(match)
        gpu = old.gpu
        if gpu is not None and gpu not in match.report.gpus:  # its binding changed: a free one
            taken = {o.gpu for o in out if o.host == old.host and o.rank != r and o.gpu is not None}
            host_ranks = sum(1 for o in out if o.host == old.host)
            gpu = _choose_gpu(match.report, list(match.report.gpus), taken, host_ranks)
        out[r] = old.with_(engine_id=match.engine_id, engine_set=match.engine_set,
                           report=match.report, gpu=gpu, state=RankState.IDLE)  # fmt: skip
    return out


def _host_cpus(members: Sequence[RankRecord | Registered]) -> int:
    first = members[0]
    return max(1, first.report.cpus)
