"""Execute the example notebooks in place, so that the docs show their outputs (``make notebooks``).

The site is built from the notebooks as committed (nothing runs at build time); run this after
changing a notebook, then commit it. Each runs on the ``lepton`` kernel, as nbval runs it in
``make test``; ``08_multi_host`` needs the multi-host rig (root, Slurm, sshd: tests/hosts/rig.py),
which this brings up first and removes at the end, even after a failure.

    python docs/run_notebooks.py [NAME ...]     # default: every notebook in example_notebooks/
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "example_notebooks"
RIG_NOTEBOOKS = ("08_multi_host",)


def main(argv: list[str] | None = None) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebooks to run (e.g. 06_image_tiles); default all")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per cell")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))

    # a private IPython profile, as the test session has: kernels inherit it
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="lepton-notebooks-")
    sys.path.insert(0, str(ROOT))
    rig = None
    failed = []
    try:
        for name in names:
            path = NOTEBOOKS / f"{name}.ipynb"
            if name in RIG_NOTEBOOKS and rig is None:
                import conftest  # the test session's site configuration for the rig
                from tests.hosts import rig as rig_module

                rig = rig_module
                conftest.site_config(rig.shared())
            nb = nbformat.read(path, as_version=4)
            start = time.monotonic()
            client = NotebookClient(nb, kernel_name="lepton", timeout=args.timeout,
                                    resources={"metadata": {"path": str(NOTEBOOKS)}})  # fmt: skip
            try:
                client.execute()
            except CellExecutionError as e:
                print(f"{name}: a cell failed, the notebook is left as it was\n{e}", file=sys.stderr)
                failed.append(name)
                continue
            for cell in nb.cells:  # execution counts and timings would churn every run's diff
                cell.get("metadata", {}).pop("execution", None)
            nbformat.write(nb, path)
            print(f"{name}: executed in {time.monotonic() - start:.1f} s, outputs written")
    finally:
        if rig is not None:
            rig.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
