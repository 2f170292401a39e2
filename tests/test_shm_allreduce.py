"""The same-host shared-memory allreduce on real gloo process groups (spawned processes):
exact and bit-identical for every op and dtype, freed on destroy and on a crash, and a
rank that never arrives (or dies) named in a clear error instead of a hang."""

from __future__ import annotations

import functools
import hashlib
import multiprocessing as mp
import os
import time
from datetime import timedelta

import pytest
import torch

from lepton_nb.engine import free_port
from lepton_nb.shm_allreduce import CHUNK, DTYPES, ONE_STEP_BYTES

#: lists all of /dev/shm, and times how soon a missing rank is noticed
pytestmark = pytest.mark.alone

#: Element counts for every dtype: odd ones, and one above the one-step limit for most.
SIZES = (1, 7, 1000, 70_001)
#: Dtypes also reduced over several chunks with a remainder (2.5 chunks and 3 elements).
CHUNKED = (torch.float32, torch.bfloat16, torch.int8)
OPS = ("sum", "mean", "max", "min")


def _sizes(dtype: torch.dtype) -> tuple[int, ...]:
    item = torch.empty(0, dtype=dtype).element_size()
    return SIZES + ((5 * CHUNK // item // 2 + 3,) if dtype in CHUNKED else ())


def _init(rank: int, world: int, port: int, timeout_s: float = 30) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=timeout_s),
    )


def _shm_mappings() -> list[str]:
    """This process's mappings of files in /dev/shm (an unnamed segment shows as '#n (deleted)')."""
    with open("/proc/self/maps") as f:
        return [line.split(None, 5)[-1].strip() for line in f if "/dev/shm/" in line]


def _shm_fds() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/dev/shm/"):
            out.append(target)
    return out


@functools.lru_cache(maxsize=64)
def _inputs(rank: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 * rank + n)
    if dtype.is_floating_point:
        wide = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        return (torch.randn(n, generator=gen, dtype=wide) * 100).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(info.min, info.max, (n,), generator=gen, dtype=torch.int64).to(dtype)


def _data(rank: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    return _inputs(rank, n, dtype).clone()


def _expected(world: int, n: int, dtype: torch.dtype, op: str) -> torch.Tensor:
    """Rank 0 op rank 1 op ..., left to right, in ``dtype``."""
    out = _inputs(0, n, dtype)
    for r in range(1, world):
        x = _inputs(r, n, dtype)
        if op in ("sum", "mean"):
            out = out + x
        else:
            out = torch.maximum(out, x) if op == "max" else torch.minimum(out, x)
    if op == "mean":
        out = out / world
    return out


def _battery(rank: int, world: int, port: int, out: str) -> None:
    import gc

    import torch.distributed as dist

    from lepton_nb import collective

    _init(rank, world, port)
    report: dict = {"wrong": [], "digests": {}}
    plan = None
    for dtype in sorted(DTYPES, key=str):
        for n in _sizes(dtype):
            for op in OPS:
                if op == "mean" and not dtype.is_floating_point:
                    continue
                t = _data(rank, n, dtype)
                got = collective.allreduce(t, op=op)
                plan = str(collective.last_plan())
                if got is not t or not torch.equal(t, _expected(world, n, dtype, op)):
                    report["wrong"].append((str(dtype), n, op))
                digest = hashlib.sha1(t.view(torch.uint8).numpy().tobytes()).hexdigest()
                report["digests"][(str(dtype), n, op)] = digest
    odd = torch.arange(12.0).view(3, 4).t()  # not contiguous
    collective.allreduce(odd)
    report["odd"] = odd.clone()
    report["plan"] = plan
    report["mapped"] = _shm_mappings()
    report["fds"] = _shm_fds()
    dist.destroy_process_group()
    gc.collect()
    report["mapped_after"] = _shm_mappings()
    report["fds_after"] = _shm_fds()
    torch.save(report, f"{out}/{rank}.pt")


def _spawn(target, world: int, *args) -> list[mp.Process]:
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=target, args=(r, world, port, *args)) for r in range(world)]
    for p in procs:
        p.start()
    return procs


