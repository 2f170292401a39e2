"""Distributed training from the notebook: :class:`Trainer` (data and pipeline parallel)."""

from __future__ import annotations

from .trainer import Trainer

__all__ = ["Trainer"]
