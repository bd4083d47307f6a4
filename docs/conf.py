"""Sphinx configuration of the cellucid guide (``make docs``).

Markdown pages (MyST), tutorials executed by myst-nb, API reference from the numpydoc
docstrings (napoleon), the CLI reference from ``cellucid.cli.build_parser()``
(``_ext/cli_reference.py``). Everything works offline: furo ships its fonts and scripts,
and no page loads anything from a CDN (see ``nb_ipywidgets_js`` below).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))  # the package from this checkout
sys.path.insert(0, str(HERE / "_ext"))

import cellucid  # noqa: E402

project = "cellucid"
author = "the cellucid developers"
copyright = "the cellucid developers"
release = cellucid.__version__
version = release

extensions = [
    "myst_nb",  # also registers myst_parser
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "cli_reference",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "README.md"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_theme = "furo"
html_title = f"cellucid {release}"
html_show_sourcelink = False

# MyST
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist", "substitution"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]

# Notebooks: executed on every build, in a temporary folder (they write exports), and a
# failing cell fails the build. No browser connects, so viewers never become ready: the
# notebooks are written for that (see tests/test_notebooks.py).
# CELLUCID_DOCS_EXECUTE=off skips it for quick local edits of the prose (CI never sets it).
nb_execution_mode = "off" if os.environ.get("CELLUCID_DOCS_EXECUTE") == "off" else "force"
nb_execution_in_temp = True
nb_execution_timeout = 180
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# The widget's live view needs a running kernel; the static page shows its text form.
# Empty: no ipywidgets/require.js from a CDN.
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

# API reference
autosummary_generate = True
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True  # a few docstrings use the Google form
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True

# Cross references to other projects would need their inventories from the network: the
# build runs offline, so intersphinx has no mapping and such names stay plain text.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
nitpicky = False
