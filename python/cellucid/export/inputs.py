"""Turning user data into :class:`~cellucid.export.dataset.ExportInputs`.

Two front doors lead here: the upstream keyword form of ``prepare`` (arrays and DataFrames)
and an AnnData (``prepare(adata, out_dir)`` and, later, the server). Both resolve embeddings,
latent space, obs columns, genes, connectivity and vector fields with the same rules
(SPEC §6.2 and §6.5), so an export and a served AnnData hold the same payloads.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..storage.anndata_io import materialize
from .dataset import DatasetInfo, ExportInputs, ExportSettings
from .genes import GeneMatrix, gene_matrix
from .naming import safe_name

#: obsm keys tried, in order, for the latent space when none is named (SPEC §6.5)
LATENT_CANDIDATES = ("scanvi", "scvi", "X_scvi", "X_pca", "harmony", "X_harmony")
_VECTOR_EXPLICIT = re.compile(r"^(.+_umap)_([123])d$")


def _listing(keys: Sequence[str]) -> str:
    return ", ".join(repr(k) for k in keys) if keys else "(none)"


def select_obs(obs: pd.DataFrame, obs_keys: Sequence[str] | None) -> pd.DataFrame:
    """The obs columns to export, in the given order (default: all columns)."""
    if not isinstance(obs, pd.DataFrame):
        raise TypeError(f"obs must be a pandas DataFrame; got {type(obs).__name__}")
    if obs_keys is None:
        return obs
    if isinstance(obs_keys, str):
        obs_keys = [obs_keys]
    columns = {str(c): c for c in obs.columns}
    missing = [k for k in obs_keys if str(k) not in columns]
    if missing:
        raise KeyError(
            f"obs_keys not found in obs: {_listing([str(m) for m in missing])}; "
            f"available columns: {_listing(list(columns))}"
        )
    dups = sorted({str(k) for k in obs_keys if list(map(str, obs_keys)).count(str(k)) > 1})
    if dups:
        raise ValueError(f"obs_keys lists {_listing(dups)} more than once")
    return obs[[columns[str(k)] for k in obs_keys]]


def resolve_genes(
    gene_expression: Any,
    var: pd.DataFrame | None,
    var_gene_id_column: str | None,
    gene_identifiers: Sequence[str] | None,
    n_cells: int,
) -> tuple[GeneMatrix | None, np.ndarray, list[str], str]:
    """Pick the genes to export: ``(matrix, columns, ids, id column name)``."""
    id_column = "index" if var_gene_id_column in (None, "index") else str(var_gene_id_column)
    if gene_expression is None:
        if gene_identifiers is not None:
            raise ValueError("gene_identifiers was given but there is no gene_expression to export")
        return None, np.zeros(0, dtype=np.int64), [], id_column
    matrix = gene_matrix(gene_expression)
    if matrix.n_cells != n_cells:
        raise ValueError(
            f"gene_expression has {matrix.n_cells} rows but there are {n_cells} cells; "
            "rows must be cells (transpose a genes x cells matrix)"
        )
    if var is None:
        raise ValueError("var is required with gene_expression (gene ids come from var)")
    if len(var) != matrix.n_genes:
        raise ValueError(
            f"var has {len(var)} rows but gene_expression has {matrix.n_genes} columns; they must match"
        )
    if id_column == "index":
        all_ids = [str(g) for g in var.index]
    else:
        if var_gene_id_column not in var.columns:
            raise KeyError(
                f"var_gene_id_column {var_gene_id_column!r} is not a column of var; "
                f"available: {_listing([str(c) for c in var.columns])} (or 'index')"
            )
        all_ids = [str(g) for g in var[var_gene_id_column]]
    if gene_identifiers is None:
        columns = np.arange(len(all_ids), dtype=np.int64)
        return matrix, columns, all_ids, id_column
    if isinstance(gene_identifiers, str):
        gene_identifiers = [gene_identifiers]
    wanted = [str(g) for g in gene_identifiers]
    dups = (
        sorted({g for g in wanted if wanted.count(g) > 1})
        if len(set(wanted)) != len(wanted)
        else []
    )
    if dups:
        raise ValueError(f"gene_identifiers lists {_listing(dups[:5])} more than once")
    position: dict[str, int] = {}
    duplicated_ids: set[str] = set()
    for i, g in enumerate(all_ids):
        if g in position:
            duplicated_ids.add(g)
        position.setdefault(g, i)
    ambiguous = [g for g in wanted if g in duplicated_ids]
    if ambiguous:
        raise ValueError(
            f"gene id(s) {_listing(ambiguous[:5])} occur more than once in var; make ids unique "
            "(adata.var_names_make_unique()) or choose var_gene_id_column"
        )
    unknown = [g for g in wanted if g not in position]
    if unknown:
        warnings.warn(
            f"{len(unknown)} gene identifier(s) not found and skipped: {_listing(unknown[:5])}",
            stacklevel=3,
        )
    kept = [g for g in wanted if g in position]
    columns = np.array([position[g] for g in kept], dtype=np.int64)
    return matrix, columns, kept, id_column


# --------------------------------------------------------------------------- AnnData
#: what ``embedding=`` accepts: a key, ``"KEY:k"``, a list of those, or ``{dim: key}``
EmbeddingSpec = str | Sequence[str] | Mapping[Any, str]


def usable_embeddings(obsm: Mapping[str, Any], n: int) -> str:
    """The obsm keys an ``embedding=`` may name, for error messages."""
    direct, wider = [], []
    for key in obsm:
        shape = np.shape(obsm[key])
        if len(shape) != 2 or shape[0] != n or shape[1] < 1:
            continue
        (direct if shape[1] <= 3 else wider).append(f"{key!r} ({shape[1]} columns)")
    text = "usable obsm keys: " + (", ".join(direct) or "(none with 1-3 columns)")
    if wider:
        text += "; wider ones need ':2' or ':3' (e.g. 'X_pca:2'): " + ", ".join(wider)
    return text


def _parse_embedding(spec: str) -> tuple[str, int | None]:
    key, sep, cols = str(spec).rpartition(":")
    if sep and cols.isdigit():
        return key, int(cols)
    return str(spec), None


def embedding_keys(embedding: EmbeddingSpec | None) -> list[str]:
    """The obsm keys an ``embedding=`` names (for lazy readers that load only those)."""
    if embedding is None:
        return []
    specs = (
        list(embedding.values())
        if isinstance(embedding, Mapping)
        else [embedding]
        if isinstance(embedding, str)
        else list(embedding)
    )
    return [_parse_embedding(s)[0] for s in specs]


def export_obsm_keys(
    latent_key: str | None = None, embedding: EmbeddingSpec | None = None
) -> Callable[[str], bool]:
    """Which ``obsm`` keys an export of an AnnData reads: UMAP embeddings (and those
    ``embedding`` names), velocity-like ``*_umap`` vectors and the latent space
    (``latent_key``, else the known candidates). Lazy readers load only these."""
    wanted = latent_keys(latent_key)
    extra = set(embedding_keys(embedding))

    def keep(key: str) -> bool:
        return key in wanted or key.startswith("X_umap") or "_umap" in key or key in extra

    return keep


def latent_keys(latent_key: str | None = None) -> set[str]:
    """The obsm keys the latent space may come from (``latent_key``, else the candidates)."""
    return {latent_key} if latent_key else set(LATENT_CANDIDATES)


def selected_embeddings(
    obsm: Mapping[str, Any], n: int, embedding: EmbeddingSpec
) -> dict[int, Any]:
    """The embeddings ``embedding=`` names (see :func:`cellucid.prepare`), by dimension.

    Raises ``KeyError`` for a key that is not in obsm and ``ValueError`` for a shape or
    dimension that does not fit, each listing the usable keys.
    """
    return {d: arr for d, (_label, arr) in _selected(obsm, n, embedding).items()}


def _selected(
    obsm: Mapping[str, Any], n: int, embedding: EmbeddingSpec
) -> dict[int, tuple[str, Any]]:
    if isinstance(embedding, Mapping):
        wanted = []
        for dim, spec in embedding.items():
            text = str(dim).lower()
            text = text[:-1] if text.endswith("d") else text
            d = int(text) if text.isdigit() else 0
            if d not in (1, 2, 3):
                raise ValueError(
                    f"embedding dimension {dim!r} must be 1, 2 or 3 ('1d', '2d', '3d')"
                )
            key, cols = _parse_embedding(spec)
            wanted.append((key, cols if cols is not None else d, d))
    else:
        specs = [embedding] if isinstance(embedding, str) else list(embedding)
        if not specs:
            raise ValueError("embedding names no obsm key")
        wanted = [(*_parse_embedding(s), None) for s in specs]
    out: dict[int, tuple[str, Any]] = {}
    for key, cols, dim in wanted:
        if key not in obsm:
            raise KeyError(f"embedding {key!r} is not in obsm; {usable_embeddings(obsm, n)}")
        arr = obsm[key]
        shape = np.shape(arr)
        if len(shape) != 2 or shape[0] != n:
            raise ValueError(
                f"obsm[{key!r}] has shape {shape}; an embedding needs ({n}, 1-3); "
                f"{usable_embeddings(obsm, n)}"
            )
        take = cols if cols is not None else shape[1]
        if not 1 <= take <= 3 or take > shape[1]:
            raise ValueError(
                f"obsm[{key!r}] has {shape[1]} columns; use {key!r} with 1-3 columns or "
                f"'{key}:2' / '{key}:3' for its first columns; {usable_embeddings(obsm, n)}"
            )
        d = dim if dim is not None else take
        if take != d:
            raise ValueError(f"embedding {key!r}:{take} cannot be the {d}D embedding")
        if d in out:
            raise ValueError(
                f"two embeddings for {d}D ({key!r} and another); name one per dimension"
            )
        label = key if take == shape[1] else f"{key}:{take}"
        out[d] = (label, arr if take == shape[1] else np.asarray(arr)[:, :take])
    return out


def embedding_sources(
    obsm: Mapping[str, Any], n: int, embedding: EmbeddingSpec | None = None
) -> dict[int, str]:
    """Which obsm key (``"KEY"`` or ``"KEY:k"``) each exported dimension comes from."""
    if embedding is not None:
        return {d: label for d, (label, _arr) in _selected(obsm, n, embedding).items()}
    out: dict[int, str] = {}
    for d in (1, 2, 3):
        if f"X_umap_{d}d" in obsm and np.shape(obsm[f"X_umap_{d}d"]) == (n, d):
            out[d] = f"X_umap_{d}d"
    if "X_umap" in obsm:
        shape = np.shape(obsm["X_umap"])
        if len(shape) == 2 and shape[0] == n and 1 <= shape[1] <= 3:
            out.setdefault(int(shape[1]), "X_umap")
    return out


def embeddings_from_obsm(
    obsm: Mapping[str, Any], n: int, embedding: EmbeddingSpec | None = None
) -> dict[int, Any]:
    """Embeddings of an AnnData: those ``embedding`` names, else ``X_umap_{1,2,3}d`` first,
    then ``X_umap`` by column count."""
    if embedding is not None:
        return selected_embeddings(obsm, n, embedding)
    out: dict[int, Any] = {}
    for d in (1, 2, 3):
        key = f"X_umap_{d}d"
        if key in obsm:
            arr = obsm[key]
            shape = np.shape(arr)
            if len(shape) == 2 and shape[0] == n and shape[1] == d:
                out[d] = arr
            else:
                warnings.warn(
                    f"obsm[{key!r}] has shape {shape}, not ({n}, {d}); ignored", stacklevel=3
                )
    if "X_umap" in obsm:
        arr = obsm["X_umap"]
        shape = np.shape(arr)
        if len(shape) == 2 and shape[0] == n and 1 <= shape[1] <= 3:
            out.setdefault(int(shape[1]), arr)
    if not out:
        raise ValueError(
            "no UMAP embedding found: expected obsm['X_umap'] (1-3 columns) or "
            f"obsm['X_umap_1d'/'X_umap_2d'/'X_umap_3d']; obsm has {_listing(list(obsm.keys()))}. "
            "Compute one (sc.tl.umap), choose another with embedding='KEY' "
            f"({usable_embeddings(obsm, n)}), or pass X_umap_2d=... explicitly."
        )
    return out


def latent_from_obsm(obsm: Mapping[str, Any], latent_key: str | None) -> tuple[Any, str | None]:
    """The latent space: ``latent_key`` if given, else the first known key present, else none."""
    if latent_key is not None:
        if latent_key not in obsm:
            raise KeyError(
                f"latent_key {latent_key!r} is not in obsm; available: {_listing(list(obsm.keys()))}"
            )
        return obsm[latent_key], latent_key
    for key in LATENT_CANDIDATES:
        if key in obsm:
            return obsm[key], key
    return None, None


def is_vector_field_key(key: str) -> bool:
    """Whether an obsm key names a velocity-like displacement (``<f>_umap`` or
    ``<f>_umap_<d>d``, not ``X_*``) rather than positions (SPEC 6.5)."""
    key = str(key)
    if key.startswith("X_"):
        return False
    return key.endswith("_umap") or _VECTOR_EXPLICIT.match(key) is not None


def vector_fields_from_obsm(obsm: Mapping[str, Any], n: int, dims: Sequence[int]) -> dict[str, Any]:
    """Velocity-like obsm entries (``<f>_umap_<d>d`` and ``<f>_umap``; SPEC §6.5)."""
    out: dict[str, Any] = {}
    explicit: set[tuple[str, int]] = set()
    for key in obsm:
        m = _VECTOR_EXPLICIT.match(str(key))
        if not m or str(key).startswith("X_"):
            continue
        fid, d = m.group(1), int(m.group(2))
        if d not in dims or np.shape(obsm[key]) != (n, d):
            continue
        if safe_name(fid) != fid:
            warnings.warn(
                f"obsm[{key!r}]: {fid!r} is not a safe file name; vector field skipped",
                stacklevel=3,
            )
            continue
        out[str(key)] = obsm[key]
        explicit.add((fid, d))
    for key in obsm:
        key = str(key)
        if not key.endswith("_umap") or key.startswith("X_"):
            continue
        shape = np.shape(obsm[key])
        d = 1 if len(shape) == 1 else (shape[1] if len(shape) == 2 else 0)
        if shape[:1] != (n,) or d not in dims or (key, d) in explicit:
            continue
        if safe_name(key) != key:
            warnings.warn(
                f"obsm[{key!r}] is not a safe file name; vector field skipped", stacklevel=3
            )
            continue
        out[f"{key}_{d}d"] = obsm[key]
    return out


def expression_of(adata: Any, layer: str | None) -> Any:
    """``adata.X`` or ``adata.layers[layer]``; a backed ``X`` stays on disk as a
    :class:`~cellucid.storage.backed.BackedMatrix` and a Dask array stays lazy (both are read
    gene block by gene block)."""
    if layer is not None:
        if layer not in adata.layers:
            raise KeyError(
                f"layer {layer!r} not found; available layers: {_listing(list(adata.layers.keys()))}"
            )
        return adata.layers[layer]
    if adata.X is None:
        return None
    if getattr(adata, "isbacked", False):
        from ..storage.backed import BackedMatrix

        backed = BackedMatrix.from_anndata(adata)
        if backed is not None:
            return backed
    return adata.X


def derive_from_anndata(
    adata: Any,
    *,
    layer: str | None = None,
    latent_key: str | None = None,
    connectivity: bool = True,
    overrides: Mapping[str, Any] | None = None,
    embedding: EmbeddingSpec | None = None,
) -> dict[str, Any]:
    """``prepare``-style keyword inputs derived from an AnnData (SPEC §6.2, §6.5).

    Keys given in ``overrides`` replace what would be derived (an explicit ``X_umap_2d``
    replaces every derived embedding); the rest of ``overrides`` is passed through.
    """
    options = dict(overrides or {})
    if adata.n_obs == 0:
        raise ValueError("the AnnData has no cells (n_obs == 0); nothing to export")
    n = adata.n_obs
    obsm = adata.obsm
    derived: dict[str, Any] = {}
    explicit_points = any(options.get(f"X_umap_{d}d") is not None for d in (1, 2, 3))
    if explicit_points and embedding is not None:
        raise ValueError("pass either embedding=... or X_umap_<d>d=..., not both")
    if not explicit_points:
        for d, arr in embeddings_from_obsm(obsm, n, embedding).items():
            derived[f"X_umap_{d}d"] = arr
    if "latent_space" not in options:
        derived["latent_space"], derived["latent_key"] = latent_from_obsm(obsm, latent_key)
    elif latent_key is not None:
        derived["latent_key"] = latent_key
    if "obs" not in options:
        derived["obs"] = materialize(adata.obs)
    if "gene_expression" not in options:
        derived["gene_expression"] = expression_of(adata, layer)
        derived.setdefault("var", materialize(adata.var))
    elif layer is not None:
        raise ValueError("pass either layer=... or gene_expression=..., not both")
    if connectivity and "connectivities" not in options and "connectivities" in adata.obsp:
        derived["connectivities"] = materialize(adata.obsp["connectivities"])
    if "vector_fields" not in options:
        source = options if explicit_points else derived
        dims = [d for d in (1, 2, 3) if source.get(f"X_umap_{d}d") is not None]
        fields = vector_fields_from_obsm(obsm, n, dims)
        if fields:
            derived["vector_fields"] = fields
    derived.update(options)
    return derived


def build_inputs(
    *,
    obs: pd.DataFrame | None,
    info: DatasetInfo,
    settings: ExportSettings,
    points: Mapping[int, Any],
    obs_keys: Sequence[str] | None = None,
    latent_space: Any = None,
    latent_key: str | None = None,
    var: pd.DataFrame | None = None,
    gene_expression: Any = None,
    var_gene_id_column: str | None = "index",
    gene_identifiers: Sequence[str] | None = None,
    connectivities: Any = None,
    vector_fields: dict[str, Any] | None = None,
    normalize_embeddings: bool = True,
    lazy: bool = False,
) -> ExportInputs:
    """Select obs columns and genes and bundle everything into :class:`ExportInputs`."""
    if obs is None:
        raise ValueError("obs (a pandas DataFrame with one row per cell) is required")
    obs_sel = select_obs(obs, obs_keys)
    n_cells = next((int(np.shape(a)[0]) for a in points.values() if np.shape(a)), len(obs_sel))
    genes, columns, ids, id_column = resolve_genes(
        gene_expression, var, var_gene_id_column, gene_identifiers, n_cells
    )
    return ExportInputs(
        points=dict(points),
        obs=obs_sel,
        info=info,
        settings=settings,
        latent=latent_space,
        latent_key=latent_key,
        genes=genes,
        gene_columns=columns,
        gene_ids=ids,
        var_gene_id_column=id_column,
        connectivities=connectivities,
        vector_fields=vector_fields,
        normalize_embeddings=normalize_embeddings,
        lazy=lazy,
    )
