"""Sphinx configuration of lepton_nb's documentation (``make docs``)."""

from __future__ import annotations

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.dirname(HERE))

project = "lepton_nb"
author = "the lepton_nb developers"
copyright = "2026, the lepton_nb developers"
release = version = "0.1.0"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "lepton_magics",
]
html_theme = "furo"
html_title = "lepton_nb"
html_static_path = ["_static"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# the example notebooks are rendered with the outputs they were committed with: never run here
nb_execution_mode = "off"

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
napoleon_google_docstring = False
napoleon_numpy_docstring = True

# no internet here: linkcheck checks the site's own links and anchors only
linkcheck_ignore = [r"^https?://", r"^mailto:"]


def _copy_notebooks(app: object) -> None:
    """The example notebooks, as committed, into examples/ (one copy, refreshed each build)."""
    src = os.path.join(os.path.dirname(HERE), "example_notebooks")
    dst = os.path.join(HERE, "examples")
    for name in sorted(os.listdir(src)):
        if name.endswith(".ipynb"):
            target = os.path.join(dst, name)
            if not os.path.exists(target) or open(os.path.join(src, name), "rb").read() != open(target, "rb").read():
                shutil.copyfile(os.path.join(src, name), target)


def setup(app):  # noqa: ANN001, ANN201 - Sphinx's hook
    app.connect("builder-inited", _copy_notebooks)
