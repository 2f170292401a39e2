"""The documentation site builds with no warnings, its internal links hold, and its references
cannot drift: every public name is in the API reference, every magic option in the magics one.

The build is the real one (``make docs``): ``sphinx-build -W --keep-going -b html``, then
``-b linkcheck`` on the same doctrees (external links are not checked: no internet here).
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys

import pytest

import lepton_nb
from lepton_nb.magics.help import SPECS, magic_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDES = (
    "clusters", "distributed-cells", "data-movement", "compression", "training", "tasks", "monitor",
    "jupyterhub", "security", "no-gpu", "troubleshooting",
)  # fmt: skip


def _sphinx(builder: str, out: str, doctrees: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", builder, "-d", doctrees,
         os.path.join(ROOT, "docs"), out],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("docs")
    doctrees = str(base / "doctrees")
    built = _sphinx("html", str(base / "html"), doctrees)
    return base, doctrees, built


def test_the_site_builds_with_no_warnings(site):
    _, _, built = site
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-6000:]
    assert "WARNING" not in built.stderr and "ERROR" not in built.stderr, built.stderr[-6000:]


def test_internal_links_hold(site):
    base, doctrees, _ = site
    checked = _sphinx("linkcheck", str(base / "linkcheck"), doctrees)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    with open(base / "linkcheck" / "output.json") as f:
        results = [json.loads(line) for line in f if line.strip()]
    broken = [r for r in results if r["status"] == "broken"]
    assert not broken, broken


def test_every_public_name_is_in_the_api_reference(site):
    from sphinx.util.inventory import InventoryFile

    base, _, _ = site
    with open(base / "html" / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    documented = {name for entries in inventory.values() for name in entries}
    missing = [name for name in lepton_nb.__all__ if f"lepton_nb.{name}" not in documented]
    assert not missing, missing
    for module in ("lepton_nb.compress", "lepton_nb.collective", "lepton_nb.topology"):
        assert module in documented, module
    for name in __import__("lepton_nb.compress", fromlist=["__all__"]).__all__:
        assert f"lepton_nb.compress.{name}" in documented, name


@pytest.mark.parametrize("magic", sorted(SPECS))
def test_the_magics_reference_lists_every_option_of_each_magic(site, magic):
    base, _, _ = site
    raw = (base / "html" / "reference" / "magics.html").read_text(encoding="utf-8")
    found = re.search(rf'<section id="{magic.replace("_", "-")}">(.*?)</section>', raw, re.S)
    assert found, f"no section for %{magic}"
    section = html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))
    prefix = "%%" if SPECS[magic][0] == "cell" else "%"
    assert f"{prefix}{magic}" in section
    options = magic_options(magic)
    assert options, magic
    missing = [o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", section)]
    assert not missing, (magic, missing)


def test_every_guide_and_example_notebook_is_a_page(site):
    base, _, _ = site
    for guide in GUIDES:
        assert (base / "html" / "guides" / f"{guide}.html").exists(), guide
    notebooks = sorted(n[:-6] for n in os.listdir(os.path.join(ROOT, "example_notebooks")) if n.endswith(".ipynb"))
    assert notebooks
    for name in notebooks:
        page = base / "html" / "examples" / f"{name}.html"
        assert page.exists(), name
        assert "cell_output" in page.read_text(), f"{name} is rendered without its outputs"
