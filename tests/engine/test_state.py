import socket

import pytest

import lepton_nb
from lepton_nb.engine import free_port


def test_off_a_rank_every_accessor_explains_itself():
    for fn in (lepton_nb.rank, lepton_nb.world_size, lepton_nb.local_rank, lepton_nb.get_device):
        with pytest.raises(RuntimeError, match=r"cluster.run\(fn\) or a %%lepton_distributed cell"):
            fn()


def test_free_port_here():
    port = free_port()
    with socket.socket() as s:
        s.bind(("", port))  # still free


def test_on_ranks_accessors_match_the_group(cluster):
    def accessors():
        import torch.distributed as dist

        import lepton_nb as ln

        return (ln.rank(), ln.world_size(), ln.local_rank(), str(ln.get_device()), dist.get_rank())

    assert cluster.run(accessors) == [(0, 2, 0, "cpu", 0), (1, 2, 1, "cpu", 1)]
