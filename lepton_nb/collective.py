"""Collectives routed by the topology, compressed where the link is slow.

Inside a ``%%lepton_distributed`` cell (or any initialized torch.distributed
group, gloo or nccl)::

    from lepton_nb.collective import allreduce, comm_hook
    allreduce(t, compressor=None, op="sum")
    model.register_comm_hook(None, comm_hook(ErrorFeedback(TopK(0.01))))

With a compressor, every rank compresses its tensor, the payloads travel
around the ring the topology chose (an all-gather of sparse or quantized
payloads), and every rank sums them in rank order, so the result is the
same on every rank. When ranks span hosts the plan is hierarchical: reduce
within each host, exchange compressed payloads between the hosts' leaders,
broadcast back. Without a compressor, ranks that all share one host reduce
through a shared-memory segment (:mod:`lepton_nb.shm_allreduce`): exact, in
rank order, the same bits on every rank, and far faster than gloo's loopback
TCP; with one, they compress only where that measured faster when the group
formed (:attr:`lepton_nb.topology.Topology.measured`). Each byte sent is
counted in :mod:`lepton_nb.links`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from . import links
from .route import Route, current, release
from .shm_allreduce import DTYPES, ONE_STEP_BYTES, SharedGroup
from .topology import Plan, Topology

if TYPE_CHECKING:  # pragma: no cover - compress loads when a compressor is made, not here
    from .compress import Compressor, Payload

__all__ = [
    "OPS", "allreduce", "comm_hook", "group_facts", "last_plan", "release", "topology",
]  # fmt: skip

OPS = ("sum", "mean", "max", "min")

NOT_IN_GROUP = (
    "allreduce needs an initialized torch.distributed process group: call it inside "
    "a %%lepton_distributed cell or cluster.run(fn)"
)

#: The ops a compressed allreduce applies: its payloads are summed.
COMPRESSED_OPS = ("sum", "mean")

NO_COMPRESSED_OP = (
    "op={op!r} cannot be applied to compressed payloads (they are summed): "
    "pass compressor=None for {op!r}, or use op='sum' or 'mean'"
)
NOT_FLOAT = "a compressed allreduce needs a floating-point tensor, got {dtype}"
NO_DTYPE = "allreduce reduces tensors of {dtypes}; got {dtype}"
NO_INT_MEAN = (
    "op='mean' of an integer tensor ({dtype}) would not be an integer: "
    "use op='sum' and divide by the world size"
)

_REDUCE_OPS = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM,
               "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}  # fmt: skip

_last: dict[str, Plan] = {}


def topology() -> Topology:
    """The topology of the current process group (discovered once per group).

    Returns
    -------
    Topology
        The group's ranks, links, whether they share memory, and what was measured.

    Raises
    ------
    RuntimeError
        Outside an initialized torch.distributed process group.
    """
    return _route().topology


def last_plan() -> Plan | None:
    """The plan the last ``allreduce`` on this rank used, or None before the first."""
    return _last.get("plan")


def group_facts() -> tuple[bool, tuple[tuple[str, str, float], ...]]:
    """What this rank's current process group knows (for :func:`lepton_nb.topology.describe`).

    Returns
    -------
    tuple
        ``(shared_memory, measured)``: whether its ranks reduce through a shared-memory
        segment, and ``(link class, path, seconds)`` per path measured; ``(False, ())``
        before the group's first collective here, or outside a group.
    """
    route = current()
    if route is None:
        return False, ()
    topo = route.topology
    measured = tuple(
        (link, path, seconds) for link, paths in topo.measured.items() for path, seconds in paths.items()
    )
    return topo.shared_memory, measured


def _route() -> Route:
    route = current()
    if route is not None:
        return route
    if not dist.is_initialized():
        raise RuntimeError(NOT_IN_GROUP)
    return Route.form(_compressed_probe)


def allreduce(
    t: torch.Tensor,
    compressor: Compressor | None = None,
    op: str = "sum",
    *,
    key: Hashable | None = None,
    compress_links: frozenset[str] | None = None,
) -> torch.Tensor:
    """Reduce ``t`` in place across every rank and return it.

    Every rank of the process group must call it, as with any collective. The route is the
    plan of :meth:`lepton_nb.topology.Topology.plan` (see :func:`last_plan`); the result is
    identical on every rank.

    Without a compressor, ranks that all share one host reduce a CPU tensor through the
    shared-memory segment (exact: each element summed in rank order); other ranks use
    the backend's ``all_reduce``. With one, the plan compresses on the links in
    ``compress_links``; on shared memory, by default, only where that measured faster.

    Parameters
    ----------
    t : torch.Tensor
        The tensor, reduced in place: without a compressor, one of
        :data:`lepton_nb.shm_allreduce.DTYPES` (floating-point or integer); with one,
        floating-point.
    compressor : Compressor or None, optional
        None (the default: no compression), or a compressor from :mod:`lepton_nb.compress`
        (``TopK``, ``Int8``, ``FP16``, or one wrapped in ``ErrorFeedback``). It is applied
        on the plan's links whose class is in ``compress_links``.
    op : str, optional
        ``"sum"`` (the default), ``"mean"``, ``"max"`` or ``"min"`` (these two without a
        compressor only).
    key : Hashable or None, optional
        Under which key an ``ErrorFeedback`` compressor keeps this tensor's residual;
        default None: the tensor's storage.
    compress_links : frozenset of str or None, optional
        The link classes on which the compressor is applied; default None:
        :data:`lepton_nb.topology.COMPRESS_LINKS` (all but NVLink), on shared memory only
        where compressing measured faster than the dense reduce.

    Returns
    -------
    torch.Tensor
        ``t``, reduced.

    Raises
    ------
    TypeError
        If ``t`` is not a torch tensor, is of a dtype not reduced, is not floating-point
        with a compressor, or is an integer tensor with ``op="mean"``.
    ValueError
        If ``op`` is not one of :data:`OPS`, or is ``"max"`` or ``"min"`` with a compressor.
    RuntimeError
        Outside an initialized torch.distributed process group.
    lepton_nb.shm_allreduce.RankTimeout
        If a rank did not arrive at the shared-memory reduce within the group's timeout.
    lepton_nb.shm_allreduce.RankLost
        If a rank exited while the others waited for it there.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"allreduce needs a torch tensor, got {type(t).__name__}")
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    if compressor is not None:
        if op not in COMPRESSED_OPS:
            raise ValueError(NO_COMPRESSED_OP.format(op=op))
        if not t.is_floating_point():
            raise TypeError(NOT_FLOAT.format(dtype=t.dtype))
    elif t.dtype not in DTYPES:
        names = ", ".join(sorted(str(d).removeprefix("torch.") for d in DTYPES))
        raise TypeError(NO_DTYPE.format(dtypes=names, dtype=t.dtype))
    if op == "mean" and not t.is_floating_point():
        raise TypeError(NO_INT_MEAN.format(dtype=t.dtype))
    route = _route()
    plan = route.plan(compressor, compress_links)
    _last["plan"] = plan
    world = route.topology.world_size
    if world > 1:
        if compressor is None or not plan.compress:
            shared = route.shared
            if plan.shared_memory and shared is not None and t.device.type == "cpu" and t.dtype in DTYPES:
                _shared(t, shared, op, world)
            else:
                _plain(t, world, op)
        elif plan.hierarchical:
            _hierarchical(t, compressor, key, plan, route)
        else:
            _compressed(t, compressor, key, plan.ring, None, _bucket(plan.ring_link))
    if op == "mean":
        t.div_(world)
    return t


