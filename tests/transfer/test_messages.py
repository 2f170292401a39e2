import numpy as np

from lepton_nb.transfer import messages
from lepton_nb.transfer.content import as_array, content_key


def test_nothing_to_ask_sends_no_probe():
    assert messages.probe(None, {0: [], 1: []}) is None  # no cluster needed: nothing is sent
    assert messages.collect(None, None) == {}


def test_the_probe_says_what_each_rank_holds_intact(cluster):
    held = np.arange(500_000.0)
    cluster.push({"held": held})
    job = messages.probe(cluster, {0: ["held", "absent"], 1: ["held"]})
    got = messages.collect(cluster, job)
    key = content_key(*as_array(held))
    assert got == {0: {"held": key, "absent": None}, 1: {"held": key}}
