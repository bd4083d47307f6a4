"""``{cli-reference}`` directive: the command line reference from ``build_parser()``.

Renders the top-level ``cellucid --help`` and, for every subcommand, a section with its
description and its ``--help`` text, straight from the argparse parser that ``cellucid``
runs. A new subcommand or option appears in the guide without editing a page.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of ``parser`` by name (aliases left out)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: dict[str, argparse.ArgumentParser] = {}
            for name, sub in action.choices.items():
                if sub not in seen.values():
                    seen[name] = sub
            return seen
    return {}


def _help_text(parser: argparse.ArgumentParser) -> str:
    # a fixed width: the page must not depend on the terminal of whoever builds it
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "90"
    try:
        return parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


class CliReference(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from cellucid.cli import build_parser

        parser = build_parser()
        out: list[nodes.Node] = [nodes.literal_block(text=_help_text(parser), language="text")]
        for name, sub in subcommands(parser).items():
            section = nodes.section(ids=[f"cellucid-{name}"], names=[f"cellucid {name}"])
            section += nodes.title(text=f"cellucid {name}")
            section += nodes.literal_block(text=_help_text(sub), language="text")
            out.append(section)
        return out


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