def _join(procs: list[mp.Process], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(timeout=max(0.1, deadline - time.monotonic()))
    alive = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert not alive, f"ranks {alive} still running after {timeout:.0f} s"


def _shm_names() -> set[str]:
    return set(os.listdir("/dev/shm"))


def test_every_op_and_dtype_is_exact_identical_and_freed_on_destroy(tmp_path):
    assert 70_001 * 4 > ONE_STEP_BYTES and _sizes(torch.int8)[-1] > 2 * CHUNK
    world, names = 3, _shm_names()
    _join(_spawn(_battery, world, str(tmp_path)), timeout=180)
    got = [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in range(world)]
    for r, report in enumerate(got):
        assert report["wrong"] == [], f"rank {r}: not the rank-order result for {report['wrong']}"
        assert report["digests"] == got[0]["digests"]  # the same bits on every rank
        assert torch.equal(report["odd"], torch.arange(12.0).view(3, 4).t() * world)
        assert "through a shared-memory segment" in report["plan"]
        assert len(report["mapped"]) == world  # every rank's segment, unnamed
        assert all(m.endswith("(deleted)") for m in report["mapped"])
        assert len(report["fds"]) <= world  # at most the descriptor each mmap object keeps
        assert report["mapped_after"] == [] and report["fds_after"] == []  # destroy freed them
    assert _shm_names() == names  # nothing named was ever left in /dev/shm


def _killed(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from lepton_nb import collective
    from lepton_nb.shm_allreduce import RankLost

    _init(rank, world, port, timeout_s=60)
    collective.allreduce(torch.ones(10))
    if rank == 1:
        open(f"{out}/ready", "w").close()
        time.sleep(120)  # killed by the test
        return
    while not os.path.exists(f"{out}/killed"):
        time.sleep(0.01)
    start = time.monotonic()
    try:
        collective.allreduce(torch.ones(100_000))
        error = None
    except RankLost as e:
        error = str(e)
    waited = time.monotonic() - start
    collective.release()
    during = _shm_mappings()
    dist.destroy_process_group()
    torch.save((error, waited, during, _shm_fds()), f"{out}/0.pt")


def test_a_killed_rank_is_named_and_leaves_no_segment(tmp_path):
    names = _shm_names()
    procs = _spawn(_killed, 2, str(tmp_path))
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert time.monotonic() < deadline, "rank 1 never got ready"
            assert procs[1].is_alive()
            time.sleep(0.01)
        pid = procs[1].pid
        procs[1].kill()
        procs[1].join()
        (tmp_path / "killed").touch()
        _join(procs, timeout=60)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    error, waited, mapped, fds = torch.load(tmp_path / "0.pt", weights_only=False)
    assert error is not None and f"rank 1 (pid {pid}) exited before arriving" in error
    assert waited < 5  # noticed, not waited out (the group's timeout is 60 s)
    assert mapped == [] and fds == []  # the survivor let go of both segments
    assert _shm_names() == names


def _late(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from lepton_nb import collective
    from lepton_nb.shm_allreduce import RankTimeout

    _init(rank, world, port, timeout_s=2)
    collective.allreduce(torch.ones(10))
    if rank == 1:  # never arrives; stays alive past rank 0's timeout
        while not os.path.exists(f"{out}/0.pt"):
            time.sleep(0.05)
        return
    start = time.monotonic()
    try:
        collective.allreduce(torch.ones(10))
        error = None
    except RankTimeout as e:
        error = str(e)
    waited = time.monotonic() - start
    try:
        collective.allreduce(torch.ones(10))
        after = None
    except RuntimeError as e:
        after = str(e)
    collective.release()
    dist.destroy_process_group()
    torch.save((error, waited, after), f"{out}/0.tmp")
    os.rename(f"{out}/0.tmp", f"{out}/0.pt")


def test_a_rank_that_never_arrives_times_out_with_its_name(tmp_path):
    procs = _spawn(_late, 2, str(tmp_path))
    _join(procs, timeout=90)
    error, waited, after = torch.load(tmp_path / "0.pt", weights_only=False)
    assert error is not None and "rank 1 (pid " in error and "did not arrive within 2 s" in error
    assert 2 <= waited < 4
    assert after is not None and "stopped after an error" in after  # never a silent hang later

