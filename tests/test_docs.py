"""The guide in docs/ covers what the package offers (cheap checks; `make docs` builds it).

The full build (Sphinx, the executed tutorials, the screenshots) runs in CI through
`make docs`; these tests catch the usual drift in a second: a public name or a notebook
added without its page, a screenshot referenced but never rendered, a CDN sneaking in.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

import cellucid
from cellucid.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"
sys.path.insert(0, str(DOCS / "_ext"))

from cli_reference import subcommands  # noqa: E402


def _api_text() -> str:
    return "\n".join(p.read_text() for p in sorted(API.glob("*.md")))


def _toctree_entries(page: Path) -> list[str]:
    entries: list[str] = []
    for block in re.findall(r"```\{toctree\}\n(.*?)```", page.read_text(), flags=re.S):
        entries += [line.strip() for line in block.splitlines() if line.strip() and ":" not in line]
    return entries


@pytest.mark.parametrize("name", [n for n in cellucid.__all__ if n != "__version__"])
def test_every_public_name_has_an_api_entry(name: str) -> None:
    text = _api_text()
    assert re.search(rf"^\.\. auto(function|class):: {re.escape(name)}$", text, re.M), (
        f"cellucid.{name} has no autofunction/autoclass in docs/api/"
    )
    assert re.search(rf"^   {re.escape(name)}$", text, re.M), (
        f"cellucid.{name} is missing from the autosummary tables of docs/api/index.md"
    )


def test_version_and_rank_genes_are_documented() -> None:
    text = _api_text()
    assert "cellucid.__version__" in text
    assert ".. autofunction:: rank_genes" in text


def test_cli_page_renders_every_subcommand_from_the_parser() -> None:
    parser = build_parser()
    names = set(subcommands(parser))
    choices = {
        name
        for action in parser._actions
        if action.__class__.__name__ == "_SubParsersAction"
        for name in action.choices
    }
    assert names == choices and {"prepare", "serve", "validate", "datasets"} <= names
    assert "```{cli-reference}" in (API / "cli.md").read_text()
    # every subcommand is also named somewhere in the guide's prose
    guide = "\n".join(p.read_text() for p in (DOCS / "guide").glob("*.md"))
    for name in names:
        assert f"cellucid {name}" in guide, f"`cellucid {name}` is not mentioned in docs/guide/"


def test_every_guide_page_is_in_the_index() -> None:
    entries = _toctree_entries(DOCS / "index.md")
    pages = {f"guide/{p.stem}" for p in (DOCS / "guide").glob("*.md")}
    assert pages <= set(entries), pages - set(entries)
    assert {"tutorials/index", "api/index"} <= set(entries)
    assert set(_toctree_entries(API / "index.md")) == {p.stem for p in API.glob("*.md")} - {"index"}


def test_every_notebook_is_an_executed_tutorial_without_a_copy() -> None:
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    tutorials = DOCS / "tutorials"
    linked = sorted(p.name for p in tutorials.glob("*.ipynb"))
    assert linked == notebooks
    for name in linked:
        path = tutorials / name
        assert path.is_symlink(), f"docs/tutorials/{name} must link to notebooks/, not copy it"
        assert path.resolve() == (ROOT / "notebooks" / name).resolve()
    assert sorted(_toctree_entries(tutorials / "index.md")) == sorted(
        Path(n).stem for n in notebooks
    )


def test_screenshots_in_the_guide_are_rendered_by_images_py() -> None:
    tree = ast.parse((DOCS / "images.py").read_text())
    rendered = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "shot"
        and isinstance(node.args[0], ast.Constant)
    }
    used = set()
    for page in DOCS.rglob("*.md"):
        used |= set(re.findall(r"_static/generated/([\w-]+)\.png", page.read_text()))
    assert used, "the guide shows no screenshot"
    assert used <= rendered, f"referenced but never rendered: {sorted(used - rendered)}"


def test_the_build_is_offline_and_strict() -> None:
    conf = (DOCS / "conf.py").read_text()
    assert 'html_theme = "furo"' in conf
    assert "nb_ipywidgets_js = {}" in conf  # myst-nb would load require.js from a CDN
    assert "nb_execution_raise_on_error = True" in conf
    makefile = (ROOT / "Makefile").read_text()
    assert "-m sphinx -W --keep-going -b html docs docs/_build/html" in makefile
    assert '-e ".[test,docs]"' in makefile
    assert re.search(r"^docs: docs-images", makefile, re.M)
    assert "make docs" in (ROOT / ".ci" / "run").read_text()


def test_docs_extra_declares_the_tooling() -> None:
    # tomllib is Python 3.11+ and the package supports 3.10: read the extra's list directly
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^docs = \[\n(.*?)^\]", text, flags=re.S | re.M)
    assert block, "pyproject.toml has no `docs` optional extra"
    names = set(re.findall(r'^\s*"([A-Za-z0-9_.-]+)', block.group(1), flags=re.M))
    assert {"sphinx", "myst-parser", "myst-nb", "furo", "scanpy", "ipykernel"} <= names
