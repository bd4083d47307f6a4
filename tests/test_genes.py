"""Gene columns out of every supported matrix type (SPEC §2.7, §6.2 ``gene_expression``).

Whatever the input (dense C/F order, CSR canonical or not, CSC, COO, scipy sparse arrays),
each requested gene column must come out as the float32 column of the dense matrix, for any
subset of columns in any order and any block size, and the caller's matrix must not change.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from _data import assert_same, expression, rng, snapshot
from cellucid.export.genes import gene_matrix

N_CELLS, N_GENES = 37, 23


def _dense(seed=0):
    x = expression(N_CELLS, N_GENES, seed, density=0.35)
    x[3, :] = 0.0  # an all-zero cell
    return x


def _non_canonical_csr(dense, seed=0):
    """The same matrix as CSR with unsorted indices and duplicate entries that sum to it."""
    r = rng(seed)
    rows, cols = np.nonzero(dense)
    vals = dense[rows, cols].astype(np.float64)
    split = r.random(vals.size) < 0.4  # split these entries into two halves
    rows = np.concatenate([rows, rows[split]])
    cols = np.concatenate([cols, cols[split]])
    vals = np.concatenate([np.where(split, vals / 2, vals), vals[split] / 2])
    data, indices, indptr = [], [], [0]
    for i in range(dense.shape[0]):
        sel = np.flatnonzero(rows == i)
        sel = r.permutation(sel)  # unsorted within the row
        data.append(vals[sel])
        indices.append(cols[sel])
        indptr.append(indptr[-1] + sel.size)
    m = sp.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), np.array(indptr)), shape=dense.shape
    )
    assert not m.has_canonical_format
    return m


def _non_canonical_csc(dense, seed=0):
    t = _non_canonical_csr(np.ascontiguousarray(dense.T), seed)
    m = sp.csc_matrix((t.data, t.indices, t.indptr), shape=dense.shape)
    assert not m.has_canonical_format
    return m


MAKERS = {
    "dense_c": lambda x: np.ascontiguousarray(x),
    "dense_f": lambda x: np.asfortranarray(x),
    "dense_float64": lambda x: x.astype(np.float64),
    "dense_int": lambda x: np.round(x * 4).astype(np.int32),
    "csr": sp.csr_matrix,
    "csr_non_canonical": _non_canonical_csr,
    "csc": sp.csc_matrix,
    "csc_non_canonical": _non_canonical_csc,
    "coo": sp.coo_matrix,
    "coo_duplicates": lambda x: sp.coo_matrix(_non_canonical_csr(x)),
    "csr_array": sp.csr_array,
    "csc_array": sp.csc_array,
    "coo_array": sp.coo_array,
    "csr_int": lambda x: sp.csr_matrix(np.round(x * 4).astype(np.int64)),
}


def _reference(matrix) -> np.ndarray:
    """The dense matrix, computed without the exporter (duplicates summed by scipy)."""
    if sp.issparse(matrix):
        return np.asarray(matrix.toarray(), dtype=np.float64)
    return np.asarray(matrix, dtype=np.float64)


def _columns_of(item, n_cells):
    """``(positions, [float32 column, ...])`` of one yielded block.

    Accepts both shapes the GeneMatrix protocol has had: ``(positions, dense block)`` tuples
    and block objects with ``positions`` and ``column(i, out)``.
    """
    if isinstance(item, tuple):
        positions, block = item
        assert block.dtype == np.float32
        assert block.shape == (len(positions), n_cells)
        return np.asarray(positions), [block[i] for i in range(len(positions))]
    positions = np.asarray(item.positions)
    buf = np.empty(n_cells, dtype=np.float32)
    cols = []
    for i in range(positions.size):
        col = item.column(i, buf)
        assert col.dtype == np.float32 and col.shape == (n_cells,)
        cols.append(col.copy())  # the buffer may be reused for the next column
    return positions, cols


def collect(gm, columns, block_size):
    """Run ``blocks`` and put every column back at its position; check each comes once."""
    columns = np.asarray(columns, dtype=np.int64)
    out = np.full((columns.size, gm.n_cells), np.nan, dtype=np.float32)
    seen = np.zeros(columns.size, dtype=np.int64)
    for item in gm.blocks(columns, block_size):
        positions, cols = _columns_of(item, gm.n_cells)
        for p, col in zip(positions, cols, strict=True):
            out[p] = col
        np.add.at(seen, positions, 1)
    assert (seen == 1).all(), "every requested column must be yielded exactly once"
    return out


COLUMN_SETS = {
    "all": np.arange(N_GENES),
    "reversed": np.arange(N_GENES)[::-1].copy(),
    "shuffled_subset": rng(7).permutation(N_GENES)[:11],
    "single_last": np.array([N_GENES - 1]),
    "single_first": np.array([0]),
    "sparse_picks": np.array([20, 2, 15, 3]),
    "none": np.zeros(0, dtype=np.int64),
}


@pytest.mark.filterwarnings("ignore:.*unsorted or duplicate indices")
@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize("cols", list(COLUMN_SETS))
@pytest.mark.parametrize("block_size", [1, 4 * N_CELLS * 3, 1 << 27])
def test_every_column_equals_the_dense_reference(kind, cols, block_size):
    matrix = MAKERS[kind](_dense())
    before = snapshot(matrix)
    reference = _reference(matrix)
    gm = gene_matrix(matrix)
    assert (gm.n_cells, gm.n_genes) == (N_CELLS, N_GENES)
    columns = COLUMN_SETS[cols]
    got = collect(gm, columns, block_size)
    want = reference[:, columns].T.astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert_same(before, matrix, kind)


@pytest.mark.filterwarnings("ignore:.*unsorted or duplicate indices")
@pytest.mark.parametrize("kind", list(MAKERS))
def test_blocks_can_be_read_twice(kind):
    """One GeneMatrix serves several passes (e.g. a server answering many gene requests)."""
    matrix = MAKERS[kind](_dense(1))
    gm = gene_matrix(matrix)
    first = collect(gm, np.array([5, 1, 9]), 4 * N_CELLS)
    second = collect(gm, np.array([9, 5, 1]), 1 << 20)
    np.testing.assert_array_equal(first, second[[1, 2, 0]])
    np.testing.assert_array_equal(first, _reference(matrix)[:, [5, 1, 9]].T.astype(np.float32))


def test_non_canonical_csr_duplicates_are_summed_and_input_untouched():
    dense = _dense(2)
    m = _non_canonical_csr(dense, seed=3)
    before = snapshot(m)
    with pytest.warns(UserWarning):  # a copy is made, and the user is told how to avoid it
        gm = gene_matrix(m)
    got = collect(gm, np.arange(N_GENES), 4 * N_CELLS * 2)
    np.testing.assert_allclose(got, dense.T, rtol=1e-6)
    assert_same(before, m, "csr")
    assert not m.has_canonical_format


@pytest.mark.parametrize("values", [[np.nan, 1.0], [np.inf, -np.inf]])
def test_non_finite_expression_values_are_passed_through(values):
    dense = np.zeros((4, 2), dtype=np.float64)
    dense[1, 1], dense[2, 0] = values
    for matrix in (dense, sp.csr_matrix(dense), sp.csc_matrix(dense)):
        got = collect(gene_matrix(matrix), np.array([0, 1]), 1 << 20)
        np.testing.assert_array_equal(got, dense.T.astype(np.float32))


def test_a_large_cell_count_with_few_entries():
    n, g = 70_000, 5
    m = sp.random(n, g, density=1e-3, format="csr", random_state=1, dtype=np.float32)
    got = collect(gene_matrix(m), np.array([4, 0, 2]), 1)  # one gene per block
    np.testing.assert_array_equal(got, m.toarray()[:, [4, 0, 2]].T)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 3, 4)), np.array([["a", "b"]])])
def test_not_a_numeric_matrix_is_value_error(bad):
    with pytest.raises(ValueError):
        gene_matrix(bad)


@pytest.mark.parametrize("kind", ["dense_c", "csr", "csc", "coo"])
def test_repeated_columns_each_get_their_column(kind):
    """Not reachable through ``prepare`` (exported gene ids are unique), but the GeneMatrix
    protocol promises every entry of ``columns`` its column, e.g. for a server batch."""
    matrix = MAKERS[kind](_dense(4))
    columns = np.array([3, 3, 5, 3])
    got = collect(gene_matrix(matrix), columns, 1 << 20)
    np.testing.assert_array_equal(got, _reference(matrix)[:, columns].T.astype(np.float32))
