"""Pushes, scatters and pulls on a real cluster; /dev/shm is checked around every test."""

import os
import threading
import time

import ipyparallel
import numpy as np
import pytest
import torch

from lepton_nb import ClusterError, RemoteError
from lepton_nb.transfer import segment
from tests.support.kernels import wait_gone

#: /dev/shm's usage is checked around every test: nothing else may push meanwhile
pytestmark = pytest.mark.alone

CHECK_ON_RANK = (
    "from lepton_nb.transfer.content import as_array, content_key\n"
    "key = content_key(*as_array({name}))\n"
)


@pytest.fixture(autouse=True)
def no_leaked_segments():
    before = set(os.listdir("/dev/shm"))
    yield
    assert set(os.listdir("/dev/shm")) - before == set()
    assert segment.leftover_segments() == []


def keys_on_ranks(cluster, name):
    return cluster.execute(CHECK_ON_RANK.format(name=name), gather=["key"])["key"]


def key_of(value):
    from lepton_nb.transfer.content import as_array, content_key

    return content_key(*as_array(value))


def test_one_changed_byte_in_100_mb_reaches_every_rank(cluster):
    x = np.random.default_rng(0).random(100 * 2**20 // 8)
    cluster.push({"big": x})
    assert keys_on_ranks(cluster, "big") == [key_of(x)] * 2
    x[len(x) // 2] += 1.0  # in place
    info = cluster.cache_info()
    cluster.push({"big": x})
    assert cluster.cache_info()["misses"] == info["misses"] + 2
    got = cluster.execute(f"v = float(big[{len(x) // 2}])", gather=["v"])["v"]
    assert got == [x[len(x) // 2]] * 2
    assert keys_on_ranks(cluster, "big") == [key_of(x)] * 2


def test_back_to_back_fresh_copies_each_reach_every_rank(cluster):
    x = np.random.default_rng(5).random(80 * 2**20 // 8)  # above the two-thread hash size
    for i in range(3):
        x = x.copy()  # a new array each round, one element changed
        x[i * 1000] += 1.0
        cluster.push({"fresh": x})  # copied into shared memory while it is hashed
        assert keys_on_ranks(cluster, "fresh") == [key_of(x)] * 2
    info = cluster.cache_info()
    cluster.push({"fresh": x.copy()})  # equal bytes: the copy made meanwhile is not sent
    assert cluster.cache_info()["hits"] == info["hits"] + 2
    assert cluster.cache_info()["bytes_sent"] == info["bytes_sent"]


def test_a_change_after_an_unchanged_push_is_sent(cluster):
    x = np.arange(3_000_000, dtype=np.float64)
    cluster.push({"steady": x})
    cluster.push({"steady": x})  # unchanged: the next push is expected unchanged too
    x[-1] = -1.0  # in place
    cluster.push({"steady": x})
    assert cluster.execute("v = float(steady[-1])", gather=["v"])["v"] == [-1.0, -1.0]
    assert keys_on_ranks(cluster, "steady") == [key_of(x)] * 2


def test_unchanged_data_sends_only_its_hash(cluster):
    x = np.arange(2_000_000, dtype=np.float64)
    cluster.push({"same": x})
    before = cluster.cache_info()
    cluster.push({"same": x})
    cluster.push({"same": x.copy()})  # re-binding the name to an equal array
    after = cluster.cache_info()
    assert after["hits"] - before["hits"] == 4
    assert after["bytes_saved"] - before["bytes_saved"] == 4 * x.nbytes
    assert after["bytes_sent"] == before["bytes_sent"]
    assert after["misses"] == before["misses"]


def test_rebinding_a_name_to_new_content_is_sent(cluster):
    cluster.push({"rb": np.zeros(300_000)})
    cluster.push({"rb": np.ones(300_000)})
    assert cluster.execute("s = float(rb.sum())", gather=["s"])["s"] == [300_000.0] * 2


def test_each_rank_has_its_own_copy_without_copying(cluster):
    x = np.arange(4_000_000, dtype=np.float64)
    cluster.push({"cow": x})
    code = (
        "from lepton_nb.transfer.receive import is_shared\n"
        "shared = is_shared(cow)\n"
        "if rank == 1:\n    cow[0] = -1.0\n"
        "first = float(cow[0])\n"
    )
    got = cluster.execute(code, gather=["shared", "first"])
    assert got["shared"] == [True, True]
    assert got["first"] == [0.0, -1.0]  # rank 1's write is its own
    assert x[0] == 0.0  # and not the notebook's
    cluster.push({"cow": x})  # rank 1 wrote: its stale copy is replaced
    assert cluster.execute("first = float(cow[0])", gather=["first"])["first"] == [0.0, 0.0]
    assert keys_on_ranks(cluster, "cow") == [key_of(x)] * 2


def test_a_rank_that_rebinds_the_name_gets_the_value_again(cluster):
    x = np.arange(2_000_000, dtype=np.float64)
    cluster.push({"gone": x})
    cluster.execute("gone = None", ranks="0")
    cluster.push({"gone": x})
    assert cluster.execute("n = len(gone)", gather=["n"])["n"] == [len(x)] * 2


def test_torch_tensors_and_small_objects(cluster):
    t = torch.arange(1_000_000, dtype=torch.float32)
    cluster.push({"tt": t, "cfg": {"lr": 0.1}, "small": np.arange(3)})
    got = cluster.execute(
        "import torch\nok = (isinstance(tt, torch.Tensor), float(tt.sum()), cfg['lr'], small.tolist())",
        gather=["ok"],
    )
    assert got["ok"] == [(True, float(t.sum()), 0.1, [0, 1, 2])] * 2


def test_noblock_returns_a_future_and_the_next_cell_sees_the_value(cluster):
    x = np.random.default_rng(1).random(30_000_000)  # 240 MB
    start = time.perf_counter()
    fut = cluster.push({"later": x}, block=False)
    returned = time.perf_counter() - start
    assert returned < 0.2 and not fut.done()
    # ordering: this cell is sent after the push, whatever the timing
    assert cluster.execute("s = float(later[-1])", gather=["s"])["s"] == [x[-1]] * 2
    assert fut.wait(60) and fut.done()
    fut.result()


def test_notebook_keeps_working_during_a_noblock_push(cluster):
    x = np.random.default_rng(2).random(30_000_000)
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.01)

    fut = cluster.push({"bg": x}, block=False)
    t = threading.Thread(target=tick)
    t.start()
    fut.result(timeout=60)
    stop.set()
    t.join()
    assert len(ticks) >= 2


def test_push_to_some_ranks(cluster):
    cluster.push({"only1": np.full(200_000, 7.0)}, ranks="1")
    got = cluster.execute("has = 'only1' in globals()", gather=["has"])
    assert got["has"] == [False, True]


def test_scatter_gives_each_rank_its_slice_without_copying(cluster):
    data = np.arange(4_000_000, dtype=np.float32).reshape(-1, 4)
    cluster.scatter("shard", data)
    got = cluster.execute(
        "from lepton_nb.transfer.receive import is_shared\n"
        "m = is_shared(shard)\nrows = shard.shape\nfirst = float(shard[0, 0])",
        gather=["m", "rows", "first"],
    )
    assert got["rows"] == [(500_000, 4), (500_000, 4)]
    assert got["first"] == [0.0, 2_000_000.0]
    assert got["m"] == [True, True]
    cluster.scatter("cols", torch.arange(20.0).reshape(2, 10), axis=1)
    got = cluster.execute("import torch\nc = (type(cols).__name__, cols.tolist())", gather=["c"])
    assert got["c"][0] == ("Tensor", [[0.0, 1.0, 2.0, 3.0, 4.0], [10.0, 11.0, 12.0, 13.0, 14.0]])


def test_pull(cluster):
    cluster.execute("answer = rank * 21")
    assert cluster.pull("answer", rank=1) == 21
    assert cluster.pull("answer") == 0


def test_bad_input_errors(cluster):
    with pytest.raises(TypeError, match=r"cannot send 'lock' to the ranks: TypeError"):
        cluster.push({"lock": threading.Lock()})
    with pytest.raises(NameError, match=r"'not_there' is not defined on rank 1"):
        cluster.pull("not_there", rank=1)
    with pytest.raises(ClusterError, match="rank 5 does not exist"):
        cluster.push({"x": 1}, ranks="5")
    with pytest.raises(ValueError, match="is not a Python name"):
        cluster.push({"not a name": 1})
    with pytest.raises(TypeError, match="scatter needs a numpy array"):
        cluster.scatter("s", [1, 2, 3])
    assert cluster.execute("ok = 1", gather=["ok"]) == {"ok": [1, 1]}


@pytest.mark.slow
def test_engine_crash_after_a_push_leaves_no_segment(make_cluster):
    c = make_cluster(n=2)
    c.push({"x": np.ones(5_000_000)})
    os.kill(c.placement[1]["pid"], 9)
    with pytest.raises((ClusterError, RemoteError), match=r"[Rr]ank 1"):
        c.push({"y": np.ones(5_000_000)})  # rank 1 is gone: the push fails, naming it
    c.restart(1)
    c.push({"y": np.ones(5_000_000)})
    assert c.execute("n = len(y)", gather=["n"])["n"] == [5_000_000] * 2
    c.stop()


@pytest.mark.slow
def test_ranks_on_another_host_get_compressed_bytes(make_cluster, monkeypatch):
    monkeypatch.setenv("LEPTON_ENGINE_HOST", "elsewhere")  # the engines report another host
    c = make_cluster(n=2)
    assert {p["host"] for p in c.placement} == {"elsewhere"}
    x = np.tile(np.arange(1000, dtype=np.float64), 2000)  # compressible, 16 MB
    c.push({"x": x})
    info = c.cache_info()
    # one compressed copy for the host; its first rank shares it with the other
    assert info["shared_bytes"] == 0 and 0 < info["bytes_sent"] < x.nbytes
    got = c.execute(
        "from lepton_nb.transfer.receive import is_shared\nok = (float(x.sum()), is_shared(x))",
        gather=["ok"],
    )
    assert got["ok"] == [(float(x.sum()), True)] * 2
    c.push({"x": x})
    assert c.cache_info()["hits"] == info["hits"] + 2
    c.push({"z": x}, compression="zstd")
    c.push({"h": x.astype(np.float32) + 0.1}, compression="fp16")
    got = c.execute(
        "import numpy as np\nd = (float(np.abs(z - x).max()), str(h.dtype))", gather=["d"]
    )
    assert got["d"] == [(0.0, "float32")] * 2
    c.scatter("part", x)
    assert c.execute("n = len(part)", gather=["n"])["n"] == [len(x) // 2] * 2


def shm_used() -> int:
    st = os.statvfs("/dev/shm")
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@pytest.mark.slow
def test_shared_memory_is_freed_on_overwrite_crash_and_stop(make_cluster):
    mb = 2**20
    c = make_cluster(n=2)
    base = shm_used()
    c.push({"a": np.full(100 * mb // 8, 1.0)})
    c.transfer.settle(30)  # the spare segment is allocated in the background
    one = shm_used() - base
    assert 95 * mb < one < 215 * mb  # the pushed segment (+ one spare)
    c.push({"a": np.full(100 * mb // 8, 2.0)})  # overwrite: the ranks drop the old mapping
    c.transfer.settle(30)
    _until(lambda: shm_used() - base < 215 * mb, "the old segment freed by the ranks")
    pid = c.placement[1]["pid"]
    os.kill(pid, 9)  # a crash frees that rank's mapping, leaks nothing
    assert wait_gone([pid], 30)[0] == [], "the killed engine is still there"
    assert shm_used() - base < 215 * mb
    c.stop()
    assert shm_used() - base < 2 * mb  # stop waits for the engines to exit


def test_long_pushes_show_a_progress_bar(cluster, capfd, monkeypatch):
    monkeypatch.setattr(
        cluster.transfer, "progress_delay", 0.0
    )  # as if the push took over a second
    cluster.push({"bar": np.random.default_rng(3).random(4_000_000)})
    err = capfd.readouterr().err
    assert "push" in err and "32.0M" in err


def test_absent_shm_falls_back_to_the_spill_directory(cluster, tmp_path, monkeypatch):
    from lepton_nb.transfer import SpillWarning

    monkeypatch.setattr(cluster.transfer, "shm_dir", str(tmp_path / "no-shm"))
    monkeypatch.setattr(cluster.transfer, "spill_dir", str(tmp_path / "spill"))
    x = np.arange(1_000_000, dtype=np.float64)
    with pytest.warns(SpillWarning, match="cannot hold"):
        cluster.push({"spilled": x})
    assert cluster.execute("s = float(spilled.sum())", gather=["s"])["s"] == [float(x.sum())] * 2
    assert os.listdir(tmp_path / "spill") == []


def test_scatter_axis_and_compression_errors(cluster):
    with pytest.raises(ValueError, match=r"axis 2 is out of range for 'm' with shape \(4, 4\)"):
        cluster.scatter("m", np.zeros((4, 4)), axis=2)
    with pytest.raises(ValueError, match="unknown compression 'gzip'"):
        cluster.push({"z": np.zeros(10)}, compression="gzip")


def _first_of_x():
    """On a rank: the first element of its x."""
    from lepton_nb.engine.namespace import user_namespace

    return float(user_namespace()["x"][0])


def _until(check, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not so after {timeout:g} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_rank_killed_while_a_push_to_it_is_in_flight(make_cluster):
    mb = 2**20
    c = make_cluster(n=2)
    old, new = np.full(64 * mb // 8, 1.0), np.full(64 * mb // 8, 2.0)
    c.push({"x": old})
    c.transfer.settle(30)
    base = shm_used()
    e1, pid1 = c.placement[1]["engine_id"], c.placement[1]["pid"]
    busy = c.client[e1].apply_async(time.sleep, 60)  # rank 1 answers nothing of the push
    fut = c.push({"x": new}, block=False)
    # the push is in flight: a message of it waits on rank 1, behind the sleep
    _until(lambda: len(c.client.outstanding) >= 2, "a push message waiting on rank 1")
    os.kill(pid1, 9)
    with pytest.raises((RemoteError, ClusterError), match=r"[Rr]ank 1"):
        fut.result(60)
    with pytest.raises(ipyparallel.error.RemoteError, match="EngineError"):
        busy.get(10)
    # rank 0 holds the old value or the new one, whole, never a mix
    got = c.execute("s = (float(x.sum()), x.size)", ranks=[0], gather=["s"])["s"][0]
    assert got in [(float(old.sum()), old.size), (float(new.sum()), new.size)], got
    c.restart(1)  # and rank 1 comes back with nothing half bound
    assert c.execute("has = 'x' in dir()", gather=["has"])["has"] == [True, False]
    c.push({"x": new})
    assert c.execute("s = float(x.sum())", gather=["s"])["s"] == [float(new.sum())] * 2
    c.transfer.settle(30)
    _until(lambda: abs(shm_used() - base) < 4 * mb, "/dev/shm back to its baseline")


def test_a_push_larger_than_shm_and_spill_fails_before_anything_is_sent(cluster, tmpfs, monkeypatch):
    from lepton_nb.transfer import NoRoomError

    monkeypatch.setattr(cluster.transfer, "shm_dir", tmpfs("shm", "1m"))
    monkeypatch.setattr(cluster.transfer, "spill_dir", tmpfs("spill", "2m"))
    big = np.ones(4 * 2**20 // 8)  # 4 MiB: neither holds it
    sent = cluster.cache_info()["bytes_sent"]
    with pytest.raises(NoRoomError) as err:
        cluster.push({"too_big": big, "small": 1})
    message = str(err.value)
    assert "needs 4.0 MiB" in message and "1.0 MiB free" in message and "2.0 MiB free" in message
    assert "nothing was sent" in message
    assert cluster.cache_info()["bytes_sent"] == sent
    got = cluster.execute("held = [n for n in ('too_big', 'small') if n in dir()]", gather=["held"])
    assert got["held"] == [[], []]  # nothing half bound, on any rank
    monkeypatch.undo()
    cluster.push({"fits": big})
    assert cluster.execute("n = fits.size", gather=["n"])["n"] == [big.size] * 2
