"""Append a dated line to benchmarks/RESULTS.md."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def record(name: str, line: str) -> None:
    """Append ``line`` under today's date with the command that produced it."""
    today = datetime.date.today().isoformat()
    command = " ".join(["python"] + sys.argv)
    with RESULTS.open("a") as f:
        f.write(f"- {today} `{command}` ({name}): {line}\n")
    print(f"recorded in {RESULTS}")
