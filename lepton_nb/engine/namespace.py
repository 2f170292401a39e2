"""The rank's user namespace: the one place that asks the engine's IPython shell for it."""

from __future__ import annotations

from typing import Any

NO_SHELL = "no IPython shell in this process: user namespaces exist on engines only"


def user_namespace() -> dict[str, Any]:
    """The engine's user namespace (what a distributed cell's code sees)."""
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None:
        raise RuntimeError(NO_SHELL)
    return ip.user_ns  # type: ignore[no-any-return]


def values(names: list[str], what: str = "") -> dict[str, Any]:
    """The values of ``names`` here; NameError naming the first missing one (after ``what``)."""
    ns = user_namespace()
    missing = [n for n in names if n not in ns]
    if missing:
        raise NameError(f"{what}name {missing[0]!r} is not defined on this rank")
    return {n: ns[n] for n in names}
