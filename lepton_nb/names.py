"""Which strings can be bound as a variable on the ranks and in the notebook."""

from __future__ import annotations

import keyword


def is_name(name: object) -> bool:
    """True when ``name`` is a Python name that can be assigned: an identifier, not a keyword."""
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
