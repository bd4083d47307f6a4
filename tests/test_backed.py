"""BackedMatrix: genes and rows of on-disk matrices without loading them (SPEC §6.5, §7.7).

For every storage (backed ``.h5ad``, zarr v2, zarr v3) and layout (CSR, CSC, dense) each gene
column must equal the column of ``X`` loaded in memory, for any subset, order and block size;
rows must equal too. Opening must read no stored value: checked three independent ways (the
byte ranges an HDF5 file is read at, h5py dataset reads, zarr chunk keys fetched). The CSR
scan must extract a whole batch of genes in one pass over the rows, never one pass per gene.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import zarr

from _data import expression, make_adata, rng
from cellucid.storage.backed import BackedMatrix, is_canonical
from cellucid.storage.blocks import iter_columns

pytestmark = [
    pytest.mark.filterwarnings("ignore:Writing zarr v2 data:UserWarning"),
    pytest.mark.filterwarnings("ignore:zarr v3 autosharding:UserWarning"),
    pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning"),
]

N, G = 240, 30
STORES = ["h5ad", "zarr2", "zarr3"]
FORMATS = ["csr", "csc", "dense"]


def _dense(seed: int = 3) -> np.ndarray:
    x = expression(N, G, seed, density=0.25)
    x[5, :] = 0.0  # an empty cell
    x[:, 7] = 0.0  # a second empty gene
    return x


def _stored(x: np.ndarray, fmt: str) -> Any:
    return {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "dense": np.asarray}[fmt](x)


def write(adata: ad.AnnData, root: Path, store: str, name: str) -> Path:
    """Write ``adata`` as ``.h5ad`` or as a zarr v2/v3 store."""
    if store == "h5ad":
        path = root / f"{name}.h5ad"
        adata.write_h5ad(path)
        return path
    path = root / f"{name}.zarr"
    with ad.settings.override(zarr_write_format=int(store[-1])):
        adata.write_zarr(path)
    assert (path / ("zarr.json" if store == "zarr3" else ".zgroup")).exists()
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("backed")
    x = _dense()
    return {
        (store, fmt): write(ad.AnnData(X=_stored(x, fmt)), root, store, f"{store}-{fmt}")
        for store in STORES
        for fmt in FORMATS
    }


CASES = [(s, f) for s in STORES for f in FORMATS]


@pytest.mark.parametrize(("store", "fmt"), CASES)
def test_every_column_equals_the_in_memory_matrix(stores, store, fmt):
    x = _dense()
    with BackedMatrix.open(stores[store, fmt], attach_cache=False) as m:
        assert (m.n_cells, m.n_genes, m.format) == (N, G, fmt)
        assert m.nnz == (N * G if fmt == "dense" else np.count_nonzero(x))
        cols = np.concatenate([rng(1).permutation(G), [4, 4, 0]])  # any order, repeats
        for block_values in (1, 97, 10**9):
            seen = np.zeros(cols.size, dtype=int)
            for pos, col in iter_columns_bv(m, cols, block_values):
                assert col.dtype == np.float32
                np.testing.assert_array_equal(col, x[:, cols[pos]])
                seen[pos] += 1
            assert (seen == 1).all()
        for j in (0, 7, G - 1):
            np.testing.assert_array_equal(m.column(j), x[:, j])
        out = np.full(N, 9.0, dtype=np.float32)
        assert m.column(3, out) is out
        np.testing.assert_array_equal(out, x[:, 3])
        np.testing.assert_array_equal(m.columns([2, 1, 2]), x[:, [2, 1, 2]].T)


def iter_columns_bv(m, cols, block_values):
    buf = np.empty(m.n_cells, dtype=np.float32)
    for block in m.blocks(cols, block_values):
        for i, p in enumerate(block.positions):
            yield int(p), block.column(i, buf)


@pytest.mark.parametrize(("store", "fmt"), CASES)
def test_read_rows_equals_the_in_memory_rows(stores, store, fmt):
    x = _dense()
    with BackedMatrix.open(stores[store, fmt], attach_cache=False) as m:
        for a, b in [(0, N), (0, 1), (5, 6), (17, 133), (N - 3, N), (40, 40)]:
            rows = m.read_rows(a, b)
            assert sp.issparse(rows) == (fmt != "dense")
            dense = rows.toarray() if sp.issparse(rows) else rows
            np.testing.assert_array_equal(dense, x[a:b])


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("fmt", ["csr", "dense"])
def test_row_chunks_are_canonical_and_cover_every_row(stores, store, fmt):
    x = _dense()
    with BackedMatrix.open(stores[store, fmt], attach_cache=False) as m:
        for max_values in (1, 50, 10**9):
            parts, start = [], 0
            for ch in m.iter_row_chunks(max_values):
                assert ch.start == start and ch.stop > ch.start
                assert ch.indptr[0] == 0 and is_canonical(ch.indptr, ch.indices)
                assert ch.stop - ch.start == 1 or ch.indptr[-1] <= max(max_values, G)
                parts.append(
                    sp.csr_matrix((ch.data, ch.indices, ch.indptr), shape=(ch.stop - ch.start, G))
                )
                start = ch.stop
            assert start == N
            np.testing.assert_array_equal(sp.vstack(parts).toarray(), x)


def test_from_anndata_wraps_backed_x_only(tmp_path):
    adata = make_adata(60, 9)
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    assert BackedMatrix.from_anndata(adata) is None  # in memory
    backed = ad.read_h5ad(path, backed="r")
    try:
        m = BackedMatrix.from_anndata(backed, attach_cache=False)
        assert m is not None and m.format == "csr" and m.element == "X"
        assert m.source_path == Path(path)
        np.testing.assert_array_equal(m.columns(range(9)), adata.X.toarray().T)
    finally:
        backed.file.close()


def _raw_sparse_group(f: h5py.File, name: str, fmt: str, m: sp.spmatrix, shape) -> None:
    g = f.create_group(name)
    g.attrs["encoding-type"] = f"{fmt}_matrix"
    g.attrs["encoding-version"] = "0.1.0"
    g.attrs["shape"] = np.array(shape)
    g["indptr"], g["indices"], g["data"] = m.indptr, m.indices, m.data


def _non_canonical(x: np.ndarray, seed: int = 0) -> sp.csr_matrix:
    """CSR with unsorted indices and duplicates (split values) summing to ``x``."""
    r = rng(seed)
    rows, cols = np.nonzero(x)
    vals = x[rows, cols].astype(np.float64)
    split = r.random(vals.size) < 0.4
    rows = np.concatenate([rows, rows[split]])
    cols = np.concatenate([cols, cols[split]])
    vals = np.concatenate([np.where(split, vals / 2, vals), vals[split] / 2])
    order = np.lexsort((r.random(rows.size), rows))  # row-major, shuffled within rows
    rows, cols, vals = rows[order], cols[order], vals[order]
    indptr = np.zeros(x.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=x.shape[0]), out=indptr[1:])
    m = sp.csr_matrix((vals, cols, indptr), shape=x.shape)
    assert not m.has_canonical_format
    return m


def test_non_canonical_csr_and_csc_sum_duplicates(tmp_path):
    x = _dense().astype(np.float64)
    csr = _non_canonical(x)
    csc_t = _non_canonical(np.ascontiguousarray(x.T), 1)  # CSC of x == CSR of x.T
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        _raw_sparse_group(f, "csr", "csr", csr, x.shape)
        _raw_sparse_group(f, "csc", "csc", csc_t, x.shape)
    for element in ("csr", "csc"):
        with BackedMatrix.open(path, element, attach_cache=False) as m:
            assert m.format == element
            got = m.columns(range(G))
            np.testing.assert_allclose(got, x.T.astype(np.float32), rtol=1e-6)
            np.testing.assert_allclose(m.column(11), x[:, 11], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64, np.uint16])
def test_any_numeric_dtype_comes_out_float32(tmp_path, dtype):
    x = np.round(_dense() * 4).astype(dtype)
    path = tmp_path / "d.h5ad"
    ad.AnnData(X=sp.csr_matrix(x)).write_h5ad(path)
    with BackedMatrix.open(path, attach_cache=False) as m:
        assert m.dtype == np.dtype(dtype)
        got = m.columns(range(G))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, x.T.astype(np.float32))


# ---------------------------------------------------------------- opening reads no stored value
class CountingFile:
    """A file object recording every ``(offset, size)`` HDF5 reads through it."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.reads: list[tuple[int, int]] = []

    def read(self, n: int = -1) -> bytes:
        pos = self.f.tell()
        data = self.f.read(n)
        self.reads.append((pos, len(data)))
        return data

    def readinto(self, b) -> int:
        pos = self.f.tell()
        n = self.f.readinto(b)
        self.reads.append((pos, n))
        return n

    def seek(self, *a):
        return self.f.seek(*a)

    def tell(self):
        return self.f.tell()

    def close(self):
        self.f.close()


