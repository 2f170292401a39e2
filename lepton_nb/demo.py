"""``python -m lepton_nb.demo``: run the quickstart notebook headless on the lepton kernel.

It starts a local 2-engine cluster (from inside the notebook), runs an
all_reduce on every rank, prints each rank's result, and says where the
executed notebook was written.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

NOTEBOOK = Path("example_notebooks/01_quickstart.ipynb")


def main(argv: list[str] | None = None) -> int:
    """Execute ``notebook`` with nbclient and report what each rank computed."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", nargs="?", default=str(NOTEBOOK))
    parser.add_argument("--out", default="build/01_quickstart.executed.ipynb")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per cell")
    args = parser.parse_args(argv)

    nb = nbformat.read(args.notebook, as_version=4)
    print(f"Running {args.notebook} on the 'lepton' kernel (a local 2-engine cluster) ...")
    start = time.monotonic()
    client = NotebookClient(
        nb,
        kernel_name="lepton",
        timeout=args.timeout,
        resources={"metadata": {"path": str(Path(args.notebook).parent)}},
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        client.execute()
    except CellExecutionError as e:
        nbformat.write(nb, out)
        print(f"A cell failed; the partial notebook is in {out.resolve()}\n{e}", file=sys.stderr)
        return 1
    nbformat.write(nb, out)
    print(f"Done in {time.monotonic() - start:.1f} s. Each rank's result:")
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.startswith(
            "%%lepton_distributed --gather total"
        ):
            continue
        lines = [
            line for o in cell.outputs if o.output_type == "stream" for line in o.text.splitlines()
        ]
        for line in sorted(lines, key=_rank_of):  # in rank order, however they arrived
            print("  " + line)
    print(f"Executed notebook written to {out.resolve()}")
    return 0


def _rank_of(line: str) -> int:
    """r of a ``[rank r] ...`` line (-1 for any other line)."""
    found = re.match(r"\[rank (\d+)\]", line)
    return int(found.group(1)) if found else -1


if __name__ == "__main__":
    sys.exit(main())
