"""The example notebooks in notebooks/ run from top to bottom, headless.

Each notebook runs in a fresh ``python3`` kernel (this interpreter, through ipykernel) in
a temporary copy of notebooks/, so that its exports and outputs never land in the
repository. No browser ever connects, so no viewer becomes ready: the notebooks must
neither fail nor block on that (waits have short timeouts or check ``viewer.ready``).
The committed notebooks must carry no outputs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import cellucid

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 120
CLEANUP_TAG = "cleanup"  # a notebook's final clean-up cell (checks run just before it)


def _run(
    name: str, tmp_path: Path, before_cleanup: Callable[[Path], None] | None = None
) -> tuple[str, Path]:
    """Execute notebook ``name`` in a copy of notebooks/; return its text output and folder.

    A failing cell raises ``CellExecutionError`` (with the traceback) and fails the test.
    """
    workdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS_DIR, workdir)
    nb = nbformat.read(workdir / name, as_version=4)
    seen_cleanup: list[int] = []

    def on_cell_execute(cell: Any, cell_index: int) -> None:
        if CLEANUP_TAG in cell.metadata.get("tags", ()):
            seen_cleanup.append(cell_index)
            if before_cleanup is not None:
                before_cleanup(workdir)

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        on_cell_execute=on_cell_execute,
    )
    client.execute()
    if before_cleanup is not None:
        assert seen_cleanup, f"{name} has no cell tagged {CLEANUP_TAG!r}"
    text = []
    for cell in nb.cells:
        for output in cell.get("outputs", ()):
            assert output.output_type != "error", f"{name}: {output.ename}: {output.evalue}"
            if output.output_type == "stream":
                text.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                text.append(output.data.get("text/plain", ""))
    joined = "\n".join(text)
    # hooks run on a background thread: their errors are logged, not raised
    assert "Traceback" not in joined, joined
    return joined, workdir


def test_every_notebook_is_executed() -> None:
    assert NOTEBOOKS == [
        "01_quickstart.ipynb",
        "02_export_and_share.ipynb",
        "03_hooks.ipynb",
        "atlas_scale.ipynb",
        "compare_groups.ipynb",
    ]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebooks_have_no_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb.metadata, "saved widget state: clear the outputs"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], f"{name}: cell {cell.id} has outputs"
        assert cell.execution_count is None, f"{name}: cell {cell.id} has an execution count"


def test_quickstart(tmp_path: Path) -> None:
    text, _ = _run("01_quickstart.ipynb", tmp_path)
    assert "Viewer ready: False" in text
    assert "0 cells selected" in text  # nobody lassoed anything
    assert "Cluster 4 has 66 cells" in text
    assert "Nothing selected yet" in text
    assert "No 3D embedding" in text
    assert "AnnDataViewer(port=" in text
    assert text.rstrip().endswith("status=stopped)")


def test_export_and_share(tmp_path: Path) -> None:
    checked: list[Path] = []

    def check_exports(workdir: Path) -> None:
        root = workdir / "exports"
        assert cellucid.validate_export(root / "pbmc68k") == []
        assert cellucid.validate_export(root) == []  # both datasets and datasets.json
        catalog = json.loads((root / "datasets.json").read_text())
        assert catalog["default"] == "pbmc68k"
        by_id = {entry["id"]: entry for entry in catalog["datasets"]}
        assert set(by_id) == {"pbmc68k", "pbmc68k_markers"}
        assert by_id["pbmc68k"]["n_cells"] == by_id["pbmc68k_markers"]["n_cells"] == 700
        assert by_id["pbmc68k"]["n_genes"] == 765
        assert by_id["pbmc68k_markers"]["n_genes"] == 8
        identity = json.loads((root / "pbmc68k" / "dataset_identity.json").read_text())
        assert identity["name"] == "PBMC 68k (reduced)"
        checked.append(root)

    text, workdir = _run("02_export_and_share.ipynb", tmp_path, before_cleanup=check_exports)
    assert checked
    assert text.count("no violations") == 2
    assert "CellucidViewer(" in text
    assert "Open this address in a new browser tab: http://127.0.0.1:" in text
    assert "unsorted or duplicate indices" not in text  # the notebook tidies adata.X
    assert not (workdir / "exports").exists()  # the clean-up cell removed it
    assert sorted(p.name for p in workdir.iterdir()) == NOTEBOOKS


def test_hooks(tmp_path: Path) -> None:
    text, workdir = _run("03_hooks.ipynb", tmp_path)
    assert "Ready yet? False" in text
    assert "The viewer has not loaded" in text  # wait_for_ready timed out, politely
    assert "Selection: none yet" in text
    assert "Replies to ping: none yet" in text
    assert "not waiting" in text
    assert "no session to fetch" in text
    # the events sent through the server reached every hook and the observer
    assert "Selection: {'n_cells': 95, 'tool': 'lasso', 'clusters': {'4': 61," in text
    assert "Selection sizes seen by observe: [95]" in text
    assert "Custom events: [{'note': 'sent from Python'}]" in text
    assert "Last events: ['selection', 'click', 'hover', 'my_event']" in text
    assert "server_running: True" in text
    assert text.rstrip().endswith("status=stopped)")
    assert sorted(p.name for p in workdir.iterdir()) == NOTEBOOKS  # nothing left behind


def test_compare_groups(tmp_path: Path) -> None:
    text, workdir = _run("compare_groups.ipynb", tmp_path)
    assert "Every statistic agrees; same top 20 genes in the same order: True" in text
    assert "unsorted or duplicate indices" not in text  # the notebook tidies adata.X
    assert sorted(p.name for p in workdir.iterdir()) == NOTEBOOKS


def test_atlas_scale(tmp_path: Path) -> None:
    text, workdir = _run("atlas_scale.ipynb", tmp_path, before_cleanup=lambda _: None)
    assert "first call (builds the cache):" in text
    assert "of the top 20 genes are c3's markers" in text
    assert '200 {"status":"ok","type":"anndata"' in text
    assert "temporary folder removed: True" in text
    assert sorted(p.name for p in workdir.iterdir()) == NOTEBOOKS  # all in a temporary folder
