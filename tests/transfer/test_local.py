import numpy as np

from lepton_nb.transfer import segment
from lepton_nb.transfer.content import content_key
from lepton_nb.transfer.local import LocalCopy
from lepton_nb.transfer.spare import Spare


def _arrays():
    a, b = np.arange(300_000, dtype=np.float64), np.full(200_000, 3.0)
    return a, b, {id(a): (a, "numpy"), id(b): (b, "numpy")}


def _holds(seg, offset, arr):
    return bytes(seg.view[offset : offset + arr.nbytes]) == arr.tobytes()


def test_early_arrays_are_copied_while_hashed_and_the_rest_when_needed():
    a, b, arrays = _arrays()
    spare = Spare(lambda: True)
    local = LocalCopy(spare, segment.SHM_DIR, None)
    keys = local.keys(arrays, early={id(a)})
    assert keys == {id(a): content_key(a, "numpy"), id(b): content_key(b, "numpy")}
    where = local.place({id(a): a, id(b): b})  # b turned out needed too: a second segment
    (seg_a, off_a), (seg_b, off_b) = where[id(a)], where[id(b)]
    assert seg_a is not seg_b and _holds(seg_a, off_a, a) and _holds(seg_b, off_b, b)
    used = local.finish(True)
    assert {id(s) for s in used} == {id(seg_a), id(seg_b)}
    assert spare.take(a.nbytes) is None  # nothing was left unused
    for seg in used:
        seg.close()


def test_an_early_copy_that_no_rank_needs_goes_back_to_the_spare():
    a, b, arrays = _arrays()
    spare = Spare(lambda: True)
    local = LocalCopy(spare, segment.SHM_DIR, None)
    local.keys(arrays, early={id(a)})
    assert local.place({}) == {}  # a was held already after all
    assert local.finish(True) == []
    kept = spare.take(a.nbytes)
    assert kept is not None and kept.view is not None
    kept.close()


def test_after_a_failure_every_segment_is_let_go():
    a, _, arrays = _arrays()
    spare = Spare(lambda: True)
    local = LocalCopy(spare, segment.SHM_DIR, None)
    local.keys(arrays, early={id(a)})
    made = local.finish(False)
    assert len(made) == 1 and spare.take(a.nbytes) is None
    made[0].close()


def test_a_sketch_tells_another_array_or_sampled_changes_apart():
    from lepton_nb.transfer.local import sketch

    x = np.arange(1_000_000, dtype=np.float64)
    first = sketch(x)
    assert sketch(x) == first
    assert sketch(x.copy()) != first  # another array, equal bytes: guessed new
    x *= 2.0  # every element updated in place
    assert sketch(x) != first
    small = np.arange(10.0)
    before = sketch(small)
    small[3] = -1.0
    assert sketch(small) != before  # small arrays are sampled whole
