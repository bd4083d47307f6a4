"""Dataset discovery and datasets.json (SPEC §2.2, §2.11, §6.3)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from _exports import rewrite_json, write_dataset
from cellucid.export.catalog import (
    find_datasets,
    generate_datasets_manifest,
    is_dataset_dir,
    is_export_root,
)
from cellucid.export.validate import validate_export


def _bare(path: Path, **kwargs) -> Path:
    """A quick valid dataset (no genes, graph or vectors)."""
    options = {"n_genes": 0, "connectivity": False, "vectors": False, **kwargs}
    return write_dataset(path, **options).path


# ---- is_dataset_dir / is_export_root ----------------------------------------------------------
@pytest.mark.parametrize("compression", [None, 6])
@pytest.mark.parametrize("dims", [(1,), (2,), (3,), (2, 3)])
def test_is_dataset_dir(tmp_path: Path, compression, dims) -> None:
    assert is_dataset_dir(_bare(tmp_path / "ds", compression=compression, dims=dims))


@pytest.mark.parametrize(
    "remove", ["dataset_identity.json", "obs_manifest.json", "points_2d.bin", "points_3d.bin"]
)
def test_is_dataset_dir_needs_every_piece(tmp_path: Path, remove: str) -> None:
    path = _bare(tmp_path / "ds", dims=(2,) if remove == "points_2d.bin" else (3,))
    if (path / remove).exists():
        (path / remove).unlink()
    assert not is_dataset_dir(path)


def test_is_dataset_dir_other_cases(tmp_path: Path) -> None:
    assert not is_dataset_dir(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    assert not is_dataset_dir(tmp_path / "file")
    path = _bare(tmp_path / "ds", dims=(2,))
    (path / "points_2d.bin").rename(path / "points_4d.bin")
    assert not is_dataset_dir(path)
    (path / "points_4d.bin").rename(path / "points_1d.bin.gz")  # existence is enough
    assert is_dataset_dir(path)
    (path / "obs_manifest.json").unlink()
    (path / "obs_manifest.json").mkdir()
    assert not is_dataset_dir(path)


def test_is_export_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert not is_export_root(root)  # empty
    (root / "notes").mkdir()
    assert not is_export_root(root)  # no dataset below
    _bare(root / "a")
    assert is_export_root(root)
    assert not is_export_root(root / "a")  # a dataset is not a root
    assert not is_export_root(tmp_path / "missing")
    deep = tmp_path / "deep"
    _bare(deep / "level1" / "level2")
    assert not is_export_root(deep)  # deeper levels are not scanned


def test_dataset_with_dataset_subdirectories_is_one_dataset(tmp_path: Path) -> None:
    outer = _bare(tmp_path / "outer")
    _bare(outer / "inner")
    assert is_dataset_dir(outer)
    assert not is_export_root(outer)


# ---- find_datasets ----------------------------------------------------------------------------
def test_find_datasets_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ("zeta", "Alpha", "beta.v2", "b-1", "9x"):
        _bare(tmp_path / name, dataset_id=name)
    (tmp_path / "images").mkdir()
    (tmp_path / "README.md").write_text("x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        names = [p.name for p in find_datasets(tmp_path)]
    assert names == sorted(["zeta", "Alpha", "beta.v2", "b-1", "9x"])


@pytest.mark.parametrize(
    "name",
    [
        "assets",
        "_cellucid",
        "CON",
        "con.txt",
        "Nul",
        "COM1",
        "lpt9.data",
        ".hidden",
        "-x",
        "a b",
        "a" * 181,
        "é",
    ],
)
def test_find_datasets_warns_for_ineligible_names(tmp_path: Path, name: str) -> None:
    _bare(tmp_path / "good")
    _bare(tmp_path / name, dataset_id="bad")
    with pytest.warns(UserWarning, match="skipping dataset directory"):
        found = find_datasets(tmp_path)
    assert [p.name for p in found] == ["good"]


@pytest.mark.parametrize("name", ["a" * 180, "COM10", "console", "x.assets", "A_b-c.d"])
def test_find_datasets_eligible_edge_names(tmp_path: Path, name: str) -> None:
    _bare(tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [p.name for p in find_datasets(tmp_path)] == [name]


# ---- generate_datasets_manifest ---------------------------------------------------------------
def _root(tmp_path: Path) -> Path:
    root = tmp_path / "exports"
    _bare(root / "pbmc", n=40, dataset_id="pbmc3k", name="PBMC 3k")
    write_dataset(
        root / "lung",
        n=30,
        n_genes=5,
        connectivity=False,
        vectors=False,
        dataset_id="lung",
        name="Lung atlas",
    )
    return root


def test_generate_writes_spec_catalog(tmp_path: Path) -> None:
    root = _root(tmp_path)
    path = generate_datasets_manifest(root)
    assert path == root / "datasets.json"
    expected = {
        "version": 1,
        "default": "lung",
        "datasets": [
            {"id": "lung", "path": "lung/", "name": "Lung atlas", "n_cells": 30, "n_genes": 5},
            {"id": "pbmc3k", "path": "pbmc/", "name": "PBMC 3k", "n_cells": 40, "n_genes": 0},
        ],
    }
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == expected
    assert text == json.dumps(expected, indent=2) + "\n"  # indent 2, key order as in §2.11
    assert validate_export(root) == []
    assert sorted(p.name for p in root.iterdir()) == ["datasets.json", "lung", "pbmc"]


def test_generate_default_dataset(tmp_path: Path) -> None:
    root = _root(tmp_path)
    path = generate_datasets_manifest(root, default_dataset="pbmc3k")
    assert json.loads(path.read_text())["default"] == "pbmc3k"
    with pytest.warns(UserWarning, match="'nope'"):
        path = generate_datasets_manifest(root, default_dataset="nope")
    assert json.loads(path.read_text())["default"] == "lung"
    with pytest.warns(UserWarning):
        # a directory name is not an id
        path = generate_datasets_manifest(root, default_dataset="pbmc")
    assert json.loads(path.read_text())["default"] == "lung"


def test_generate_custom_filename(tmp_path: Path) -> None:
    root = _root(tmp_path)
    path = generate_datasets_manifest(str(root), output_filename="catalog.json")
    assert path == root / "catalog.json"
    assert not (root / "datasets.json").exists()


def test_generate_default_dir_is_evaluated_at_call_time(tmp_path: Path, monkeypatch) -> None:
    _root(tmp_path)
    monkeypatch.chdir(tmp_path)
    path = generate_datasets_manifest()
    assert path is not None and path.resolve() == (tmp_path / "exports" / "datasets.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(FileNotFoundError):
        generate_datasets_manifest()


def test_generate_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        generate_datasets_manifest(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError):
        generate_datasets_manifest(tmp_path / "file")


def test_generate_without_datasets_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    assert generate_datasets_manifest(tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_generate_duplicate_ids(tmp_path: Path) -> None:
    root = _root(tmp_path)
    rewrite_json(root / "pbmc" / "dataset_identity.json", lambda d: d.update(id="lung"))
    with pytest.raises(
        ValueError, match="datasets 'lung' and 'pbmc' have the same identity id 'lung'"
    ):
        generate_datasets_manifest(root)
    assert not (root / "datasets.json").exists()


def test_generate_skips_ineligible_with_warning(tmp_path: Path) -> None:
    root = _root(tmp_path)
    _bare(root / "assets", dataset_id="assets")
    with pytest.warns(UserWarning, match="assets"):
        path = generate_datasets_manifest(root)
    assert [d["path"] for d in json.loads(path.read_text())["datasets"]] == ["lung/", "pbmc/"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.pop("stats"),
        lambda d: d.pop("id"),
        lambda d: d.update(name=" "),
        lambda d: d["stats"].update(n_cells="40"),
    ],
)
def test_generate_rejects_unusable_identity(tmp_path: Path, edit) -> None:
    root = _root(tmp_path)
    rewrite_json(root / "pbmc" / "dataset_identity.json", edit)
    with pytest.raises(ValueError, match="pbmc"):
        generate_datasets_manifest(root)
    assert not (root / "datasets.json").exists()


def test_generate_replaces_atomically(tmp_path: Path, monkeypatch) -> None:
    root = _root(tmp_path)
    (root / "datasets.json").write_text("old")
    import cellucid.export.catalog as catalog

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(catalog.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        generate_datasets_manifest(root)
    assert (root / "datasets.json").read_text() == "old"
    assert sorted(p.name for p in root.iterdir()) == ["datasets.json", "lung", "pbmc"]
