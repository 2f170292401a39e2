"""Real small file systems for the transfer tests."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def tmpfs(tmp_path):
    """Mount real tmpfs folders of a given size (needs root); unmounted after the test."""
    mounted: list[str] = []

    def mount(name: str, size: str) -> str:
        where = tmp_path / name
        where.mkdir()
        run = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        if run.returncode:
            pytest.skip(f"mounting a tmpfs needs root: {run.stderr.strip()}")
        mounted.append(str(where))
        return str(where)

    yield mount
    for where in mounted:
        subprocess.run(["umount", where], check=True, timeout=30)
