"""A rank's data-parallel replica: which parts of the gradient buffer are compressed apart."""

from __future__ import annotations

from lepton_nb.train.parallel import OWN_PART, parts


def test_large_parameters_are_parts_of_their_own_and_small_ones_share_one():
    # the benchmark's wide CNN: conv weights and biases, fc1 (10.24M), its bias, fc2, its bias
    sizes = [144, 16, 4608, 32, 10_240_000, 20_000, 200_000, 10]
    order, bounds = parts(sizes)
    assert order == [0, 1, 2, 3, 5, 7, 4, 6]  # the small ones first, then each large one
    small = 144 + 16 + 4608 + 32 + 20_000 + 10
    assert bounds == [(0, small), (small, small + 10_240_000), (small + 10_240_000, sum(sizes))]


def test_all_small_is_one_part_and_all_large_is_one_each():
    assert parts([3, 4]) == ([0, 1], [(0, 7)])
    assert parts([OWN_PART, OWN_PART + 1]) == ([0, 1], [(0, OWN_PART), (OWN_PART, 2 * OWN_PART + 1)])
    assert parts([]) == ([], [])


def _nonzero_after_averaging(ratio):
    import torch

    from lepton_nb.train.parallel import OWN_PART, DataParallel  # (sent by value: no globals)

    quiet = torch.nn.Parameter(torch.zeros(OWN_PART))  # its gradients are a million times smaller
    loud = torch.nn.Parameter(torch.zeros(OWN_PART))
    model = torch.nn.ParameterList([quiet, loud])
    config = {"compression": f"topk:{ratio}", "optimizer": "sgd", "lr": 0.1, "loss": None}
    replica = DataParallel(model, config)
    g = torch.Generator().manual_seed(torch.distributed.get_rank())
    quiet.grad = 1e-6 * (1 + torch.rand(OWN_PART, generator=g))
    loud.grad = 1 + torch.rand(OWN_PART, generator=g)
    replica.average_grads()
    return [int((quiet.grad != 0).sum()), int((loud.grad != 0).sum())]


def test_top_k_keeps_its_share_of_every_large_layer(cluster):
    k = round(0.01 * OWN_PART)
    for quiet, loud in cluster.run(_nonzero_after_averaging, 0.01):
        # each rank sent its own k of each layer; the average holds the union of both ranks'
        assert k <= quiet <= 2 * k and k <= loud <= 2 * k, (quiet, loud)
