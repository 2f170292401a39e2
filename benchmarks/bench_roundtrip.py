"""Round trip of a trivial distributed cell against ipyparallel's DirectView.execute.

On one cluster of ``--ranks`` CPU engines (default 2; ``--ranks 8`` for the fan-out), 50 rounds
interleaved, back to back: a ``%%lepton_distributed`` cell run through a real IPython shell,
and ``DirectView.execute(block=True)`` of the same code on the same engines. Prints both
medians and the ratio (goal: <= 1.3).

    python benchmarks/bench_roundtrip.py [--ranks 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _results import record  # noqa: E402

ROUNDS = 50
CODE = "x = rank + 1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ranks", type=int, default=2, help="CPU engines (default 2)")
    args = parser.parse_args()
    os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="lepton-bench-"))
    from IPython.testing.globalipapp import start_ipython

    import lepton_nb

    ip = start_ipython()
    ip.run_line_magic("load_ext", "lepton_nb")
    with lepton_nb.Cluster(n=args.ranks, gpus="none") as cluster:
        view = cluster.client[:]
        view.block = True
        for _ in range(5):  # warm both paths
            ip.run_cell_magic("lepton_distributed", "", CODE)
            view.execute(CODE)
        ours, theirs = [], []
        for _ in range(ROUNDS):
            t = time.perf_counter()
            ip.run_cell_magic("lepton_distributed", "", CODE)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            view.execute(CODE)
            theirs.append(time.perf_counter() - t)
    m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
    ratio = m_ours / m_theirs
    line = (
        f"%%lepton_distributed median {m_ours * 1e3:.2f} ms, DirectView.execute median "
        f"{m_theirs * 1e3:.2f} ms, ratio {ratio:.2f} "
        f"(goal <= 1.3; {ROUNDS} rounds interleaved, {args.ranks} CPU engines)"
    )
    print(line)
    record("bench_roundtrip", line)


if __name__ == "__main__":
    main()
