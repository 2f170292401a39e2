"""Checkpoints on disk: one folder per epoch, complete once its ``meta.json`` is written.

``<dir>/epoch-0003/rank-<r>.pt`` holds what rank r keeps (rank 0: the model and
optimizer; every rank: its error-feedback residuals; a pipeline stage: its
layers and optimizer). The notebook writes ``meta.json`` (epoch and history)
last, atomically, after every rank has written its file; a folder without it is
an interrupted checkpoint and is ignored. Ranks on other hosts need ``dir`` on a
shared file system.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

_EPOCH = re.compile(r"^epoch-(\d+)$")


def folder(root: str, epoch: int) -> str:
    """Where the checkpoint of ``epoch`` (0-based) lives."""
    return os.path.join(root, f"epoch-{epoch:04d}")


def complete(root: str, epoch: int, meta: dict[str, Any]) -> None:
    """Mark the checkpoint of ``epoch`` complete (its ranks' files are written)."""
    path = os.path.join(folder(root, epoch), "meta.json")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f)
    os.replace(tmp, path)


def clear(root: str) -> None:
    """Remove the epoch folders under ``root`` (a fresh ``fit`` starts its checkpoints anew)."""
    if os.path.isdir(root):
        for name in os.listdir(root):
            if _EPOCH.match(name):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def latest(root: str | None) -> tuple[str, dict[str, Any]] | None:
    """The newest complete checkpoint under ``root``: (folder, meta), or None."""
    if not root or not os.path.isdir(root):
        return None
    epochs = sorted(
        (int(m.group(1)) for name in os.listdir(root) if (m := _EPOCH.match(name))), reverse=True
    )
    for epoch in epochs:
        path = os.path.join(folder(root, epoch), "meta.json")
        try:
            with open(path) as f:
                return folder(root, epoch), json.load(f)
        except (OSError, ValueError):
            continue
    return None
