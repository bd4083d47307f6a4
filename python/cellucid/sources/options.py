"""The options of an AnnData source, as every entry point that views an AnnData takes them.

``show_anndata``, ``serve_anndata``, :class:`~cellucid.AnnDataServer`,
:class:`~cellucid.AnnDataViewer` and :class:`~cellucid.CellucidWidget` accept these as keyword
arguments (``**options: Unpack[AnnDataOptions]``): one typed definition that editors show in
their signature help, instead of a copy of fourteen parameters in each. They go to
:class:`~cellucid.sources.anndata.AnnDataAdapter` (and to its ``from_file`` for a path);
:func:`check_options` rejects a misspelt one when it is given, naming the closest option.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from ..export.inputs import EmbeddingSpec
    from ..storage.stores import StorageOptions

__all__ = ["AnnDataOptions", "check_options"]


class AnnDataOptions(TypedDict, total=False):
    """Keyword options for viewing an AnnData (all optional).

    Attributes
    ----------
    backed
        For a path: ``"r"`` (default) reads the annotations and leaves the expression matrix
        on disk (genes are read as the viewer asks for them); ``False`` reads the whole file
        into memory. An AnnData object is used as it is.
    layer
        Take gene values from ``adata.layers[layer]`` instead of ``X``.
    embedding
        The embedding(s) to show first: an ``obsm`` key with 1-3 columns (``"X_tsne"``,
        ``"spatial"``), the first columns of a wider one (``"X_pca:2"``), or
        ``{"2d": "X_umap", "3d": "X_umap_3d"}``. Default: ``obsm["X_umap"]`` and its
        ``_1d``/``_2d``/``_3d`` variants. Every other usable ``obsm`` entry can be picked in
        the viewer.
    latent_key
        The ``obsm`` latent space (default: the first of ``scanvi``, ``scvi``, ``X_scvi``,
        ``X_pca``, ``harmony``, ``X_harmony``), used for the category centroids' outliers.
    obs_keys
        The ``obs`` columns to offer, in order (default: all).
    gene_id_column
        The ``var`` column holding gene names (``"index"``: ``var_names``).
    dataset_name, dataset_id
        The dataset's name and id (default: from the file name, or ``"data"``).
    connectivity
        ``False`` leaves out the kNN graph (``obsp["connectivities"]``) that would be drawn as
        edges.
    normalize_embeddings
        Scale embeddings into the viewer's unit cube (default ``True``, as exports do).
    centroid_outlier_quantile, centroid_min_points
        Category centroids for the labels: the trimming quantile (``None``: no centroids) and
        the smallest category that gets one.
    cache_columns
        For a backed matrix stored by cells (CSR): build the gene-major column cache in the
        background (default ``True``; a gene then costs one read instead of a pass over the
        file).
    storage_options
        fsspec options for a URL (``s3://…``, ``gs://…``): credentials, ``endpoint_url`` in
        ``client_kwargs``; by default the environment's (``AWS_ACCESS_KEY_ID``, …).
    """

    backed: bool | str
    layer: str | None
    embedding: EmbeddingSpec | None
    latent_key: str | None
    obs_keys: list[str] | None
    gene_id_column: str | None
    dataset_name: str | None
    dataset_id: str | None
    connectivity: bool
    normalize_embeddings: bool
    centroid_outlier_quantile: float | None
    centroid_min_points: int
    cache_columns: bool
    storage_options: StorageOptions | None


#: every option's name
OPTION_NAMES: frozenset[str] = frozenset(AnnDataOptions.__optional_keys__)


def check_options(options: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` for a keyword that is not an :class:`AnnDataOptions` option,
    naming the closest one and listing them all (a typo fails where it was made, not when a
    file is read later on a background thread).

    >>> check_options({"latent_key": "X_pca"})
    >>> check_options({"latnet_key": "X_pca"})
    Traceback (most recent call last):
    ...
    TypeError: unknown AnnData option 'latnet_key' (did you mean 'latent_key'?); the options are: backed, cache_columns, centroid_min_points, centroid_outlier_quantile, connectivity, dataset_id, dataset_name, embedding, gene_id_column, latent_key, layer, normalize_embeddings, obs_keys, storage_options
    """
    unknown = sorted(set(options) - OPTION_NAMES)
    if not unknown:
        return
    what = ", ".join(repr(k) for k in unknown)
    close = difflib.get_close_matches(unknown[0], sorted(OPTION_NAMES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    plural = "s" if len(unknown) > 1 else ""
    raise TypeError(
        f"unknown AnnData option{plural} {what}{hint}; "
        f"the options are: {', '.join(sorted(OPTION_NAMES))}"
    )
