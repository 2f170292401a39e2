"""Hypothesis strategies and reference checks shared by the compress tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

#: Finite float32 values of mixed magnitude, with repeats (ties) likely.
values = st.one_of(
    st.floats(-1e4, 1e4, width=32),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, 1e-30, -7.0]),
)


def float_arrays(max_size: int = 5000, min_size: int = 1) -> st.SearchStrategy:
    """1-D float32 arrays with ties, zeros and mixed magnitudes."""
    return hnp.arrays(np.float32, st.integers(min_size, max_size), elements=values)


def distinct_arrays(max_size: int = 2000) -> st.SearchStrategy:
    """1-D float32 arrays whose magnitudes are all different (top-k has no ties)."""
    mags = hnp.arrays(
        np.float32,
        st.integers(1, max_size),
        elements=st.floats(2.0**-10, 1e3, width=32),
        unique=True,
    )
    return st.tuples(mags, st.randoms(use_true_random=False)).map(
        lambda mr: mr[0] * np.array([mr[1].choice((-1, 1)) for _ in mr[0]], np.float32)
    )


def assert_topk(x: np.ndarray, k: int, idx: np.ndarray, vals: np.ndarray) -> None:
    """idx/vals are k distinct positions holding the k largest |x| (ties: any)."""
    x = x.reshape(-1)
    idx = np.asarray(idx, np.int64)
    assert idx.size == k and np.unique(idx).size == k
    assert np.array_equal(np.asarray(vals).view(np.uint32), x[idx].view(np.uint32))
    a = np.abs(x)
    kth = np.sort(a)[-k]
    assert np.all(a[idx] >= kth)
    assert np.all(np.isin(np.flatnonzero(a > kth), idx))
