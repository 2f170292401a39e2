"""Forming the process group: on loopback for one host, re-formed on a fresh port."""

from __future__ import annotations

from lepton_nb.cluster import group


def _store():
    import os

    import torch.distributed as dist

    return os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), dist.get_world_size()


def test_form_puts_the_store_on_loopback_and_a_fresh_port(cluster):
    (addr, port, ws), second = cluster.run(_store)
    assert addr == "127.0.0.1" and ws == 2 and second == (addr, port, ws)
    group.form(cluster, cluster.backend)
    (addr2, port2, _), _ = cluster.run(_store)
    assert addr2 == "127.0.0.1" and port2 != port
    assert cluster.run(lambda: 1) == [1, 1]
