"""The public API's docstrings follow one style (NumPy): every parameter of every public function,
method and class is named in its ``Parameters`` section.

Public: ``lepton_nb.__all__`` (the Trainer among them), ``lepton_nb.compress``,
``lepton_nb.collective`` and ``lepton_nb.topology``; for a class, its constructor and the public
methods it defines (for :class:`lepton_nb.Cluster`, those of its lepton_nb base classes too).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from typing import Any

import pytest

import lepton_nb

MODULES = ("lepton_nb.compress", "lepton_nb.collective", "lepton_nb.topology")
SECTION = re.compile(r"^Parameters\n-+\n(.*?)(?=^[A-Z][A-Za-z ]+\n-+\n|\Z)", re.S | re.M)


def _public() -> Iterator[tuple[str, Any]]:
    for name in lepton_nb.__all__:
        yield f"lepton_nb.{name}", getattr(lepton_nb, name)
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
        for name in names:
            value = getattr(module, name)
            if getattr(value, "__module__", "").startswith("lepton_nb") and not inspect.ismodule(value):
                yield f"{module_name}.{name}", value


def _callables() -> Iterator[tuple[str, Any]]:
    seen: set[int] = set()
    for name, value in _public():
        if inspect.ismodule(value):  # lepton_nb.monitor: the callable module
            value = value.monitor
        if inspect.isclass(value):
            yield name, value
            classes = [c for c in value.__mro__ if c.__module__.startswith("lepton_nb")]
            for cls in classes if value.__name__ == "Cluster" else [value]:
                for attr, member in vars(cls).items():
                    if not attr.startswith("_") and inspect.isfunction(member) and id(member) not in seen:
                        seen.add(id(member))
                        yield f"{name}.{attr}", member
        elif callable(value):
            yield name, value


def _parameters(obj: Any) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin: nothing to read
        return []
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in signature.parameters.values() if p.name not in ("self", "cls") and p.kind not in skip]


def _documented(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and "__init__" in vars(obj):
        doc += "\n\n" + (inspect.getdoc(obj.__init__) or "")
    return "\n".join(m.group(1) for m in SECTION.finditer(doc))


CASES = sorted({name: obj for name, obj in _callables() if _parameters(obj)}.items())


@pytest.mark.parametrize("name,obj", CASES, ids=[name for name, _ in CASES])
def test_every_parameter_is_named_in_the_numpy_parameters_section(name, obj):
    section = _documented(obj)
    named = set()
    for line in section.splitlines():
        head = re.match(r"^(\*{0,2}[A-Za-z_][\w, *]*?)\s*(:|$)", line)
        if head and not line.startswith(" "):
            named |= {n.strip().lstrip("*") for n in head.group(1).split(",")}
    missing = [p for p in _parameters(obj) if p not in named]
    assert not missing, f"{name}: the Parameters section does not name {missing}"


def test_there_are_public_callables_to_check():
    assert len(CASES) > 50, len(CASES)
