"""Runtime files that tell a Jupyter server where a cluster publishes its metrics.

While a cluster runs, its notebook writes ``lepton-cluster-<id>.json`` (mode
0600) into the Jupyter runtime directory, the one the server's kernel
connection files live in. It names the cluster, the kernel that started it,
the ZMQ endpoint its snapshots are published on, and the key that signs them.
The file is removed when the cluster stops (and at interpreter exit).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import stat
from typing import Any

from jupyter_core.paths import jupyter_runtime_dir, secure_write

PREFIX = "lepton-cluster-"
FIELDS = ("cluster", "endpoint", "key", "pid")

log = logging.getLogger(__name__)


def runtime_dir() -> str:
    """The Jupyter runtime directory (created 0700 if missing)."""
    path = jupyter_runtime_dir()
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def kernel_connection_file() -> str | None:
    """The base name of this kernel's connection file; None outside a kernel."""
    try:
        from ipykernel.connect import get_connection_file

        return os.path.basename(get_connection_file())
    except Exception:  # not in a kernel (a script, a test): no kernel to name
        return None


def write(info: dict[str, Any], folder: str | None = None) -> str:
    """Write ``info`` (cluster, endpoint, key, pid, ...) to a 0600 file; return its path."""
    path = os.path.join(folder or runtime_dir(), f"{PREFIX}{info['cluster']}.json")
    tmp = path + ".tmp"
    with secure_write(tmp) as f:
        json.dump(info, f)
    os.replace(tmp, path)  # readers never see half a file
    return path


def remove(path: str | None) -> None:
    """Remove a runtime file; a missing one is fine."""
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def read(path: str) -> dict[str, Any] | None:
    """The cluster described by ``path``, or None (logged) when it is unsafe or malformed."""
    try:
        st = os.stat(path)
        if stat.S_IMODE(st.st_mode) & 0o077 or st.st_uid != os.getuid():
            log.warning("ignoring %s: it must be mode 0600 and owned by this user", path)
            return None
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable cluster file %s: %s", path, e)
        return None
    if not isinstance(info, dict) or any(k not in info for k in FIELDS):
        log.warning("ignoring %s: it lacks %s", path, ", ".join(FIELDS))
        return None
    info["path"] = path
    return info


def find(folder: str | None = None) -> list[str]:
    """Paths of every cluster file in ``folder`` (default: the Jupyter runtime directory)."""
    return sorted(glob.glob(os.path.join(folder or runtime_dir(), f"{PREFIX}*.json")))
