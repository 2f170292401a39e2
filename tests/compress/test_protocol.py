"""Every compressor is a Compressor with one call shape; the error-feedback ones are FeedbackCodecs."""

import numpy as np
import pytest

from lepton_nb.compress import (
    FP16,
    Compressor,
    ErrorFeedback,
    FeedbackCompressor,
    Int8,
    MomentumCorrection,
    TopK,
)

PLAIN = [TopK(0.1), Int8(chunk=64), FP16()]


@pytest.mark.parametrize("c", PLAIN, ids=repr)
def test_a_plain_codec_is_a_codec_and_ignores_the_key(c):
    assert isinstance(c, Compressor) and not isinstance(c, FeedbackCompressor)
    x = np.random.default_rng(0).standard_normal(500).astype(np.float32)
    assert np.array_equal(c.compress(x, "w").buffer, c.compress(x).buffer)
    assert np.array_equal(c.compress(x, ("bucket", 3)).buffer, c.compress(x).buffer)


@pytest.mark.parametrize(
    "c", [ErrorFeedback(TopK(0.1)), MomentumCorrection(TopK(0.1))], ids=lambda c: type(c).__name__
)
def test_error_feedback_is_a_feedback_codec_keeping_state_under_the_key(c):
    assert isinstance(c, Compressor) and isinstance(c, FeedbackCompressor)
    x = np.random.default_rng(1).standard_normal(500).astype(np.float32)
    c.compress(x, "w")
    assert set(c.residuals) == {"w"}
    assert set(c.state_dict()["residuals"]) == {"w"}


def test_other_objects_are_not_codecs():
    assert not isinstance("TopK(0.01)", Compressor)
    assert not isinstance(None, Compressor)
