import os

import pytest

import lepton_nb
from lepton_nb import ClusterError, RemoteError


def _allreduce_rank_plus_one():
    import torch
    import torch.distributed as dist

    t = torch.full((4,), float(lepton_nb.rank() + 1))
    dist.all_reduce(t)
    return t.tolist()


def _whoami():
    import os

    import torch.distributed as dist

    return {
        "rank": lepton_nb.rank(),
        "world_size": lepton_nb.world_size(),
        "local_rank": lepton_nb.local_rank(),
        "device": str(lepton_nb.get_device()),
        "pid": os.getpid(),
        "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "group": dist.is_initialized() and dist.get_world_size(),
        "backend": dist.get_backend(),
    }


def test_start_gives_placement_one_dict_per_rank(cluster):
    assert cluster.running and cluster.world_size == 2
    placement = cluster.placement
    assert [p["rank"] for p in placement] == [0, 1]
    assert {p["device"] for p in placement} == {"cpu"}
    assert len({p["pid"] for p in placement}) == 2
    assert len({p["engine_id"] for p in placement}) == 2
    keys = {"rank", "engine_id", "host", "addr", "local_rank", "pid", "device", "gpu"}
    assert all(set(p) == keys for p in placement)
    assert [(p["local_rank"], p["addr"]) for p in placement] == [(0, "127.0.0.1"), (1, "127.0.0.1")]
    assert isinstance(cluster.client, __import__("ipyparallel").Client)
    assert cluster.backend == "gloo"


def test_ranks_know_themselves_and_the_group_is_up(cluster):
    info = cluster.run(_whoami)
    assert [i["rank"] for i in info] == [0, 1]
    assert [i["world_size"] for i in info] == [2, 2]
    assert [i["local_rank"] for i in info] == [0, 1]
    assert [i["device"] for i in info] == ["cpu", "cpu"]
    assert [i["pid"] for i in info] == [p["pid"] for p in cluster.placement]
    assert all(i["cuda_visible"] == "" and i["group"] == 2 for i in info)
    assert {i["backend"] for i in info} == {"gloo"}


def test_run_returns_values_ordered_by_rank_and_all_reduce_works(cluster):
    assert cluster.run(_allreduce_rank_plus_one) == [[3.0] * 4, [3.0] * 4]
    assert cluster.run(pow, 2, exp=3) == [8, 8]


def _fail_on_rank_one():
    if lepton_nb.rank() == 1:
        raise ValueError("rank one refuses")
    return "fine"


def test_run_error_names_the_rank_and_keeps_other_results(cluster):
    with pytest.raises(RemoteError) as info:
        cluster.run(_fail_on_rank_one)
    err = info.value
    assert err.ranks == [1]
    assert "rank 1: ValueError: rank one refuses" in str(err)
    assert err.results == {0: "fine"}
    assert "ValueError" in err.failures[0].traceback
    assert cluster.run(lambda: 1) == [1, 1]  # still usable


def test_get_cluster_is_the_running_one(cluster):
    assert lepton_nb.get_cluster() is cluster


def test_rank_functions_off_a_rank_explain_themselves():
    with pytest.raises(RuntimeError, match="not a lepton_nb rank"):
        lepton_nb.rank()


def test_bad_arguments_are_refused_before_anything_starts():
    with pytest.raises(ClusterError, match="positive number of ranks"):
        lepton_nb.Cluster(n=0)
    with pytest.raises(ClusterError, match="GPU 7 is not there"):
        lepton_nb.Cluster(n=1, gpus=[7]).start()


def test_startup_timeout_says_what_failed():
    c = lepton_nb.Cluster(n=1, gpus="none", engine_timeout=0.01)
    with pytest.raises(ClusterError, match=r"did not register within 0.01 s"):
        c.start()
    assert not c.running and lepton_nb.get_cluster() is not c


