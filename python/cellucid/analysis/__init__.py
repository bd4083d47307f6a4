"""Statistics on the data a viewer shows: compare groups of cells (``rank_genes``)."""

from .rank_genes import COLUMNS, Comparison, compare_expression, rank_genes

__all__ = ["COLUMNS", "Comparison", "compare_expression", "rank_genes"]
