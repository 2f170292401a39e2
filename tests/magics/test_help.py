"""Every magic's help names the magic itself (``%lepton_cluster?`` shows ``%lepton_cluster ...``)."""

import pytest

MAGICS = {
    "lepton_cluster": "line",
    "lepton_distributed": "cell",
    "lepton_push": "line",
    "lepton_pull": "line",
    "lepton_monitor": "line",
    "lepton_map": "line",
}


@pytest.mark.parametrize("name,kind", sorted(MAGICS.items()))
def test_help_names_the_magic(ip, name, kind):
    magic = ip.find_magic(name, kind)
    assert magic is not None, f"%{name} is not registered"
    prefix = "%%" if kind == "cell" else "%"
    lines = [line.strip() for line in (magic.__doc__ or "").splitlines() if line.strip()]
    first = next(line for line in lines if line.startswith("%"))  # the usage line
    assert first.split()[0] == f"{prefix}{name}", first
