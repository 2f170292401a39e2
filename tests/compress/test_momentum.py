"""MomentumCorrection: velocity through error feedback, masked where values were sent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lepton_nb.compress import ErrorFeedback, Int8, MomentumCorrection, TopK


def test_first_step_is_error_feedback_and_sent_values_lose_their_momentum():
    g = torch.from_numpy(np.random.default_rng(0).standard_normal(1000).astype(np.float32))
    mc = MomentumCorrection(TopK(0.05), momentum=0.9)
    p = mc.compress(g, "w")
    ref = ErrorFeedback(TopK(0.05)).compress(g.clone(), "w")
    assert np.array_equal(p.arrays["indices"], ref.arrays["indices"])
    sent = torch.as_tensor(p.arrays["indices"]).long()
    u = mc.velocities["w"]
    assert bool((u[sent] == 0).all())
    kept = torch.ones(1000, dtype=torch.bool)
    kept[sent] = False
    torch.testing.assert_close(u[kept], g[kept])
    # second step: u = 0.9 u + g where not sent, g where sent
    mc.compress(g, "w")
    assert g is not mc.velocities["w"]  # the caller's gradient is never modified


def test_velocity_accumulates_and_nothing_is_lost():
    rng = np.random.default_rng(1)
    mc = MomentumCorrection(TopK(0.02), momentum=0.5)
    u = np.zeros(500, np.float32)
    given = np.zeros(500, np.float32)  # sum of the velocities fed to error feedback
    sent = np.zeros(500, np.float32)
    for _ in range(6):
        g = rng.standard_normal(500).astype(np.float32)
        u = 0.5 * u + g
        given += u
        p = mc.compress(g, "k")
        sent += mc.decompress(p)
        u[p.arrays["indices"]] = 0
        np.testing.assert_allclose(mc.velocities["k"], u, rtol=1e-5, atol=1e-6)
    # error feedback on the velocities: what was fed in is sent or still held back
    np.testing.assert_allclose(sent + mc.residuals["k"], given, rtol=1e-4, atol=1e-4)


def test_dense_codecs_keep_their_velocity():
    mc = MomentumCorrection(Int8(chunk=64), momentum=0.9)
    g = np.ones(256, np.float32)
    mc.compress(g, "k")
    mc.compress(g, "k")
    np.testing.assert_allclose(mc.velocities["k"], 1.9 * g)


def test_state_dict_round_trip():
    mc = MomentumCorrection(TopK(0.1), momentum=0.9)
    mc.compress(torch.randn(100), "a")
    state = mc.state_dict()
    other = MomentumCorrection(TopK(0.1), momentum=0.9)
    other.load_state_dict(state)
    assert torch.equal(other.velocities["a"], mc.velocities["a"])
    assert torch.equal(torch.as_tensor(other.residuals["a"]), torch.as_tensor(mc.residuals["a"]))
    assert repr(other) == "MomentumCorrection(TopK(ratio=0.1, backend='auto'), momentum=0.9)"


@pytest.mark.parametrize("bad", [1.0, -0.1, True])
def test_bad_momentum(bad):
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        MomentumCorrection(TopK(0.1), momentum=bad)
