"""The ``cellucid`` command line: exit codes, messages, and the real console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import cellucid
from cellucid.cli import main
from cellucid.export.reader import ExportReader


def _adata(n: int = 300, n_genes: int = 12, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    X = sp.random(n, n_genes, density=0.3, format="csr", dtype=np.float32, random_state=seed)
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical(rng.choice(["T cell", "B cell", "NK"], n)),
            "pct mito": rng.random(n),
        },
        index=[f"c{i}" for i in range(n)],
    )
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))
    adata.obsm["X_umap"] = rng.normal(size=(n, 2))
    adata.obsm["X_pca"] = rng.normal(size=(n, 5))
    return adata


@pytest.fixture(scope="module")
def h5ad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "small.h5ad"
    _adata().write_h5ad(path)
    return path


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"cellucid {cellucid.__version__}"


def test_no_arguments_prints_help_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "prepare" in out and "validate" in out and "datasets" in out


@pytest.mark.parametrize("command", ["prepare", "validate", "datasets"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: cellucid " + command in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["prepare"], ["bogus"], ["prepare", "a.h5ad", "out", "--compression", "12"], ["validate"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_prepare_h5ad_then_validate(
    h5ad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    assert main(["prepare", str(h5ad), str(out), "--compression", "6", "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    reader = ExportReader(out)
    assert reader.identity["stats"]["n_cells"] == 300
    assert reader.identity["stats"]["n_genes"] == 12
    assert reader.identity["export_settings"]["compression"] == 6
    assert reader.obs_manifest["latent_key"] == "X_pca"
    assert main(["validate", str(out)]) == 0
    assert "valid" in capsys.readouterr().out


def test_prepare_options_reach_the_export(h5ad: Path, tmp_path: Path) -> None:
    out = tmp_path / "subset"
    argv = ["prepare", str(h5ad), str(out), "-q", "--obs-keys", "cluster", "--genes", "G3,G1"]
    argv += ["--var-quantization", "8", "--dataset-name", "Small set", "--no-connectivity"]
    assert main(argv) == 0
    reader = ExportReader(out)
    assert [f["key"] for f in reader.identity["obs_fields"]] == ["cluster"]
    assert reader.gene_ids() == ["G3", "G1"]
    assert reader.var_manifest["quantization"] == 8
    assert reader.identity["name"] == "Small set"
    assert reader.identity["id"] == "Small_set"
    assert reader.identity["stats"]["has_connectivity"] is False


def test_prepare_refuses_to_overwrite_without_force(
    h5ad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    assert main(["prepare", str(h5ad), str(out), "-q"]) == 0
    before = (out / "dataset_identity.json").read_bytes()
    capsys.readouterr()
    assert main(["prepare", str(h5ad), str(out), "-q", "--compression", "6"]) == 1
    err = capsys.readouterr().err
    assert "already holds an export" in err and "--force" in err
    assert "Traceback" not in err
    assert (out / "dataset_identity.json").read_bytes() == before
    assert main(["prepare", str(h5ad), str(out), "-q", "--compression", "6", "--force"]) == 0
    assert (out / "points_2d.bin.gz").exists() and not (out / "points_2d.bin").exists()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_prepare_from_zarr_v2_and_v3(zarr_format: int, tmp_path: Path) -> None:
    store = tmp_path / "small.zarr"
    old = ad.settings.zarr_write_format
    ad.settings.zarr_write_format = zarr_format
    try:
        _adata().write_zarr(store)
    finally:
        ad.settings.zarr_write_format = old
    marker = ".zgroup" if zarr_format == 2 else "zarr.json"
    assert (store / marker).exists()
    plain = tmp_path / "store_without_suffix"
    shutil.copytree(store, plain)  # detected by its metadata, not by its name
    for src, name in ((store, "a"), (plain, "b")):
        assert main(["prepare", str(src), str(tmp_path / name), "-q"]) == 0
        assert ExportReader(tmp_path / name).identity["stats"]["n_cells"] == 300


def test_prepare_missing_input_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", str(tmp_path / "nope.h5ad"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Path not found" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_prepare_error_names_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adata = _adata()
    del adata.obsm["X_umap"]
    path = tmp_path / "no_umap.h5ad"
    adata.write_h5ad(path)
    assert main(["prepare", str(path), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "X_umap" in err and "X_pca" in err  # says what is missing and what exists
    assert "Traceback" not in err
    assert main(["-v", "prepare", str(path), str(tmp_path / "out")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_interrupt_exits_130_and_changes_nothing(
    h5ad: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import cellucid.export.prepare as prep

    calls = {"n": 0}
    real = prep._write_file

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prep, "_write_file", interrupted)
    out = tmp_path / "export"
    assert main(["prepare", str(h5ad), str(out), "-q"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_validate_reports_violations_and_exits_1(
    h5ad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    assert main(["prepare", str(h5ad), str(out), "-q"]) == 0
    identity = json.loads((out / "dataset_identity.json").read_text())
    identity["stats"]["n_cells"] = 301
    (out / "dataset_identity.json").write_text(json.dumps(identity, indent=2))
    (out / "obs" / "cluster.codes.u8").write_bytes(b"\x00" * 10)
    capsys.readouterr()
    assert main(["validate", str(out)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert any("dataset_identity.json" in line and "n_cells" in line for line in lines)
    assert any("cluster.codes.u8" in line for line in lines)
    assert "violation" in captured.err


def test_validate_missing_path_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "missing")]) == 1
    assert "Path not found" in capsys.readouterr().err


def test_datasets_writes_the_catalog(
    h5ad: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "exports"
    for name in ("beta", "alpha"):
        assert main(["prepare", str(h5ad), str(root / name), "-q"]) == 0
    capsys.readouterr()
    assert main(["datasets", str(root), "--default", "beta"]) == 0
    catalog = json.loads((root / "datasets.json").read_text())
    assert catalog["default"] == "beta"
    assert [d["path"] for d in catalog["datasets"]] == ["alpha/", "beta/"]
    assert all(d["n_cells"] == 300 and d["n_genes"] == 12 for d in catalog["datasets"])
    assert main(["validate", str(root)]) == 0


def test_datasets_on_an_empty_folder_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datasets", str(tmp_path)]) == 1
    assert "no export folder" in capsys.readouterr().err
    assert not (tmp_path / "datasets.json").exists()


def test_console_script_runs_as_a_subprocess(h5ad: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("cellucid")
    assert exe.exists(), "the cellucid console script is not installed (run make setup)"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"cellucid {cellucid.__version__}"
    out = tmp_path / "export"
    done = subprocess.run(
        [exe, "prepare", str(h5ad), str(out), "--compression", "1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "genes" in done.stderr  # progress bars and summary go to stderr
    check = subprocess.run([exe, "validate", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_prepare_and_serve_choose_an_embedding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adata = _adata()
    rng = np.random.default_rng(5)
    adata.obsm["X_tsne"] = rng.normal(size=(adata.n_obs, 2))
    adata.obsm["X_pca"] = rng.normal(size=(adata.n_obs, 6))
    path = tmp_path / "emb.h5ad"
    adata.write_h5ad(path)
    out = tmp_path / "tsne"
    argv = ["prepare", str(path), str(out), "-q", "--embedding", "X_tsne", "--embedding", "X_pca:3"]
    assert main(argv) == 0
    dims = ExportReader(out).identity["embeddings"]["available_dimensions"]
    assert dims == [2, 3]
    capsys.readouterr()
    assert main(["prepare", str(path), str(tmp_path / "x"), "-q", "--embedding", "nope"]) == 1
    err = capsys.readouterr().err
    assert "'nope' is not in obsm" in err and "'X_tsne' (2 columns)" in err
    # serve: the lazy AnnData reader loads the chosen obsm key; an export refuses the option
    from cellucid.sources.anndata import AnnDataAdapter

    with AnnDataAdapter.from_file(path, embedding="X_pca:3") as adapter:
        assert adapter.identity()["embeddings"]["available_dimensions"] == [3]
    assert main(["serve", str(out), "--no-browser", "--embedding", "X_tsne"]) == 1
    assert "--embedding chooses among an AnnData's obsm keys" in capsys.readouterr().err


def _tree(path: Path) -> dict[str, bytes]:
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != "dataset_identity.json"
    }


@pytest.mark.parametrize("kind", ["h5ad", "zarr"])
def test_prepare_reads_a_large_file_lazily_with_the_same_export(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file larger than memory is exported with its matrix left on disk (genes read a
    block at a time); the export is byte for byte the in-memory one."""
    from cellucid.storage import anndata_io

    adata = _adata(n=800, n_genes=20)
    adata.layers["counts"] = adata.X.copy()
    src = tmp_path / f"in.{kind}"
    adata.write_h5ad(src) if kind == "h5ad" else adata.write_zarr(src)
    loaded: list[str] = []
    real_load = anndata_io.load_anndata
    monkeypatch.setattr(
        anndata_io, "load_anndata", lambda *a, **k: loaded.append("whole") or real_load(*a, **k)
    )
    common = ["--layer", "counts", "--compression", "6", "--dataset-name", "x", "-q"]
    assert main(["prepare", str(src), str(tmp_path / "memory"), "--read", "memory", *common]) == 0
    assert loaded == ["whole"]
    # auto: a machine with little free memory reads the file lazily
    monkeypatch.setattr(anndata_io, "available_memory", lambda: 1000)
    assert main(["prepare", str(src), str(tmp_path / "auto"), *common]) == 0
    assert loaded == ["whole"]  # not loaded again
    assert _tree(tmp_path / "auto") == _tree(tmp_path / "memory")
    identity = json.loads((tmp_path / "auto" / "dataset_identity.json").read_text())
    assert identity["stats"]["n_genes"] == 20
    # and with plenty of memory, auto loads it (faster)
    monkeypatch.setattr(anndata_io, "available_memory", lambda: 1 << 40)
    assert main(["prepare", str(src), str(tmp_path / "auto2"), *common]) == 0
    assert loaded == ["whole", "whole"]


def test_read_for_export_keeps_the_matrix_in_the_file(h5ad: Path) -> None:
    from cellucid.storage.anndata_io import LazyAnnData, read_for_export
    from cellucid.storage.backed import BackedMatrix

    adata, close = read_for_export(h5ad, read="lazy")
    try:
        assert isinstance(adata, LazyAnnData)
        assert isinstance(adata.X, BackedMatrix)
        assert adata.n_obs == 300
    finally:
        close()
    with pytest.raises(ValueError, match="'auto', 'memory' or 'lazy'"):
        read_for_export(h5ad, read="sometimes")
