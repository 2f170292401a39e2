"""The notebook side of data movement: push, scatter, pull, and the content cache.

A push asks the ranks what they already hold (read-only), then sends each rank
that needs anything one message, on the same stream as cells, so a rank's next
cell always sees the value. Large arrays go through a shared
segment when the rank is on this host, or as compressed bytes when it is not
(chosen from the placement's host). An array whose bytes have not changed
since the last push of that name to that rank, and which that rank still
holds intact (it reports so while the notebook hashes), is not sent at all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from ..cluster.job import Job
from ..errors import RemoteError
from ..links import NOTEBOOK, LinkCounter
from ..names import is_name
from . import hosts, messages, receive, segment
from .channel import DataChannel
from .codec import check_codec, encode, payload_bytes
from .content import ArrayMeta, as_array, meta_of
from .future import PushFuture
from .local import LocalCopy, Sketch, sketch
from .spare import Spare

if TYPE_CHECKING:  # pragma: no cover
    from ..cluster import Cluster
    from ..cluster.rankspec import RankSpec

#: Arrays at least this large (bytes) are shared or compressed, and cached by content.
DEFAULT_THRESHOLD = 1 << 20
#: Bytes per second assumed when sizing a push's timeout (generous on purpose).
_SLOWEST_RATE = 20e6


@dataclass
class _Array:
    arr: np.ndarray
    key: str
    meta: ArrayMeta


@dataclass
class _Round:
    ops: dict[int, list[tuple]] = field(default_factory=dict)
    local: dict[int, _Array] = field(default_factory=dict)  # id -> array for the segment
    local_users: list[tuple[int, str, int]] = field(default_factory=list)
    remote: dict[int, _Array] = field(default_factory=dict)  # id -> array for other hosts
    remote_users: list[tuple[int, str, int]] = field(default_factory=list)
    cached: dict[int, dict[str, str]] = field(default_factory=dict)  # what to cache on success
    sketches: dict[int, dict[str, Sketch]] = field(default_factory=dict)  # what was pushed


class Transfer:
    """Push, scatter and pull for one cluster, with a per-rank content cache."""

    def __init__(
        self,
        cluster: Cluster,
        threshold: int = DEFAULT_THRESHOLD,
        compression: str = "lz4",
        shm_dir: str = segment.SHM_DIR,
        spill_dir: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.threshold = threshold
        self.compression = check_codec(compression)
        self._shm_dir = shm_dir
        self.spill_dir = spill_dir
        self._cache: dict[int, dict[str, str]] = {}
        #: rank -> name -> a sketch of the array last pushed there (to guess whether it changed)
        self._sketches: dict[int, dict[str, Sketch]] = {}
        self.links = LinkCounter()  # bytes pushed to each rank, for cluster.link_bytes()
        self._stats = {"hits": 0, "misses": 0, "bytes_sent": 0, "bytes_saved": 0, "shared_bytes": 0}
        self._lock = threading.Lock()
        self._pending: list[PushFuture] = []
        #: one populated spare segment for the next push of new content, and those lent to ranks
        self.spare = Spare(lambda: self.cluster.running, shm_dir, self._local_pids)
        #: a progress bar shows once a push has taken this many seconds
        self.progress_delay = 1.0
        self._channel: DataChannel | None = None

    def open(self, ip: str, curve: bool) -> None:
        """Serve bytes for other hosts on ``ip`` (where the engines reach this host)."""
        if self._channel is None:
            self._channel = DataChannel(ip, curve)

    @property
    def shm_dir(self) -> str:
        """Where shared segments go (default /dev/shm); spill_dir when it cannot hold them."""
        return self._shm_dir

    @shm_dir.setter
    def shm_dir(self, folder: str) -> None:
        self._shm_dir = folder
        self.spare.shm_dir = folder
        self.spare.close()  # a spare made elsewhere is not wanted

    # -- public ---------------------------------------------------------------
    def push(
        self,
        values: dict[str, Any],
        ranks: RankSpec = None,
        block: bool = True,
        compression: str | None = None,
    ) -> PushFuture | None:
        """Bind ``values`` (name -> value) on the selected ranks.

        ``block=False`` returns a :class:`PushFuture` at once; the ranks' next
        cells still see the values. ``compression`` (between hosts): lz4
        (default), zstd, or the lossy fp16 / int8.
        """
        selected = self.cluster.select(ranks)
        self._check_names(values)
        return self._deliver({r: dict(values) for r in selected}, block, compression)

    def scatter(
        self, name: str, value: Any, axis: int = 0, block: bool = True
    ) -> PushFuture | None:
        """Shard an array or CPU tensor across ranks along ``axis``: rank r gets its slice."""
        self._check_names({name: value})
        found = as_array(value)
        if found is None:
            raise TypeError(
                f"scatter needs a numpy array or CPU tensor for {name!r}, got {type(value).__name__}"
            )
        arr, kind = found
        if not -arr.ndim <= axis < max(arr.ndim, 1):
            raise ValueError(f"axis {axis} is out of range for {name!r} with shape {arr.shape}")
        ranks = self.cluster.select(None)
        parts = np.array_split(arr, len(ranks), axis=axis)
        per_rank = {}
        for r, part in zip(ranks, parts):
            part = np.ascontiguousarray(part)
            per_rank[r] = {name: _Tagged(part, kind)}
        return self._deliver(per_rank, block, None)

    def pull(self, name: str, rank: int = 0) -> Any:
        """The value of ``name`` on ``rank``; NameError naming both if it is not defined there."""
        self.wait_sent()
        (r,) = self.cluster.select(rank)
        with self.cluster.activity():
            job = Job(self.cluster.client).apply(
                self.cluster.engines([r]), receive.value_of, args=(name,)
            )
            answered = job.wait(self.cluster.engine_timeout)
        if not answered:
            raise TimeoutError(
                f"rank {r} did not answer pull({name!r}) within {self.cluster.engine_timeout:g} s"
            )
        outcome = job.outcome()
        if r in outcome.failures:
            f = outcome.failures[r]
            if f.ename == "NameError":
                raise NameError(f"{name!r} is not defined on rank {r}")
            raise RemoteError([f])
        return outcome.results[r]

    def cache_info(self) -> dict[str, int]:
        """hits, misses, bytes_sent, bytes_saved, shared_bytes."""
        with self._lock:
            return dict(self._stats)

    def wait_sent(self, timeout: float | None = None) -> None:
        """Block until earlier non-blocking pushes are on the wire (ordering before later work)."""
        for fut in list(self._pending):
            fut.wait_sent(timeout)
        self._pending = [f for f in self._pending if not f.done()]

    def settle(self, timeout: float | None = None) -> None:
        """Wait for background work (freeing used segments, preparing the spare)."""
        self.spare.settle(timeout)

    def forget_rank(self, rank: int) -> None:
        """A rank restarted: nothing is cached there any more."""
        self._cache.pop(rank, None)
        self._sketches.pop(rank, None)

    def close(self, timeout: float = 30.0) -> None:
        """Wait briefly for pushes in flight; their segments are removed either way."""
        for fut in list(self._pending):
            fut.wait(timeout)
        self._pending.clear()
        self._cache.clear()
        self.spare.close()
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    # -- internals ------------------------------------------------------------
    @staticmethod
    def _check_names(values: dict[str, Any]) -> None:
        for name in values:
            if not is_name(name):
                raise ValueError(f"{name!r} is not a Python name to bind on the ranks")

    def _local_pids(self) -> list[int]:
        """Process ids of the ranks on this host (whose mappings tell a segment is free)."""
        table = self.cluster.ranks
        return [r.pid for r in table if table.is_local(r) and r.pid]

    def _check_picklable(self, per_rank: dict[int, dict[str, Any]]) -> None:
        from ipyparallel.serialize import serialize_object

        seen: set[int] = set()
        for values in per_rank.values():
            for name, value in values.items():
                if (
                    id(value) in seen
                    or isinstance(value, _Tagged)
                    or self._array(value) is not None
                ):
                    continue
                seen.add(id(value))
                try:
                    serialize_object(value)
                except Exception as e:
                    raise TypeError(
                        f"cannot send {name!r} to the ranks: {type(e).__name__}: {e}"
                    ) from None

    def _array(self, value: Any) -> tuple[np.ndarray, str] | None:
        found = value.pair if isinstance(value, _Tagged) else as_array(value)
        if found is None or found[0].nbytes < self.threshold:
            return None
        return found

    def _deliver(
        self, per_rank: dict[int, dict[str, Any]], block: bool, compression: str | None
    ) -> PushFuture | None:
        codec = check_codec(compression or self.compression)
        self._check_picklable(per_rank)
        self.wait_sent()
        fut = PushFuture()
        if block:
            self._run(fut, per_rank, codec)
            fut.result()
            return None
        self._pending.append(fut)
        threading.Thread(target=self._run, args=(fut, per_rank, codec), daemon=True).start()
        return fut

    def _run(self, fut: PushFuture, per_rank: dict[int, dict[str, Any]], codec: str) -> None:
        try:
            with self.cluster.activity():
                self._round(fut, per_rank, codec)
            fut.set_result()
        except BaseException as e:
            fut.set_exception(e)

    def _round(self, fut: PushFuture, per_rank: dict[int, dict[str, Any]], codec: str) -> None:
        table = self.cluster.ranks
        payloads: dict[int, dict[str, Any]] = {}
        rnd = _Round(ops={r: [] for r in per_rank}, cached={r: {} for r in per_rank},
                     sketches={r: {} for r in per_rank})  # fmt: skip
        stats = {"hits": 0, "misses": 0, "bytes_sent": 0, "bytes_saved": 0, "shared_bytes": 0}
        local = LocalCopy(self.spare, self.shm_dir, self.spill_dir)
        sending = False  # once True, ranks may map the segments
        bar: tqdm | None = None
        try:
            asked = {r: [n for n in values if n in self._cache.get(r, {})]
                     for r, values in per_rank.items()}  # fmt: skip
            probe_job = messages.probe(self.cluster, asked)  # they check while we hash
            described = self._describe_all(per_rank, local, rnd.sketches)
            probe = messages.collect(self.cluster, probe_job)
            total = sum(a.arr.nbytes for a in described.values() if a is not None)
            bar = progress = tqdm(total=total, unit="B", unit_scale=True, desc="push",
                                  delay=self.progress_delay, leave=False)  # fmt: skip
            for r, values in per_rank.items():
                cache = self._cache.setdefault(r, {})
                for name, value in values.items():
                    info = described[id(value)]
                    if info is None:
                        rnd.ops[r].append(("object", name, _plain(value)))
                        cache.pop(name, None)
                        continue
                    rnd.cached[r][name] = info.key
                    if cache.get(name) == info.key and probe.get(r, {}).get(name) == info.key:
                        stats["hits"] += 1  # the rank holds exactly these bytes: send nothing
                        stats["bytes_saved"] += info.arr.nbytes
                        continue
                    stats["misses"] += 1
                    if table.is_local(r):
                        rnd.local[id(value)] = info
                        rnd.local_users.append((r, name, id(value)))
                    else:
                        rnd.remote[id(value)] = info
                        rnd.remote_users.append((r, name, id(value)))
            direct, copies = hosts.plan(rnd.remote_users, lambda r: table[r].host)

            def payload(vid: int) -> dict[str, Any]:
                if vid not in payloads:
                    payloads[vid] = encode(rnd.remote[vid].arr, codec)
                    progress.update(rnd.remote[vid].arr.nbytes)
                return payloads[vid]

            for r, name, vid in direct:
                info, data = rnd.remote[vid], payload(vid)
                stats["bytes_sent"] += payload_bytes(data)
                self.links.add(NOTEBOOK, r, payload_bytes(data))
                rnd.ops[r].append(("bytes", name, info.key, data, info.meta))
            for copy in copies:  # the host's first rank gets the bytes once, for everyone there
                vids = list(dict.fromkeys(vid for _, _, vid in copy.users))
                items = [(str(v), rnd.remote[v].key, payload(v), rnd.remote[v].meta) for v in vids]
                sent = sum(payload_bytes(item[2]) for item in items)
                stats["bytes_sent"] += sent
                self.links.add(NOTEBOOK, copy.leader, sent)
                rnd.ops[copy.leader].append(("unpack", copy.host, items, copy.leader_binds()))
            if rnd.local:
                where = local.place({i: info.arr for i, info in rnd.local.items()})
                for r, name, i in rnd.local_users:
                    info, (seg, offset) = rnd.local[i], where[i]
                    self.links.add(NOTEBOOK, r, info.arr.nbytes)  # what the rank maps
                    rnd.ops[r].append(("shared", name, info.key, seg.path, offset, info.meta))
                shared = sum(info.arr.nbytes for info in rnd.local.values())
                stats["bytes_sent"] += shared
                stats["shared_bytes"] += shared
                progress.update(shared)
            timeout = self.cluster.engine_timeout + total / _SLOWEST_RATE
            sending = True
            peers = {r for c in copies for r, _, _ in c.peers()}
            job = messages.send(self.cluster, self._channel,
                                {r: ops for r, ops in rnd.ops.items() if r not in peers}, timeout)  # fmt: skip
            if copies:  # then the other ranks of those hosts map what their leader unpacked
                failed = job.outcome().failures
                if any(c.leader in failed for c in copies):
                    for r in {u[0] for c in copies for u in c.users}:
                        self._cache.pop(r, None)
                    raise RemoteError(list(failed.values()), job.outcome().results)
                unpacked = {c.host: (job.outcome().results.get(c.leader) or {}).get(c.host)
                            for c in copies}  # fmt: skip
                for c in copies:
                    found = unpacked[c.host]
                    if not found:
                        continue
                    for r, name, vid in c.peers():
                        info = rnd.remote[vid]
                        self.links.add(NOTEBOOK, r, info.arr.nbytes)  # what the rank maps
                        rnd.ops[r].append(("shared", name, info.key, found["path"],
                                           found["offsets"][str(vid)], info.meta))  # fmt: skip
                second = messages.send(self.cluster, self._channel,
                                       {r: rnd.ops[r] for r in peers}, timeout, job)  # fmt: skip
                messages.release(self.cluster, {c.leader: found["token"] for c in copies
                                                if (found := unpacked[c.host])})  # fmt: skip
                job = second
            fut.set_sent()
        finally:
            segments = local.finish(sending)
            for seg in segments:  # every rank has mapped it (or failed): let it go
                seg.release_name()
            if segments:
                self.spare.recycle(segments)
            if bar is not None:
                bar.close()
        outcome = job.outcome()
        for r, names in rnd.cached.items():
            if r in outcome.failures:
                self.forget_rank(r)
            else:
                self._cache.setdefault(r, {}).update(names)
                self._sketches.setdefault(r, {}).update(rnd.sketches[r])
        with self._lock:
            for k, v in stats.items():
                self._stats[k] += v
        if outcome.failures:
            raise RemoteError(list(outcome.failures.values()), outcome.results)

    def _describe_all(
        self,
        per_rank: dict[int, dict[str, Any]],
        local: LocalCopy,
        sketches: dict[int, dict[str, Sketch]],
    ) -> dict[int, _Array | None]:
        """id -> each value's array and content key, or None for a plain object.

        An array likely new on a rank of this host (its name not cached there, or unlike
        the sketch of what was last pushed under it) is copied into ``local``'s segment as
        it is hashed. ``sketches`` gets rank -> name -> sketch for the ranks of this host.
        """
        found: dict[int, tuple[np.ndarray, str] | None] = {}
        drawn: dict[int, Sketch] = {}
        likely_new: set[int] = set()
        for r, values in per_rank.items():
            if not self.cluster.ranks.is_local(r):
                continue
            cache, before = self._cache.get(r, {}), self._sketches.get(r, {})
            for name, value in values.items():
                vid = id(value)
                if vid not in found:
                    found[vid] = self._array(value)
                pair = found[vid]
                if pair is None:
                    continue
                if vid not in drawn:
                    drawn[vid] = sketch(pair[0])
                sketches[r][name] = drawn[vid]
                if name not in cache or before.get(name) != drawn[vid]:
                    likely_new.add(vid)
        for values in per_rank.values():
            for value in values.values():
                if id(value) not in found:
                    found[id(value)] = self._array(value)
        arrays = {vid: pair for vid, pair in found.items() if pair is not None}
        keys = local.keys(arrays, likely_new)
        return {
            vid: None if pair is None else _Array(pair[0], keys[vid], meta_of(*pair))
            for vid, pair in found.items()
        }


@dataclass
class _Tagged:
    """A scatter part that is already a contiguous numpy array, with the kind it came from."""

    arr: np.ndarray
    kind: str

    @property
    def pair(self) -> tuple[np.ndarray, str]:
        return self.arr, self.kind


__all__ = ["DEFAULT_THRESHOLD", "PushFuture", "Transfer"]


def _plain(value: Any) -> Any:
    """What a small scatter part is on the rank: the numpy array or torch tensor itself."""
    if not isinstance(value, _Tagged):
        return value
    from .content import rebuild

    return rebuild(value.arr.reshape(-1).view(np.uint8), meta_of(value.arr, value.kind))
