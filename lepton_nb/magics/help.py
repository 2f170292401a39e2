"""Each magic's own help and options, as ``%lepton_cluster?`` shows them (the docs' magics
reference is generated from here, so it cannot drift from the magics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .args import cluster_args, distributed_args, pull_args, push_args
from .monitor import monitor_args
from .tasks import map_args

#: Every magic: its kind ("line" or "cell") and the magic_arguments spec that parses its line.
SPECS: dict[str, tuple[str, Callable[..., Any]]] = {
    "lepton_cluster": ("line", cluster_args),
    "lepton_distributed": ("cell", distributed_args),
    "lepton_push": ("line", push_args),
    "lepton_pull": ("line", pull_args),
    "lepton_map": ("line", map_args),
    "lepton_monitor": ("line", monitor_args),
}


def magic_help(name: str) -> str:
    """The help of magic ``name``, exactly as ``%name?`` shows it.

    Parameters
    ----------
    name : str
        The magic's name without ``%``, e.g. ``"lepton_cluster"``.

    Returns
    -------
    str
        Its usage line, description and options, as argparse writes them.

    Raises
    ------
    KeyError
        If ``name`` is not one of lepton_nb's magics.
    """
    return SPECS[name][1].__doc__ or ""


def magic_options(name: str) -> list[str]:
    """Every option string that magic ``name``'s parser accepts.

    Parameters
    ----------
    name : str
        The magic's name without ``%``, e.g. ``"lepton_cluster"``.

    Returns
    -------
    list of str
        The option strings, e.g. ``["-n", "--gpus", ...]`` (argparse's own ``-h`` left out).

    Raises
    ------
    KeyError
        If ``name`` is not one of lepton_nb's magics.
    """
    parser = SPECS[name][1].parser  # type: ignore[attr-defined]  # set by magic_arguments
    # argparse lists its actions only on this attribute; -h/--help is argparse's own
    return [s for action in parser._actions for s in action.option_strings if s not in ("-h", "--help")]
