import numpy as np

from lepton_nb.compress.halfbits import as_int16, half_bits, make_half_value

ALL_HALVES = np.arange(65536, dtype=np.uint16)


def _f32(b):
    return np.int32(b).view(np.float32)


def test_half_value_gives_every_float16_exactly():
    half_value = make_half_value(_f32)
    got = np.array([half_value(int(h)) for h in ALL_HALVES], np.float32)
    ref = ALL_HALVES.view(np.float16).astype(np.float32)
    same = (got.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(got) & np.isnan(ref))
    assert same.all()


def test_half_bits_rounds_like_numpy_near_every_float16_and_at_random():
    ref16 = ALL_HALVES.view(np.float16).astype(np.float32).view(np.uint32).astype(np.int64)
    near = (ref16[:, None] + np.arange(-3, 4)[None, :]).ravel() & 0xFFFFFFFF
    random = np.random.default_rng(0).integers(0, 2**32, 20_000)
    edges = [0x33000000, 0x33000001, 0x477FEFFF, 0x477FF000, 0x387FFFFF, 0x80000000]
    bits = np.concatenate([near, random, edges]).astype(np.uint32)
    f = bits.view(np.float32)
    with np.errstate(all="ignore"):
        ref = f.astype(np.float16).view(np.uint16)
    got = np.array([half_bits(int(b)) for b in bits])
    nan = np.isnan(f)
    assert np.array_equal(got[~nan], ref[~nan])
    assert np.isnan(got[nan].astype(np.uint16).view(np.float16)).all()  # NaN stays NaN
    signed = np.array([half_bits(int(b)) for b in bits.view(np.int32)])
    assert np.array_equal(signed, got)


def test_int16_storage_round_trips_every_pattern():
    stored = np.array([as_int16(int(h)) for h in ALL_HALVES], np.int64)
    assert stored.min() >= -32768 and stored.max() <= 32767
    assert np.array_equal(stored.astype(np.int16).view(np.uint16), ALL_HALVES)
