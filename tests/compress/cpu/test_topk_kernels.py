import numpy as np

from lepton_nb.compress.cpu import topk_kernels as T


def test_chunks_cover_the_range_at_block_boundaries():
    lo, hi = T.chunks(1000, 3)
    assert lo[0] == 0 and hi[-1] == 1000 and np.array_equal(lo[1:], hi[:-1])
    assert all(b % T.BLOCK == 0 for b in lo)
    lo, hi = T.chunks(10, 4)  # more chunks than blocks: some are empty
    assert hi[-1] == 10 and (hi - lo).sum() == 10


def test_collect_counts_past_its_room_and_select_takes_exactly_k():
    x = np.array([5, -1, 7, 3, -7, 2, 9, 0] * 20, np.float32)
    xb = x.view(np.int32)
    thr = int(np.float32(3).view(np.int32))
    lo, hi = T.chunks(x.size, 2)
    cap = np.array([10, 10], np.int64)
    off = np.array([0, 10], np.int64)
    cand, cidx, counts = np.empty(20, np.int32), np.empty(20, np.int64), np.zeros(2, np.int64)
    T.collect(xb, thr, lo, hi, off, cap, cand, cidx, counts)
    assert counts.sum() == 5 * 20  # counted all, stored 10 per range
    got = np.abs(cand.view(np.float32))
    assert np.all(got >= 3) and np.array_equal(x[cidx], cand.view(np.float32))
    idx, bits = np.empty(4, np.int64), np.empty(4, np.int32)
    T.select(cand, cidx, off, np.minimum(counts, cap), 4, idx, bits)
    assert np.all(bits.view(np.float32) == 9) and np.all(x[idx] == 9)
    assert np.all(np.diff(idx) > 0)


def test_fused_collect_adds_t_into_r_everywhere():
    r = np.arange(100, dtype=np.float32)
    t = np.ones(100, np.float32)
    lo, hi = T.chunks(100, 1)
    room = np.array([100], np.int64)
    cand, cidx, counts = np.empty(100, np.int32), np.empty(100, np.int32), np.zeros(1, np.int64)
    thr = int(np.float32(90).view(np.int32))
    T.collect_feedback(r, t, thr, lo, hi, np.zeros(1, np.int64), room, cand, cidx, counts)
    assert np.array_equal(r, np.arange(1, 101)) and counts[0] == 11
    assert np.array_equal(cidx[:11], np.arange(89, 100))
