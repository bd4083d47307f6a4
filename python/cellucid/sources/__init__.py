"""Data sources: an export folder or an AnnData, each seen as the files of the export format."""
