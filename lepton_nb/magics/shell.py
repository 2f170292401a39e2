"""The notebook's namespace, as the magics see it."""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell


def user_namespace(shell: InteractiveShell | None) -> dict[str, Any]:
    """The namespace of the shell a magic runs in (magics only ever run inside one)."""
    if shell is None:
        raise RuntimeError("lepton_nb's magics run inside an IPython shell")
    return shell.user_ns  # type: ignore[no-any-return]
