"""Storage access, below everything that reads data: where it lives and how to read it.

- :mod:`~cellucid.storage.stores`: local paths and fsspec URLs (``s3://``, ``gs://``,
  ``https://``) with their ``storage_options``; opening ``.h5ad`` files and ``.zarr`` stores.
- :mod:`~cellucid.storage.anndata_io`: reading an AnnData whole or lazily (annotations only).
- :mod:`~cellucid.storage.blocks`: the :class:`~cellucid.storage.blocks.GeneMatrix` protocol
  every expression matrix speaks (gene columns block by block).
- :mod:`~cellucid.storage.backed`: an expression matrix left in its file or store.
- :mod:`~cellucid.storage.column_cache`: the on-disk column-major copy of a cell-major
  matrix (local, also for remote sources).
- :mod:`~cellucid.storage.dask`: a Dask array as a gene matrix, computed on the active
  Dask scheduler.

Dependencies point one way: :mod:`cellucid.export`, :mod:`cellucid.sources` and
:mod:`cellucid.analysis` use this package; it imports none of them.
"""
