"""%lepton_map in a real IPython shell: results bound to _, bad lines refused."""

import pytest
from IPython.core.error import UsageError


def test_map_binds_the_results_to_underscore(ip_cluster, capsys):
    ip_cluster.run_cell("def square(x):\n    return x * x\n")
    ip_cluster.run_line_magic("lepton_map", "square range(20) --retries 1")
    assert ip_cluster.user_ns["_"] == [x * x for x in range(20)]
    assert "20 results in _" in capsys.readouterr().out


@pytest.mark.parametrize(
    "line, message",
    [
        ("", "Name a function and an iterable"),
        ("nope range(3)", "cannot evaluate the function 'nope'"),
        ("len 5", "cannot evaluate the iterable|not iterable"),
        ("len range(3) --memory lots", "memory: not a size"),
        ("len range(3) --retries -1", "retries must be an int of 0 or more"),
        ("len range(3) --retries x", "invalid literal"),
        ("3 range(3)", "must be callable"),
    ],
)
def test_bad_lines_are_refused_before_anything_is_sent(ip_cluster, line, message):
    with pytest.raises(UsageError, match=message):
        ip_cluster.run_line_magic("lepton_map", line)