def _extents(ds: h5py.Dataset) -> list[tuple[int, int]]:
    """Byte ranges where a dataset's values are stored in the file."""
    if ds.chunks is None:
        return [(ds.id.get_offset(), ds.id.get_storage_size())]
    out = []
    for i in range(ds.id.get_num_chunks()):
        info = ds.id.get_chunk_info(i)
        out.append((info.byte_offset, info.size))
    return out


def _touches(reads, extents) -> bool:
    return any(a < o + s and o < a + n for a, n in reads for o, s in extents if s and n)


@pytest.mark.parametrize("fmt", FORMATS)
def test_opening_an_h5ad_reads_no_byte_of_stored_values(stores, fmt):
    path = stores["h5ad", fmt]
    with h5py.File(path, "r") as f:
        names = ["X"] if fmt == "dense" else ["X/indptr", "X/indices", "X/data"]
        extents = [e for n in names for e in _extents(f[n])]
    assert extents and all(s > 0 for _, s in extents)
    fobj = CountingFile(path)
    try:
        with h5py.File(fobj, "r") as f:
            fobj.reads.clear()
            m = BackedMatrix(f["X"], source_path=path, element="X")
            assert (m.n_cells, m.n_genes) == (N, G) and repr(m)
            assert not _touches(fobj.reads, extents), "opening read stored values"
            m.column(3)  # the check has teeth: reading a gene does touch them
            assert _touches(fobj.reads, extents)
    finally:
        fobj.close()


