"""keep=True: values stay on their rank, are read there, spill past the limit, and are freed."""

import gc
import time

import numpy as np

from lepton_nb import RemoteRef


def _make(seed, n):
    import numpy as np

    return np.random.default_rng(seed).standard_normal(n)


def _total(x):
    import os

    import lepton_nb

    return float(x.sum()), lepton_nb.rank(), os.getpid()


def _keys(cluster):
    return {e["key"]: e["tier"] for entries in cluster.store_info().values() for e in entries}


def _wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_kept_value_is_read_on_its_rank_without_a_transfer_and_fetched_on_get(cluster):
    made = cluster.submit(_make, 1, 1000, keep=True)
    ref = made.result(60)
    assert isinstance(ref, RemoteRef) and ref.rank == made.rank and ref.nbytes == 8000
    assert "ndarray, 8.0 kB on rank" in repr(ref)
    total, rank, pid = cluster.submit(_total, ref).result(60)
    assert rank == ref.rank and pid == cluster.placement[ref.rank]["pid"]  # ran where it is
    expected = np.random.default_rng(1).standard_normal(1000)
    assert abs(total - expected.sum()) < 1e-9
    np.testing.assert_array_equal(ref.get(60), expected)


def test_past_the_store_limit_values_spill_to_disk_and_come_back_intact(cluster):
    cluster.store_limit = "20MB"
    try:
        fs = [cluster.submit(_make, i, 1_000_000, keep=True, ranks=[0]) for i in range(5)]  # 8 MB each
        refs = [f.result(60) for f in fs]
        tiers = _keys(cluster)
        mine = [tiers[r.kept.key] for r in refs]
        assert mine.count("disk") == 3 and mine.count("host") == 2, mine
        for i, ref in enumerate(refs):
            np.testing.assert_array_equal(ref.get(60), np.random.default_rng(i).standard_normal(1_000_000))
        info = cluster.store_info()[0]
        assert sum(e["nbytes"] for e in info if e["tier"] == "host") <= 20_000_000
    finally:
        cluster.store_limit = "4GB"
        del refs, fs
        gc.collect()


def test_a_value_is_freed_on_its_rank_when_its_last_reference_is_gone(cluster):
    f = cluster.submit(_make, 2, 100, keep=True)
    ref = f.result(60)
    key = ref.kept.key
    assert key in _keys(cluster)
    del ref, f
    gc.collect()
    assert _wait_until(lambda: key not in _keys(cluster)), "the value was not freed on its rank"

