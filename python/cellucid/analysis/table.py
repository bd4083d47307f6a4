"""The shape of a comparison table, shared by the engine, the server and session bundles."""

from __future__ import annotations

import numpy as np

#: the columns of ``scanpy.get.rank_genes_groups_df`` after ``rank_genes_groups(..., pts=True)``,
#: in order
COLUMNS = [
    "names",
    "scores",
    "logfoldchanges",
    "pvals",
    "pvals_adj",
    "pct_nz_group",
    "pct_nz_reference",
]
#: the tests of :func:`cellucid.rank_genes` (scanpy's names)
METHODS: tuple[str, ...] = ("wilcoxon", "t-test", "t-test_overestim_var")
#: scanpy stores these as float32; every other number column is float64
FLOAT32_COLUMNS = ("scores", "logfoldchanges")


def column_dtype(name: str) -> type:
    """The dtype of a number column of the table."""
    return np.float32 if name in FLOAT32_COLUMNS else np.float64
