"""A rank's tiered store, on its own: limits, least-recently-used spill to disk, values back intact."""

import os

import numpy as np
import pytest

from lepton_nb.tasks.store import Store, nbytes


def test_past_its_limit_the_least_recently_used_spill_to_disk_and_come_back_intact():
    store = Store(limit=3 * 8_000_000)  # three 8 MB arrays in host memory
    arrays = {f"a{i}": np.full(1_000_000, float(i)) for i in range(5)}
    for key, value in arrays.items():
        store.put(key, value)
    tiers = {e["key"]: e["tier"] for e in store.info()}
    assert tiers == {"a0": "disk", "a1": "disk", "a2": "host", "a3": "host", "a4": "host"}
    folder = os.path.dirname(store._entries["a0"].path)  # noqa: SLF001 - the test looks at the files
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
    assert sorted(os.listdir(folder)) == ["a0.pickle", "a1.pickle"]
    back = store.get("a0")  # comes back to host memory; the least recently used goes down
    np.testing.assert_array_equal(back, arrays["a0"])
    tiers = {e["key"]: e["tier"] for e in store.info()}
    assert tiers["a0"] == "host" and tiers["a2"] == "disk", tiers
    assert sum(e["nbytes"] for e in store.info() if e["tier"] == "host") <= store.limit
    store.clear()
    assert not os.path.exists(folder)


def test_free_forgets_values_and_their_files():
    store = Store(limit=10)
    store.put("x", np.zeros(100))  # 800 bytes: straight to disk
    path = store._entries["x"].path  # noqa: SLF001
    assert store.info()[0]["tier"] == "disk" and os.path.exists(path)
    assert store.free(["x", "never-kept"]) == 1
    assert store.info() == [] and not os.path.exists(path)
    with pytest.raises(KeyError):
        store.get("x")
    store.clear()


def test_sizes_of_arrays_tensors_and_other_values():
    import torch

    assert nbytes(np.zeros(10)) == 80
    assert nbytes(torch.zeros(10, dtype=torch.float16)) == 20
    assert nbytes({"a": 1}) > 0


def test_a_value_that_does_not_pickle_is_kept_in_memory_past_the_limit():
    import threading

    s = Store(limit=100)
    lock = threading.Lock()
    s.put("lock", lock)
    s.put("a", np.ones(50))  # 400 bytes: past the limit, both would spill
    tiers = {e["key"]: e["tier"] for e in s.info()}
    assert tiers == {"lock": "host", "a": "disk"}, tiers
    assert s.get("lock") is lock
    s.clear()