def comm_hook(
    compressor: Compressor | None = None,
) -> Callable[[Any, dist.GradBucket], torch.futures.Future[torch.Tensor]]:
    """A DDP communication hook that averages each gradient bucket with :func:`allreduce`.

    ``model.register_comm_hook(None, comm_hook(ErrorFeedback(TopK(0.01))))``;
    works on gloo and nccl. Each bucket keeps its own error-feedback residual. With no
    compressor, ranks on one host average each bucket through the shared-memory segment.

    Parameters
    ----------
    compressor : Compressor or None, optional
        The compressor :func:`allreduce` applies to each bucket; default None (none).

    Returns
    -------
    callable
        The hook, ``hook(state, bucket)``: it averages ``bucket``'s buffer in place and
        returns a completed ``torch.futures.Future`` holding it.
    """

    # no annotations here: DDP compares them with dist.GradBucket, and this module's are strings
    def hook(state, bucket):  # noqa: ANN001, ANN202
        buf = bucket.buffer()
        allreduce(buf, compressor, op="mean", key=("ddp-bucket", bucket.index()))
        fut: torch.futures.Future[torch.Tensor] = torch.futures.Future()
        fut.set_result(buf)
        return fut

    return hook


def _plain(t: torch.Tensor, world: int, op: str) -> None:
    """The backend's own all_reduce; counted as its ring sends: 2(W-1)/W of t per rank."""
    dist.all_reduce(t, op=_REDUCE_OPS[op])
    me = dist.get_rank()
    links.count(me, (me + 1) % world, 2 * (world - 1) * t.nbytes // world)


def _shared(t: torch.Tensor, shared: SharedGroup, op: str, world: int) -> None:
    """Through the shared-memory segment; counted as what each peer reads of ours.

    A peer reads all of a one-step tensor, and 2/W of a chunked one (its slice of our
    copy, and our slice of the result): for two ranks, ``t.nbytes`` either way.
    """
    flat = t if t.is_contiguous() else t.contiguous()
    shared.allreduce(flat, "sum" if op == "mean" else op)
    if flat is not t:
        t.copy_(flat)
    nbytes = t.nbytes if t.nbytes <= ONE_STEP_BYTES else 2 * t.nbytes // world
    me = shared.rank
    for peer in range(world):
        if peer != me:
            links.count(me, peer, nbytes)


def _compressed_probe(t: torch.Tensor, codec: Any, ring: list[int], link: str) -> None:
    """One compressed allreduce of ``t`` around ``ring``, its bytes not counted (a probe)."""
    _compressed(t, codec, ("lepton-probe",), ring, None, _bucket(link), count=False)


#: Elements per bucket: large tensors are compressed and sent bucket by bucket (as DDP's
#: gradient buckets are), so that compressing one bucket overlaps sending the one before.
#: That pays on a slow link; on a fast one each bucket's fixed costs outweigh the overlap,
#: so buckets are larger there. Measured with benchmarks/bench_allreduce.py, 100 MB across a
#: 1 Gbit/s link: 2M-value buckets 49-60 ms, 4M 39-47 ms, 8M 39 ms, 16M 40-41 ms.
BUCKET = 1 << 25
BUCKET_ON_LINK: dict[str, int] = {"network": 1 << 23}


def _bucket(link: str) -> int:
    return min(BUCKET, BUCKET_ON_LINK.get(link, BUCKET))


def _compressed(
    t: torch.Tensor,
    compressor: Compressor,
    key: Hashable | None,
    ring: list[int],
    group: dist.ProcessGroup | None,
    bucket: int,
    count: bool = True,
) -> None:
    """All-gather every member's payloads around ``ring``; each sums them in rank order.

    Each bucket of ``t`` is compressed on its own (with its own error-feedback
    residual); its ring exchange starts at once and runs while the next bucket
    is compressed. ``count=False`` leaves :mod:`lepton_nb.links` alone (a probe).
    """
    flat = t.view(-1) if t.is_contiguous() else t.reshape(-1)
    key = key if key is not None else ("tensor", t.data_ptr())
    exchanges = []
    for i, lo in enumerate(range(0, flat.numel(), bucket)):
        part = flat[lo : lo + bucket]
        payload = compressor.compress(part, key if lo == 0 else (key, i))
        exchanges.append(_RingExchange(payload, ring, group, tag=i, count=count))
        for ex in exchanges[:-1]:
            ex.advance(block=False)
    order = sorted(ring)
    for i, ex in enumerate(exchanges):
        part = flat[i * bucket : (i + 1) * bucket]
        out = part if part.dtype == torch.float32 else torch.empty_like(part, dtype=torch.float32)
        out.zero_()  # t's values are in the payload and the residual now
        first = _early(ex.payload, order, ex.me)
        if first is not None:  # sum our own payload while the others are still on the way
            compressor.accumulate(ex.payload, out)
        ex.finish()
        for member in order:
            if member != first:
                compressor.accumulate(ex.payload_of(member), out)
        if out is not part:
            part.copy_(out)
    if flat.data_ptr() != t.data_ptr():  # t was not contiguous
        t.copy_(flat.view(t.shape))


def _early(payload: Payload, order: list[int], me: int) -> int | None:
    """``me`` if our payload can be summed before the others' without changing the result.

    Sums run in rank order so every rank gets the same bits. Ours may go first when it
    is first anyway, or when there are two payloads of plain additions (top-k, fp16):
    0 + a + b equals 0 + b + a exactly. (int8's q * scale may fuse into an FMA.)
    """
    if order[0] == me or (len(order) == 2 and payload.codec in ("topk", "fp16")):
        return me
    return None


class _RingExchange:
    """One payload's all-gather around a ring, advanced step by step without blocking."""

    def __init__(
        self,
        payload: Payload,
        ring: list[int],
        group: dist.ProcessGroup | None,
        tag: int,
        count: bool = True,
    ) -> None:
        self.payload = payload
        self.ring, self.group, self.tag, self.count = ring, group, tag, count
        self.me = dist.get_rank()
        self.pos = ring.index(self.me)
        self.next = ring[(self.pos + 1) % len(ring)]
        self.prev = ring[(self.pos - 1) % len(ring)]
        self.mine = payload.tensor()
        self.held: list[torch.Tensor | None] = [None] * len(ring)
        self.held[self.pos] = self.mine
        self.step = 0
        self.works: list[dist.Work] = []
        self._start_step()

    def _start_step(self) -> None:
        m = len(self.ring)
        if self.step >= m - 1:
            self.works = []
            return
        send, recv = (self.pos - self.step) % m, (self.pos - self.step - 1) % m
        outgoing = self.held[send]
        assert outgoing is not None  # ours at step 0, else received in the step before
        incoming = self.held[recv] = torch.empty_like(self.mine)
        tag = self.tag * m + self.step
        ops = [
            dist.P2POp(dist.isend, outgoing, self.next, self.group, tag),
            dist.P2POp(dist.irecv, incoming, self.prev, self.group, tag),
        ]
        self.works = dist.batch_isend_irecv(ops)
        if self.count:
            links.count(self.me, self.next, self.payload.nbytes)

    def advance(self, block: bool) -> None:
        """Start the next ring steps whose predecessors are done (all of them if ``block``)."""
        while self.works:
            if not block and not all(w.is_completed() for w in self.works):
                return
            for w in self.works:
                w.wait()
            self.step += 1
            self._start_step()

    def finish(self) -> None:
        """Run the remaining ring steps to the end."""
        self.advance(block=True)

    def payload_of(self, member: int) -> Payload:
        """The payload ``member`` sent (after :meth:`finish`)."""
        i = self.ring.index(member)
        return self.payload if i == self.pos else self.payload.like(self.held[i])


def _hierarchical(
    t: torch.Tensor, compressor: Compressor, key: Hashable | None, plan: Plan, route: Route
) -> None:
    """Reduce within each host, exchange compressed between the leaders, broadcast back."""
    me = dist.get_rank()
    host = route.topology.ranks[me].host
    members = plan.groups[host]
    leader = members[0]
    local = route.host_groups[host]
    if len(members) > 1:
        dist.reduce(t, dst=leader, group=local)
        if me != leader:
            links.count(me, leader, t.nbytes)
    if me == leader:
        bucket = _bucket(plan.ring_link)
        _compressed(t, compressor, key, plan.leaders, route.leader_group, bucket)
    if len(members) > 1:
        dist.broadcast(t, src=leader, group=local)
        if me == leader:
            for m in members[1:]:
                links.count(me, m, t.nbytes)
