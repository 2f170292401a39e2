"""Link byte counters, on their own and as a real cluster reports them."""

from __future__ import annotations

import numpy as np

from lepton_nb.links import NOTEBOOK, LinkBytes, LinkCounter, LinkRates, merge, table


def test_counter_adds_per_link_and_ignores_nothing_moved():
    c = LinkCounter()
    c.add(0, 1, 100)
    c.add(0, 1, 50)
    c.add(1, 0, 7)
    c.add(2, 2, 10**6)  # to itself: no link
    c.add(0, 1, 0)
    assert c.snapshot() == {(0, 1): 150, (1, 0): 7}
    assert c.total() == 157
    c.reset()
    assert c.snapshot() == {} and c.total() == 0


def test_rates_between_two_readings_are_never_negative():
    c = LinkCounter()
    rates = LinkRates(c)
    c.add(0, 1, 1_000_000)
    [[src, dst, n, rate]] = rates.rows()
    assert (src, dst, n) == (0, 1, 1_000_000) and rate > 0
    assert rates.rows() == [[0, 1, 1_000_000, 0.0]]  # nothing moved since
    c.reset()
    c.add(0, 1, 10)  # fewer bytes than at the last reading: the counter was reset
    assert rates.rows() == [[0, 1, 10, 0.0]]


def test_merge_and_table():
    merged = merge({(0, 1): 10}, {(0, 1): 5, (NOTEBOOK, 0): 2_500_000})
    assert merged == {(NOTEBOOK, 0): 2_500_000, (0, 1): 15}
    text = table(merged)
    assert "notebook -> rank 0" in text and "2.5 MB" in text and "15 B" in text
    assert table({}) == "no bytes moved yet"
    assert str(LinkBytes(merged)) == text


def test_cluster_counts_pushed_bytes_per_rank(cluster):
    before = cluster.link_bytes()
    data = np.random.default_rng(0).random(300_000)  # 2.4 MB: shared memory on this host
    cluster.push({"link_test_data": data})
    after = cluster.link_bytes()
    for r in (0, 1):
        assert after.get((NOTEBOOK, r), 0) - before.get((NOTEBOOK, r), 0) == data.nbytes
    cluster.push({"link_test_data": data})  # unchanged: nothing moves
    assert cluster.link_bytes() == after
