import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_nb.cluster.rankspec import parse_ranks


@pytest.mark.parametrize(
    "spec,expected",
    [
        (None, [0, 1, 2, 3]),
        ("all", [0, 1, 2, 3]),
        (" ALL ", [0, 1, 2, 3]),
        ("0,2", [0, 2]),
        ("1-3", [1, 2, 3]),
        ("3,0-1", [0, 1, 3]),
        (2, [2]),
        ([3, 1, 1], [1, 3]),
    ],
)
def test_parse_ranks(spec, expected):
    assert parse_ranks(spec, 4) == expected


@pytest.mark.parametrize(
    "spec,message",
    [
        ("4", "rank 4 does not exist: the cluster has ranks 0-3"),
        ("1-9", "rank 9 does not exist"),
        ("", "empty rank list"),
        ("0,,1", "cannot read rank spec"),
        ("a", "cannot read rank spec"),
        ("3-1", "runs backwards"),
        ([], "empty rank list"),
        (-1, "rank -1 does not exist"),
        (True, "ranks must be all"),
    ],
)
def test_parse_ranks_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_ranks(spec, 4)


@settings(max_examples=300)
@given(st.text(max_size=12), st.integers(min_value=1, max_value=8))
def test_parse_ranks_only_value_error(spec, world):
    try:
        ranks = parse_ranks(spec, world)
    except ValueError:
        return
    assert ranks == sorted(set(ranks)) and all(0 <= r < world for r in ranks)