@pytest.mark.slow
def test_context_manager_scale_and_restart(make_cluster, cluster):
    import psutil

    with lepton_nb.Cluster(n=1, gpus="none") as c:
        assert lepton_nb.get_cluster() is c
        assert c.run(_whoami)[0]["world_size"] == 1
        c.scale(3)
        assert c.world_size == 3
        assert [i["world_size"] for i in c.run(_whoami)] == [3, 3, 3]
        assert c.run(_allreduce_rank_plus_one)[2] == [6.0] * 4
        c.scale(2)
        assert [i["group"] for i in c.run(_whoami)] == [2, 2]
        old = c.placement[1]["pid"]
        c.run(lambda: globals().__setitem__("kept", 1))
        c.restart(1)
        new = c.placement[1]["pid"]
        assert new != old and not psutil.pid_exists(old)
        assert c.run(_allreduce_rank_plus_one) == [[3.0] * 4] * 2
        pids = [p["pid"] for p in c.placement]
    assert not c.running
    assert not any(psutil.pid_exists(p) for p in pids)
    assert lepton_nb.get_cluster() is cluster


def test_engines_have_their_own_thread_budget(cluster):
    # a value the user set is passed through unchanged; otherwise cores are shared evenly
    expected = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // 2))
    threads = cluster.run(lambda: __import__("os").environ.get("OMP_NUM_THREADS"))
    assert threads == [expected] * 2
    # torch and numpy were imported while the engines registered (before the share was
    # known): their thread pools were given the share afterwards
    assert cluster.run(_threads_in_use) == [(int(expected), [int(expected)])] * 2


def _threads_in_use():
    import threadpoolctl
    import torch

    blas = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    return torch.get_num_threads(), sorted(set(blas))


def _sleep_on_rank_one():
    import time

    if lepton_nb.rank() == 1:
        time.sleep(60)
    return "done"


def test_run_timeout_interrupts_and_keeps_the_cluster_usable(cluster, monkeypatch):
    from lepton_nb import DistributedTimeout

    monkeypatch.setattr(cluster, "run_timeout", 1.0)
    with pytest.raises(DistributedTimeout) as info:
        cluster.run(_sleep_on_rank_one)
    assert info.value.timed_out == [1] and info.value.results == {0: "done"}
    assert cluster.run(lambda: 2) == [2, 2]


def test_api_errors_say_what_to_do(cluster):
    idle = lepton_nb.Cluster(n=1)
    with pytest.raises(ClusterError, match="No cluster running. Start one with"):
        idle.run(int)
    with pytest.raises(ClusterError, match="No cluster running"):
        idle.scatter("x", __import__("numpy").arange(4))
    with pytest.raises(ClusterError, match="No cluster running"):
        idle.interrupt([0])
    with pytest.raises(ClusterError, match="scale needs a positive number of ranks, got 0"):
        cluster.scale(0)
    assert cluster.world_size == 2


def test_more_ranks_than_gpus_on_a_host_is_refused_before_the_group_forms(monkeypatch):
    # the engines' launcher bound them to GPU 0 (as Slurm's --gpus-per-task would): one GPU here
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    import socket

    c = lepton_nb.Cluster(n=2, gpus="auto", progress=False, engine_timeout=60)
    with pytest.raises(ClusterError, match=rf"{socket.gethostname()} has 1 GPU\(s\) \(GPU 0\) for 2 ranks"):
        c.start()
    assert not c.running and c.runtime_files == []


def test_explicit_arguments_win_over_configuration():
    from traitlets.config import Config

    config = Config()
    config.Cluster.launcher = "slurm"
    config.Cluster.partition = "gpu"
    config.Cluster.time = "4:00:00"
    c = lepton_nb.Cluster(time="0:30:00", config=config)
    assert (c.launcher, c.partition, c.time) == ("slurm", "gpu", "0:30:00")
    assert lepton_nb.Cluster(n=3, gpus="none").gpus == "none"
    with pytest.raises(TypeError, match="unknown option"):
        lepton_nb.Cluster(nodez=2)


def test_site_configuration_comes_from_ipython_config(tmp_path, monkeypatch):
    import subprocess
    import sys

    profile = tmp_path / "profile_default"
    profile.mkdir()
    (profile / "ipython_config.py").write_text('c.Cluster.launcher = "ssh"\nc.Cluster.hosts = {"a": 2}\n')
    code = "import lepton_nb; c = lepton_nb.Cluster(); print(c.launcher, c.hosts)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "IPYTHONDIR": str(tmp_path)})  # fmt: skip
    assert out.stdout.strip() == "ssh {'a': 2}", out.stderr
