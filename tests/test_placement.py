import pytest

from lepton_nb.placement import backend_for, gpu_count, parse_gpus, plan


def test_gpu_count_without_gpu_is_zero_not_an_error():
    import os

    n = gpu_count()
    assert isinstance(n, int) and n >= 0
    if not os.path.exists("/dev/nvidia0"):
        assert n == 0


@pytest.mark.parametrize(
    "spec,available,expected",
    [("none", 4, None), ("auto", 0, None), ("auto", 2, [0, 1]), ("0,1", 2, [0, 1]), ([1], 2, [1])],
)
def test_parse_gpus(spec, available, expected):
    assert parse_gpus(spec, available) == expected


@pytest.mark.parametrize(
    "spec,available,message",
    [
        ("3", 2, "GPU 3 is not there: this machine has GPUs 0-1"),
        ("0", 0, "GPU 0 is not there: this machine has no GPU"),
        ("x", 2, "--gpus must be auto, none or a list like 0,1"),
        ("0,0", 2, "lists a GPU twice"),
        ([], 2, "needs at least one GPU"),
    ],
)
def test_parse_gpus_errors(spec, available, message):
    with pytest.raises(ValueError, match=message):
        parse_gpus(spec, available)


def test_plan_cpu_engines_share_cores_and_see_no_gpu(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    slots = plan(2, None, cpu_total=8)
    assert [s.device for s in slots] == ["cpu", "cpu"]
    assert [s.env["LEPTON_RANK"] for s in slots] == ["0", "1"]
    assert all(s.env["CUDA_VISIBLE_DEVICES"] == "" for s in slots)
    assert all(s.env["OMP_NUM_THREADS"] == "4" for s in slots)
    assert all(s.env["NUMBA_NUM_THREADS"] == "4" for s in slots)
    assert backend_for(slots) == "gloo"


def test_plan_gpu_engines_see_exactly_one_gpu():
    slots = plan(3, [2, 5])
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["2", "5", "2"]
    assert [s.device for s in slots] == ["cuda:0"] * 3
    assert [s.gpu for s in slots] == [2, 5, 2]
    assert backend_for(slots) == "nccl"
    assert backend_for(plan(1, [0]) + plan(1, None)) == "gloo"
