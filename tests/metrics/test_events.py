"""Events: what the monitor puts on its time axis."""

import threading
import time

import pytest

from lepton_nb.metrics.events import KINDS, MAX_SENT, Events


def test_add_and_recent_in_order_with_increasing_ids():
    ev = Events()
    before = time.time()
    a = ev.add("cell_started", "cell `x = 1` started")
    b = ev.add("rank_died", "rank 1 died", rank=1)
    recent = ev.recent()
    assert [e["id"] for e in recent] == [a.id, b.id] and a.id < b.id
    assert recent[1] == {"id": b.id, "time": b.time, "kind": "rank_died", "rank": 1,
                         "text": "rank 1 died"}  # fmt: skip
    assert before <= a.time <= b.time <= time.time()
    with pytest.raises(ValueError, match="unknown event kind 'exploded'"):
        ev.add("exploded", "boom")
    assert set(KINDS) == {"rank_died", "rank_restarted", "push_started", "push_ended",
                          "cell_started", "cell_ended"}  # fmt: skip


def test_recent_is_bounded_in_time_and_count():
    ev = Events()
    for i in range(MAX_SENT + 20):
        ev.add("push_started", f"push {i}")
    recent = ev.recent()
    assert len(recent) == MAX_SENT and recent[-1]["text"] == f"push {MAX_SENT + 19}"
    assert ev.recent(seconds=0.0) == [] or all(e["time"] >= time.time() - 0.01 for e in ev.recent(0.0))
    assert ev.recent(limit=0) == []


def test_started_ends_once_whoever_calls_first():
    ev = Events()
    ended = ev.started("push", "push of x")
    threads = [threading.Thread(target=ended, args=("ended",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ended("failed")
    assert [(e["kind"], e["text"]) for e in ev.recent()] == [
        ("push_started", "push of x started"),
        ("push_ended", "push of x ended"),
    ]


def test_track_turns_state_changes_into_deaths_and_restarts():
    ev = Events()
    ev.track([{"rank": 0, "pid": 10, "state": "restarting"}, {"rank": 1, "pid": 11, "state": "idle"}])
    assert ev.recent() == []  # the first look is no event: ranks starting up
    ev.track([{"rank": 0, "pid": 10, "state": "idle"}, {"rank": 1, "pid": 11, "state": "dead"}])
    ev.track([{"rank": 0, "pid": 10, "state": "busy"}, {"rank": 1, "pid": 11, "state": "dead"}])
    ev.track([{"rank": 0, "pid": 10, "state": "idle"}, {"rank": 1, "pid": None, "state": "restarting"}])
    ev.track([{"rank": 0, "pid": 10, "state": "idle"}, {"rank": 1, "pid": 12, "state": "restarting"}])
    ev.track([{"rank": 0, "pid": 10, "state": "idle"}, {"rank": 1, "pid": 12, "state": "idle"}])
    # dead, then (no engine for a moment) a new engine: a death and a restart
    assert [(e["kind"], e["rank"]) for e in ev.recent()] == [("rank_died", 1), ("rank_restarted", 1)]
    # a pid change seen between two looks is a restart too
    ev.track([{"rank": 0, "pid": 20, "state": "idle"}, {"rank": 1, "pid": 12, "state": "idle"}])
    assert [(e["kind"], e["rank"]) for e in ev.recent()][-1] == ("rank_restarted", 0)


def test_a_replacement_quicker_than_a_snapshot_still_tells_the_death_once():
    ev = Events()
    ev.track([{"rank": 0, "pid": 10, "state": "idle"}])
    ev.restarting(0, 10, died=True)  # the cluster replaces a dead engine before the next look
    ev.track([{"rank": 0, "pid": 10, "state": "dead"}])  # the look sees it dead: not again
    ev.track([{"rank": 0, "pid": None, "state": "restarting"}])
    ev.track([{"rank": 0, "pid": 11, "state": "idle"}])
    assert [(e["kind"], e["rank"]) for e in ev.recent()] == [("rank_died", 0), ("rank_restarted", 0)]
    ev.restarting(0, 11, died=False)  # a restart asked for: no death
    ev.track([{"rank": 0, "pid": 12, "state": "idle"}])
    assert [e["kind"] for e in ev.recent()][-1] == "rank_restarted"
    assert [e["kind"] for e in ev.recent()].count("rank_died") == 1