@pytest.fixture
def h5py_reads(monkeypatch) -> list[str]:
    """Names of h5py datasets read through ``__getitem__``/``read_direct``/``__array__``."""
    log: list[str] = []
    for meth in ("__getitem__", "read_direct", "__array__"):
        orig = getattr(h5py.Dataset, meth)

        def spy(self, *a, _orig=orig, **k):
            log.append(self.name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(h5py.Dataset, meth, spy)
    return log


@pytest.mark.parametrize("fmt", FORMATS)
def test_from_backed_anndata_reads_no_x_dataset(stores, fmt, h5py_reads):
    backed = ad.read_h5ad(stores["h5ad", fmt], backed="r")
    try:
        h5py_reads.clear()
        m = BackedMatrix.from_anndata(backed, attach_cache=False)
        assert m is not None and m.format == fmt
        assert [n for n in h5py_reads if n.startswith("/X")] == []
        m.column(0)
        assert [n for n in h5py_reads if n.startswith("/X")]
    finally:
        backed.file.close()


@pytest.fixture
def zarr_keys(monkeypatch) -> list[str]:
    """Keys fetched from local zarr stores."""
    log: list[str] = []
    orig = zarr.storage.LocalStore.get

    async def spy(self, key, *a, **k):
        log.append(key)
        return await orig(self, key, *a, **k)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", spy)
    return log


def _chunk_keys(keys: list[str]) -> list[str]:
    meta = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")
    return [k for k in keys if k.startswith("X") and not k.endswith(meta)]


@pytest.mark.parametrize("store", ["zarr2", "zarr3"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_opening_a_zarr_store_fetches_no_chunk(stores, store, fmt, zarr_keys):
    m = BackedMatrix.open(stores[store, fmt], attach_cache=False)
    assert m.format == fmt
    assert zarr_keys, "the spy saw no metadata read at all"
    assert _chunk_keys(zarr_keys) == []
    m.column(1)
    assert _chunk_keys(zarr_keys)


# ---------------------------------------------------------------- the CSR scan is batched
class CountingGroup:
    """A sparse group whose ``indices`` count the values read from them."""

    def __init__(self, group) -> None:
        self._group = group
        self.attrs = group.attrs
        self.indices_read = 0
        outer = self

        class Indices:
            def __init__(self, ds) -> None:
                self.ds, self.shape, self.dtype = ds, ds.shape, ds.dtype

            def __getitem__(self, key):
                out = self.ds[key]
                outer.indices_read += np.size(out)
                return out

        self._indices = Indices(group["indices"])

    def keys(self):
        return self._group.keys()

    def __contains__(self, k) -> bool:
        return k in self._group

    def __getitem__(self, k):
        return self._indices if k == "indices" else self._group[k]


def test_csr_scan_reads_the_rows_once_per_block_not_per_gene(stores):
    x = _dense()
    with h5py.File(stores["h5ad", "csr"], "r") as f:
        g = CountingGroup(f["X"])
        m = BackedMatrix(g, scan_values=100)  # many row chunks
        nnz = m.nnz
        np.testing.assert_array_equal(m.columns(range(G), block_values=10**9), x.T)
        assert g.indices_read == nnz  # all genes in a single pass
        g.indices_read = 0
        m.column(5)
        assert g.indices_read == nnz
        g.indices_read = 0
        cols = np.arange(G)
        blocks = list(m.blocks(cols, block_values=nnz // 3))  # about a third of the genes each
        assert 3 <= len(blocks) <= 4
        assert g.indices_read == nnz * len(blocks)


def test_blocks_reject_out_of_range_genes(stores):
    with BackedMatrix.open(stores["h5ad", "csr"], attach_cache=False) as m:
        with pytest.raises(IndexError):
            list(m.blocks(np.array([G])))
        with pytest.raises(IndexError):
            m.column(-1)


def test_bad_inputs_are_reported(tmp_path, stores):
    with pytest.raises(TypeError, match="gene_matrix"):
        BackedMatrix(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="gene_matrix"):
        BackedMatrix(sp.csr_matrix((3, 3)))
    with pytest.raises(FileNotFoundError):
        BackedMatrix.open(tmp_path / "missing.h5ad")
    with pytest.raises(KeyError, match="layers/none"):
        BackedMatrix.open(stores["h5ad", "csr"], "layers/none")
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        f.create_group("X").attrs["encoding-type"] = "dataframe"
        f["strings"] = np.array([b"a", b"b"])
    with pytest.raises(ValueError, match="not a sparse matrix group"):
        BackedMatrix.open(path)
    with pytest.raises(TypeError):
        BackedMatrix.open(path, "strings")


# ---------------------------------------------------------------- prepare() from a backed file
def test_prepare_streams_genes_from_a_backed_file_with_the_proposed_wiring(tmp_path, monkeypatch):
    """The change recommended for ``inputs.expression_of`` (plus the protocol pass-through in
    ``genes.gene_matrix``), applied here by monkeypatching: prepare() reads genes through
    ``BackedMatrix`` and never loads X, with the same payloads as from memory."""
    import cellucid
    from cellucid.export import genes, inputs

    orig_expression_of, orig_gene_matrix = inputs.expression_of, genes.gene_matrix

    def expression_of(adata, layer):
        return (BackedMatrix.from_anndata(adata) if layer is None else None) or orig_expression_of(
            adata, layer
        )

    def gene_matrix(matrix):
        return matrix if hasattr(matrix, "blocks") else orig_gene_matrix(matrix)

    monkeypatch.setattr(inputs, "expression_of", expression_of)
    monkeypatch.setattr(inputs, "gene_matrix", gene_matrix)

    def no_load(self, *a, **k):
        raise AssertionError("X was loaded into memory")

    from anndata._core.sparse_dataset import BaseCompressedSparseDataset

    adata = make_adata(90, 12)
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    # from here on, loading a backed sparse matrix fails (read_h5ad itself loads obsp)
    monkeypatch.setattr(BaseCompressedSparseDataset, "to_memory", no_load)
    try:
        a = cellucid.prepare(backed, tmp_path / "backed", compression=None, quiet=True)
    finally:
        backed.file.close()
    b = cellucid.prepare(adata, tmp_path / "memory", compression=None, quiet=True)
    var_a = sorted(p.relative_to(a) for p in (a / "var").iterdir())
    assert var_a == sorted(p.relative_to(b) for p in (b / "var").iterdir())
    assert len(var_a) == 12
    for rel in var_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "var_manifest.json").read_bytes() == (b / "var_manifest.json").read_bytes()
    # and plain iteration of the protocol, as cellucid.export.genes does it
    with BackedMatrix.open(path, attach_cache=False) as m:
        cols = np.array([11, 0, 5])
        got = {p: c.copy() for p, c in iter_columns(m, cols)}
        for p, j in enumerate(cols):
            np.testing.assert_array_equal(got[p], adata.X[:, j].toarray().ravel())
