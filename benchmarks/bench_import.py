"""What importing lepton_nb costs an engine, against importing ipyparallel itself.

Each round starts two fresh interpreters back to back, one running
``import lepton_nb`` and one ``import ipyparallel`` (which every engine has
already paid for), 15 rounds interleaved, and reads the cumulative time of
the top-level module from ``python -X importtime``. It also lists which heavy
or notebook-only packages each import pulls in. Prints the medians and the
ratio; appends them to RESULTS.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _results import record  # noqa: E402

ROUNDS = 15
WATCHED = ("torch", "numba", "ipywidgets", "jupyter_server", "lepton_nb.server", "lepton_nb.monitor")


def import_time(module: str) -> tuple[float, set[str]]:
    """Cumulative import time of ``module`` in ms, and the watched modules it imported."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    total, seen = 0.0, set()
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        name = name.strip()
        if name in WATCHED:
            seen.add(name)
        if name == module and cumulative.strip().isdigit():
            total = int(cumulative) / 1000
    return total, seen


def main() -> None:
    ours, theirs, pulled = [], [], set()
    for _ in range(ROUNDS):
        ms, seen = import_time("lepton_nb")
        ours.append(ms)
        pulled |= seen
        theirs.append(import_time("ipyparallel")[0])
    a, b = statistics.median(ours), statistics.median(theirs)
    line = (
        f"import lepton_nb {a:.1f} ms vs import ipyparallel {b:.1f} ms (median of {ROUNDS}): "
        f"ratio {a / b:.3f}; heavy or notebook-only modules imported: {sorted(pulled) or 'none'}"
    )
    print(line)
    record("bench_import", line)


if __name__ == "__main__":
    main()
