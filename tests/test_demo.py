"""The demo prints each rank's line in rank order, however the lines arrived."""

from __future__ import annotations

from lepton_nb.demo import _rank_of


def test_rank_lines_sort_by_rank_number():
    lines = ["[rank 10] c", "[rank 2] b", "[rank 0] a", "not a rank line"]
    assert sorted(lines, key=_rank_of) == [
        "not a rank line",
        "[rank 0] a",
        "[rank 2] b",
        "[rank 10] c",
    ]
