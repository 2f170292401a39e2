"""Placing ranks from engine reports: contiguous hosts, local ranks, one GPU each, versions."""

import pytest

from lepton_nb import ClusterError
from lepton_nb.cluster.placement import (
    Registered,
    check_gpus_exist,
    notebook_versions,
    parse_gpus,
    place,
    replace_ranks,
    version_problem,
)
from lepton_nb.engine.identity import EngineReport, LaunchIndex


def _report(host, local, proc=None, gpus=(), bound=False, cpus=8, **versions):
    ours = notebook_versions()
    return EngineReport(
        host=host, addr=f"10.0.0.{hash(host) % 200 + 1}", ifname="eth0", pid=1000 + (proc or local),
        launch=LaunchIndex("slurm", proc if proc is not None else local, local, "7"),
        gpus=tuple(gpus), bound=bound, cpus=cpus,
        python=versions.get("python", ours["python"] + ".1"), torch=versions.get("torch", ours["torch"]),
        lepton=versions.get("lepton", ours["lepton_nb"]), engine_set="s1",
    )  # fmt: skip


def _reg(eid, report, seq=1):
    return Registered(eid, report.engine_set, report, seq)


@pytest.mark.parametrize(
    "spec,expected",
    [("none", "none"), ("auto", "auto"), ("AUTO", "auto"), ("0,1", [0, 1]), ([1], [1])],
)
def test_parse_gpus(spec, expected):
    assert parse_gpus(spec) == expected


@pytest.mark.parametrize(
    "spec,message",
    [
        ("x", "--gpus must be auto, none or a list like 0,1"),
        ("0,0", "lists a GPU twice"),
        ([], "needs at least one GPU"),
        ("-1", "indices of 0 or more"),
    ],
)
def test_parse_gpus_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_gpus(spec)


@pytest.mark.parametrize(
    "gpus,available,message",
    [
        ([3], [0, 1], "GPU 3 is not there: node1 has GPUs 0-1"),
        ([0], [], "GPU 0 is not there: node1 has no GPU"),
        ([1], [2, 5], "GPU 1 is not there: node1 has GPUs 2,5"),
    ],
)
def test_check_gpus_exist_names_the_host(gpus, available, message):
    with pytest.raises(ValueError, match=message):
        check_gpus_exist(gpus, "node1", available)
    check_gpus_exist("auto", "node1", available)  # nothing to check


def test_ranks_of_a_host_are_contiguous_in_launcher_order():
    # Slurm's cyclic distribution interleaves the hosts; ranks come out grouped by host
    regs = [
        _reg(10, _report("node2", 0, proc=1)),
        _reg(11, _report("node1", 1, proc=2)),
        _reg(12, _report("node1", 0, proc=0)),
        _reg(13, _report("node2", 1, proc=3)),
    ]
    ranks = place([], regs, "auto")
    assert [(r.rank, r.host, r.local_rank, r.engine_id) for r in ranks] == [
        (0, "node1", 0, 12), (1, "node1", 1, 11), (2, "node2", 0, 10), (3, "node2", 1, 13),
    ]  # fmt: skip
    assert all(r.device == "cpu" and r.gpu is None for r in ranks)  # no GPU anywhere
    assert [r.threads for r in ranks] == [4, 4, 4, 4]  # 8 cores shared by 2 ranks per host


def test_each_engine_gets_its_own_gpu_of_its_host():
    regs = [_reg(i, _report(h, i % 2, proc=i, gpus=(0, 1))) for i, h in enumerate("aabb")]
    ranks = place([], regs, "auto")
    assert [(r.host, r.gpu, r.device) for r in ranks] == [
        ("a", 0, "cuda:0"), ("a", 1, "cuda:0"), ("b", 0, "cuda:0"), ("b", 1, "cuda:0"),
    ]  # fmt: skip
    assert [r.gpu for r in place([], regs, [1, 0])] == [0, 1, 0, 1]
    assert [r.gpu for r in place([], regs, "none")] == [None] * 4


def test_a_binding_slurm_made_is_respected():
    # --gpus-per-task: each task sees only its own GPU
    regs = [_reg(0, _report("a", 0, gpus=(5,), bound=True)), _reg(1, _report("a", 1, gpus=(2,), bound=True))]
    assert [r.gpu for r in place([], regs, "auto")] == [5, 2]


def test_more_ranks_than_gpus_on_a_host_names_the_host():
    regs = [_reg(i, _report("gpu7", i, gpus=(0, 1))) for i in range(3)]
    with pytest.raises(ClusterError, match=r"gpu7 has 2 GPU\(s\) \(GPUs 0-1\) for 3 ranks"):
        place([], regs, "auto")
    with pytest.raises(ClusterError, match="GPU 4 is not there: gpu7 has GPUs 0-1"):
        place([], regs[:1], [4])


def test_scale_keeps_ranks_and_gpus_and_appends_on_each_host():
    first = place([], [_reg(0, _report("a", 0, gpus=(0, 1, 2))), _reg(1, _report("b", 0))], "auto")
    more = [_reg(2, _report("b", 0), seq=2), _reg(3, _report("a", 0, gpus=(0, 1, 2)), seq=2)]
    ranks = place(first, more, "auto")
    assert [(r.host, r.engine_id, r.local_rank, r.gpu) for r in ranks] == [
        ("a", 0, 0, 0), ("a", 3, 1, 1), ("b", 1, 0, None), ("b", 2, 1, None),
    ]  # fmt: skip
    assert ranks[0].threads == first[0].threads == 8  # an engine keeps the threads it was pinned to


def test_a_restarted_rank_keeps_its_number_host_and_gpu():
    ranks = place([], [_reg(0, _report("a", 0, gpus=(0, 1))), _reg(1, _report("a", 1, gpus=(0, 1)))], "auto")
    new = replace_ranks(ranks, [1], [_reg(9, _report("a", 0, gpus=(0, 1)), seq=2)])
    assert (new[1].rank, new[1].engine_id, new[1].local_rank, new[1].gpu) == (1, 9, 1, 1)
    assert new[0] == ranks[0]
    with pytest.raises(ClusterError, match="rank 1 was restarted on a, but no new engine .* from: b"):
        replace_ranks(ranks, [1], [_reg(9, _report("b", 0))])


@pytest.mark.parametrize(
    "changed,message",
    [
        ({"python": "2.7.18"}, "runs python 2.7, but the notebook runs 3."),
        ({"torch": "1.0.0"}, "runs torch 1.0.0, but the notebook runs"),
        ({"lepton": "0.0.1"}, "runs lepton_nb 0.0.1, but the notebook runs 0.1.0"),
    ],
)
def test_version_problems_name_the_host_and_both_versions(changed, message):
    ours = notebook_versions()
    assert version_problem(_report("node2", 0), ours) is None
    problem = version_problem(_report("node2", 0, **changed), ours)
    assert problem.startswith("the engine on node2 (pid 1000) ") and message in problem
