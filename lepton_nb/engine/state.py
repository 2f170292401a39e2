"""This rank's own facts once it has joined the group: rank, world size, local rank, device."""

from __future__ import annotations

from typing import Any

NOT_ON_A_RANK = (
    "This process is not a lepton_nb rank. Call it inside cluster.run(fn) "
    "or a %%lepton_distributed cell."
)

_state: dict[str, Any] = {}


def _get(key: str) -> Any:
    if key not in _state:
        raise RuntimeError(NOT_ON_A_RANK)
    return _state[key]


def rank() -> int:
    """This rank's index in the process group, 0 .. world_size - 1."""
    return int(_get("rank"))


def world_size() -> int:
    """The number of ranks in the process group."""
    return int(_get("world_size"))


def local_rank() -> int:
    """This rank's index among the ranks on the same host."""
    return int(_get("local_rank"))


def get_device() -> Any:
    """This rank's ``torch.device``: ``cuda:0`` (its one visible GPU) or ``cpu``."""
    return _get("device")


def current() -> dict[str, Any] | None:
    """rank, world_size, local_rank and device; None before this engine joined a group."""
    return dict(_state) if _state else None


def set_state(**facts: Any) -> None:
    """Record this rank's facts (called when it joins the group)."""
    _state.clear()
    _state.update(facts)


def clear() -> None:
    """Forget them again (the engine left the group)."""
    _state.clear()
