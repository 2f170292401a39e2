"""Runtime files that tell a Jupyter server where a cluster publishes its metrics.

While a cluster runs, its notebook writes ``lepton-cluster-<id>.json`` (mode
0600) into the Jupyter runtime directory, the one the server's kernel
connection files live in. It names the cluster, the kernel that started it,
the ZMQ endpoint its snapshots are published on, and the key that signs them.
The file is removed when the cluster stops (and at interpreter exit).

A reader (:func:`load`) takes a file only if it is a regular file (a symlink,
a FIFO or a folder is refused without following or reading it), mode 0600,
this user's, at most :data:`MAX_FILE_BYTES`, strict JSON, and every field of
the expected type (:data:`FIELDS`); anything else raises :class:`Unusable`.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import stat
from collections.abc import Callable
from typing import Any

from jupyter_core.paths import jupyter_runtime_dir, secure_write

from . import wire

PREFIX = "lepton-cluster-"
#: A runtime file is a few hundred bytes; a larger one is not read.
MAX_FILE_BYTES = 64 * 1024
#: The largest process id any OS hands out (Linux: at most 2**22).
_MAX_PID = 2**31 - 1


def _text(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 1024


def _hex_key(v: Any) -> bool:
    try:
        return _text(v) and len(bytes.fromhex(v)) >= 16
    except ValueError:
        return False


#: The fields every runtime file has, and what each must hold.
FIELDS: dict[str, Callable[[Any], bool]] = {
    "cluster": _text,
    "endpoint": lambda v: _text(v) and v.startswith("tcp://"),
    "key": _hex_key,
    "pid": lambda v: wire.is_int(v) and 0 < v <= _MAX_PID,
}
#: Fields a runtime file may have; None stands for unknown.
OPTIONAL: dict[str, Callable[[Any], bool]] = {
    "kernel": lambda v: v is None or _text(v),
    "started": lambda v: v is None or wire.is_number(v),
}


class Unusable(ValueError):
    """A runtime file that is unsafe or malformed; the message says why."""

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


def load(path: str) -> dict[str, Any]:
    """The cluster described by ``path``; FileNotFoundError if gone, Unusable if unsafe or malformed."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)  # never follows a symlink, never waits on a FIFO
    except FileNotFoundError:
        raise
    except OSError as e:  # ELOOP for a symlink
        raise Unusable(f"ignoring {path}: cannot open it without following links: {e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Unusable(f"ignoring {path}: not a regular file")
        if stat.S_IMODE(st.st_mode) & 0o077 or st.st_uid != os.getuid():
            raise Unusable(f"ignoring {path}: it must be mode 0600 and owned by this user")
        data = b""
        while len(data) <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as e:
        raise Unusable(f"ignoring unreadable cluster file {path}: {e}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise Unusable(f"ignoring {path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        info = wire.loads(data)
    except wire.BadMessage as e:
        raise Unusable(f"ignoring unreadable cluster file {path}: {e}") from None
    if not isinstance(info, dict) or any(k not in info for k in FIELDS):
        raise Unusable(f"ignoring {path}: it lacks {', '.join(FIELDS)}")
    for name, check in (*FIELDS.items(), *OPTIONAL.items()):
        if not check(info.get(name)):
            raise Unusable(f"ignoring {path}: its {name!r} is {info.get(name)!r:.80}")
    info["path"] = path
    return info


def read(path: str) -> dict[str, Any] | None:
    """The cluster described by ``path``, or None (logged) when it is gone, unsafe or malformed."""
    try:
        return load(path)
    except FileNotFoundError:
        return None
    except Unusable as e:
        log.warning("%s", e)
        return None


def find(folder: str | None = None) -> list[str]:
    """Paths of every cluster file in ``folder`` (default: the Jupyter runtime directory)."""
    return sorted(glob.glob(os.path.join(folder or runtime_dir(), f"{PREFIX}*.json")))
