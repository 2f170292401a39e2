"""Byte sizes as people read them: one formatter for the widget, status and link tables."""

import pytest

from lepton_nb.units import size


@pytest.mark.parametrize(
    ("n", "unit", "text"),
    [
        (None, "B", "n/a"),
        (0, "B", "0 B"),
        (999, "B", "999 B"),
        (1500, "B/s", "1.5 kB/s"),
        (2_500_000, "B", "2.5 MB"),
        (80e9, "B", "80.0 GB"),
        (1.5e15, "B", "1500.0 TB"),  # T is the largest prefix
        (-2000, "B/s", "-2.0 kB/s"),
    ],
)
def test_decimal_units(n, unit, text):
    assert size(n, unit) == text
