"""Checkpoint folders: complete only with meta.json; the newest complete one wins."""

from __future__ import annotations

import os
import stat

from lepton_nb.train import checkpoint


def test_latest_complete_checkpoint(tmp_path):
    root = str(tmp_path)
    assert checkpoint.latest(root) is None and checkpoint.latest(None) is None
    for epoch in (0, 1, 2):
        os.makedirs(checkpoint.folder(root, epoch))
    checkpoint.complete(root, 0, {"epoch": 0, "history": [{"epochs": 1}]})
    checkpoint.complete(root, 1, {"epoch": 1, "history": [{"epochs": 1}, {"epochs": 2}]})
    # epoch 2 has no meta.json: interrupted, ignored
    folder, meta = checkpoint.latest(root)
    assert folder.endswith("epoch-0001") and meta["epoch"] == 1
    mode = stat.S_IMODE(os.stat(os.path.join(folder, "meta.json")).st_mode)
    assert mode == 0o600
    checkpoint.clear(root)
    assert checkpoint.latest(root) is None and os.listdir(root) == []
