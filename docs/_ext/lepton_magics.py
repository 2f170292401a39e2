"""A Sphinx directive, ``lepton-magics``: each magic's own help (lepton_nb.magics.help), so the
magics reference is what ``%lepton_cluster?`` shows and cannot drift from it."""

from __future__ import annotations

import textwrap

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


class MagicsDirective(SphinxDirective):
    """One section per magic: its usage, help and options, as argparse writes them."""

    def run(self) -> list[nodes.Node]:
        from lepton_nb.magics.help import SPECS, magic_help

        out: list[nodes.Node] = []
        for name, (kind, _) in SPECS.items():
            prefix = "%%" if kind == "cell" else "%"
            section = nodes.section(ids=[name.replace("_", "-")])
            section += nodes.title(text=f"{prefix}{name}")
            help_text = magic_help(name).strip()
            if help_text.startswith("::"):  # magic_arguments' reST literal marker
                help_text = textwrap.dedent(help_text[2:].strip("\n"))
            block = nodes.literal_block(help_text, help_text)
            block["language"] = "text"
            section += block
            out.append(section)
        return out


def setup(app):  # noqa: ANN001, ANN201 - Sphinx's hook
    app.add_directive("lepton-magics", MagicsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
