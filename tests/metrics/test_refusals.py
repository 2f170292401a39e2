"""Refusals: the first of a flood is logged, the rest counted into one line now and then."""

import logging
import time

from lepton_nb.metrics.refusals import Refusals

log = logging.getLogger("tests.refusals")


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == log.name]


def test_a_flood_logs_its_first_refusal_then_a_count(caplog):
    caplog.set_level(logging.WARNING, logger=log.name)
    refused = Refusals(log, "dropped", every=0.3)
    for i in range(1000):
        refused.refuse(f"bad {i}")
    refused.flush()  # too soon for the count
    assert _lines(caplog) == ["dropped (1 in all): bad 0"]
    time.sleep(0.3)
    refused.flush()
    assert _lines(caplog)[1].startswith("dropped: 999 in the last ")
    assert _lines(caplog)[1].endswith(" s (1000 in all), the latest: bad 999")
    refused.flush()  # nothing new: nothing said
    time.sleep(0.3)
    refused.refuse("late")  # after a quiet spell, the next one is logged at once
    assert _lines(caplog)[2:] == ["dropped (1001 in all): late"]
    assert refused.count == 1001
