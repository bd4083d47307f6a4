"""Reading AnnData's on-disk elements without importing anndata.

``anndata`` takes a second or more to import (more with Dask installed, which it imports
too), which is most of a server's start-up on a large file. The elements a served dataset
needs (``obs``/``var`` data frames, categoricals, numeric and string arrays, nullable
columns, ``obsm`` arrays, sparse ``obsp`` matrices) are read here exactly as
``anndata.io.read_elem`` reads them (same dtypes, same pandas objects); any other encoding
(legacy layouts, ``dict``, scalars, awkward arrays) is handed to anndata.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _attr(attrs: Any, key: str) -> Any:
    value = attrs.get(key)
    if isinstance(value, bytes):
        value = value.decode()
    return value


def encoding(node: Any) -> str | None:
    """The ``encoding-type`` of an element, or ``None``."""
    return _attr(node.attrs, "encoding-type")


def _is_h5(node: Any) -> bool:
    return type(node).__module__.startswith("h5py")


def _array(node: Any) -> np.ndarray:
    if not _is_h5(node):
        from .zarr_direct import read_whole

        whole = read_whole(node)
        if whole is not None:
            return whole
    return node[()]


def _strings(node: Any) -> np.ndarray:
    if _is_h5(node):
        return node.asstr()[()]
    return node[()]


def _dataframe(node: Any, index: bool = True) -> Any:
    import pandas as pd

    order = _attr(node.attrs, "column-order")
    columns = [] if order is None else [str(c) for c in order]
    idx_key = _attr(node.attrs, "_index")
    data = {k: read_elem(node[k]) for k in columns}
    # the columns were just read: pandas may keep them as they are rather than copy them into
    # one block per dtype (at ten million cells, 80 MB for two float32 columns)
    if not index:
        n = int(node[idx_key].shape[0])
        return pd.DataFrame(data, index=pd.RangeIndex(n), columns=columns, copy=False)
    df = pd.DataFrame(
        data, index=read_elem(node[idx_key]), columns=columns if columns else None, copy=False
    )
    if idx_key != "_index":
        df.index.name = idx_key
    return df


def _categorical(node: Any) -> Any:
    import pandas as pd

    return pd.Categorical.from_codes(
        codes=read_elem(node["codes"]),
        categories=read_elem(node["categories"]),
        ordered=bool(_attr(node.attrs, "ordered")),
    )


def _nullable(node: Any, kind: str) -> Any:
    import pandas as pd

    values, mask = read_elem(node["values"]), read_elem(node["mask"])
    if kind == "nullable-integer":
        return pd.arrays.IntegerArray(values, mask=mask)
    if kind == "nullable-boolean":
        return pd.arrays.BooleanArray(values, mask=mask)
    from anndata.io import read_elem as anndata_read_elem  # string dtype rules live there

    return anndata_read_elem(node)


def _sparse(node: Any, fmt: str) -> Any:
    import scipy.sparse as sp

    shape = tuple(int(s) for s in node.attrs["shape"])
    make = sp.csr_matrix if fmt == "csr_matrix" else sp.csc_matrix
    return make(
        (_array(node["data"]), _array(node["indices"]), _array(node["indptr"])), shape=shape
    )


def read_elem(node: Any) -> Any:
    """An element of an ``.h5ad``/``.zarr`` AnnData, as ``anndata.io.read_elem`` reads it."""
    kind = encoding(node)
    if kind == "dataframe" and "__categories" not in node:
        return _dataframe(node)
    if kind == "categorical":
        return _categorical(node)
    if kind == "array":
        return _array(node)
    if kind == "string-array":
        return _strings(node)
    if kind in ("nullable-integer", "nullable-boolean", "nullable-string-array"):
        return _nullable(node, kind)
    if kind in ("csr_matrix", "csc_matrix"):
        return _sparse(node, kind)
    from anndata.io import read_elem as anndata_read_elem

    return anndata_read_elem(node)


def read_columns(node: Any) -> Any:
    """A data frame element (``obs``) with a RangeIndex: its index (cell names: millions of
    Python strings) is not read. Legacy layouts are read whole and re-indexed."""
    import pandas as pd

    index_key = _attr(node.attrs, "_index")
    if (
        encoding(node) != "dataframe"
        or "__categories" in node
        or index_key is None
        or index_key not in node
    ):
        frame = read_elem(node)
        return frame.set_axis(pd.RangeIndex(len(frame)), axis=0)
    return _dataframe(node, index=False)
