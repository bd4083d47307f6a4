"""The ``cellucid`` command line (SPEC §6.7).

Exit codes: 0 success, 1 error (one-line message; ``-v`` shows the traceback), 2 usage error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._signals import interrupt_on_signals
from ._version import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2 with the usage line
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _csv(text: str) -> list[str]:
    return [part for part in (p.strip() for p in text.split(",")) if part]


def _level(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError("compression must be 0 (off) or a gzip level 1-9")
    return value


_EMBEDDING_HELP = (
    "obsm key of an embedding to show (repeatable, one per dimension): X_tsne, spatial, "
    "X_draw_graph_fa, or KEY:2 / KEY:3 for the first columns of a wider one (X_pca:2); "
    "default: X_umap"
)


def _embedding_option(values: list[str] | None) -> list[str] | None:
    return list(values) if values else None


_STORAGE_OPTION: dict = {
    "action": "append",
    "metavar": "KEY=VALUE",
    "dest": "storage_options",
    "help": "fsspec option for URLs (repeatable): key=..., secret=..., anon=true, "
    "client_kwargs.endpoint_url=http://127.0.0.1:9000; default: the AWS_*/GOOGLE_* environment",
}

# -v works before or after the subcommand; SUPPRESS keeps a subcommand from resetting it
_VERBOSE: dict = {"action": "store_true", "default": argparse.SUPPRESS, "help": "show tracebacks"}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cellucid",
        description="Explore single-cell data in a fast WebGL viewer: export, check and serve datasets.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"cellucid {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "prepare",
        help="export an .h5ad or .zarr AnnData to an export folder",
        description="Export an AnnData (.h5ad or .zarr) to a folder in the Cellucid export format. "
        "Embeddings come from obsm['X_umap'] / obsm['X_umap_2d'|'X_umap_3d'], the latent space "
        "from --latent-key or X_pca-like keys, genes from X or --layer.",
    )
    p.add_argument("data", help="input .h5ad file or .zarr store (a path or a URL: s3://…)")
    p.add_argument(
        "out",
        help="output folder (created; replaced only with --force), or a URL: s3://bucket/prefix",
    )
    p.add_argument("--storage-option", **_STORAGE_OPTION)
    p.add_argument("--layer", help="expression layer instead of X")
    p.add_argument(
        "--read",
        choices=("auto", "memory", "lazy"),
        default="auto",
        help="load the file into memory (fastest) or keep its expression matrix on disk and "
        "read genes a block at a time (for files larger than memory); auto: in memory when "
        "the matrix takes at most a quarter of the available memory",
    )
    p.add_argument("--latent-key", help="obsm key of the latent space (default: X_pca-like keys)")
    p.add_argument("--embedding", action="append", metavar="KEY", help=_EMBEDDING_HELP)
    p.add_argument("--obs-keys", type=_csv, help="comma-separated obs columns (default: all)")
    p.add_argument("--genes", type=_csv, help="comma-separated gene ids to export (default: all)")
    p.add_argument("--var-gene-id-column", default="index", help="var column with gene ids")
    p.add_argument("--no-genes", action="store_true", help="export no gene expression")
    p.add_argument("--no-connectivity", action="store_true", help="skip obsp['connectivities']")
    p.add_argument("--compression", type=_level, default=None, help="gzip level 1-9 (0: off)")
    p.add_argument("--var-quantization", type=int, choices=(8, 16), help="quantise genes")
    p.add_argument(
        "--obs-quantization", type=int, choices=(8, 16), help="quantise continuous obs fields"
    )
    p.add_argument("--obs-categorical-dtype", choices=("auto", "uint8", "uint16"), default="auto")
    p.add_argument("--centroid-outlier-quantile", type=float, default=0.95)
    p.add_argument("--centroid-min-points", type=int, default=10)
    p.add_argument("--dataset-name", help="display name (default: output folder name)")
    p.add_argument("--dataset-id", help="identity id (default: safe form of the name)")
    p.add_argument("--description", default=None, help="dataset description")
    p.add_argument("--source-name")
    p.add_argument("--source-url")
    p.add_argument("--source-citation")
    p.add_argument("-f", "--force", action="store_true", help="replace an existing export")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("-v", "--verbose", **_VERBOSE)

    s = sub.add_parser(
        "serve",
        help="serve an .h5ad, a .zarr, an export folder or a folder of exports to the viewer",
        description="Serve data to the cellucid viewer in your browser. PATH may be an .h5ad "
        "file, a .zarr store (v2 or v3), an export folder made by 'cellucid prepare', or a "
        "folder of such exports. Stop with Ctrl+C.",
    )
    s.add_argument("path", help="a path or a URL (s3://…, gs://…, https://…)")
    s.add_argument("--storage-option", **_STORAGE_OPTION)
    s.add_argument(
        "-p", "--port", type=int, default=8765, help="port (next free one if busy; 0: any)"
    )
    s.add_argument(
        "-H", "--host", default="127.0.0.1", help="bind address (default: loopback only)"
    )
    s.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    s.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    s.add_argument("--no-backed", action="store_true", help="load an .h5ad fully into memory")
    s.add_argument("--latent-key", help="obsm key of the latent space (AnnData only)")
    s.add_argument("--embedding", action="append", metavar="KEY", help=_EMBEDDING_HELP)
    s.add_argument("--dataset-name", help="dataset name shown in the viewer (AnnData only)")
    s.add_argument(
        "--session",
        type=Path,
        metavar="FILE",
        help="a .cellucid-session file the viewer opens with the data (instead of a default "
        "session placed with an export; merged with an AnnData's scanpy colours)",
    )
    s.add_argument("-v", "--verbose", **_VERBOSE)

    v = sub.add_parser(
        "validate",
        help="check an export folder (or a folder of exports) against the format",
        description="Check an export folder, or a folder of exports with its datasets.json, "
        "against every rule of the export format. Prints one line per violation "
        "(file, key, expected, found); exits 1 if there is any.",
    )
    v.add_argument("path", type=Path)
    v.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    v.add_argument("-v", "--verbose", **_VERBOSE)

    d = sub.add_parser(
        "datasets",
        help="write datasets.json for a folder of exports (static hosting)",
        description="Scan the export folders inside ROOT and write ROOT/datasets.json.",
    )
    d.add_argument("root", type=Path)
    d.add_argument("--default", dest="default_dataset", help="id of the default dataset")
    d.add_argument("-v", "--verbose", **_VERBOSE)
    return parser


def _cmd_prepare(args: argparse.Namespace) -> int:
    from .export.prepare import is_complete_export, prepare
    from .storage.anndata_io import read_for_export
    from .storage.stores import exists, is_url, is_zarr_store, local_path, parse_storage_options

    options = parse_storage_options(args.storage_options)
    data: str | Path = args.data if is_url(args.data) else local_path(args.data)
    if not exists(data, options):
        raise FileNotFoundError(f"Path not found: {data}")
    if not (str(data).lower().rstrip("/").endswith(".h5ad") or is_zarr_store(data, options)):
        raise ValueError(f"{data} is neither an .h5ad file nor a .zarr store")
    if not args.quiet:
        print(f"cellucid v{__version__}: reading {data}", file=sys.stderr)
    out_dir = args.out if is_url(args.out) else local_path(args.out)
    if not args.force and not is_url(out_dir) and is_complete_export(out_dir.resolve()):
        raise FileExistsError(f"{args.out} already holds an export; pass --force to replace it")
    adata, close = read_for_export(data, layer=args.layer, storage_options=options, read=args.read)
    try:
        out = _prepare_file(prepare, adata, out_dir, options, args)
    finally:
        close()
    print(out)
    return 0


def _prepare_file(prepare: Any, adata: Any, out_dir: Any, options: Any, args: Any) -> Any:
    return prepare(
        adata,
        out_dir,
        storage_options=options or None,
        layer=args.layer,
        latent_key=args.latent_key,
        embedding=_embedding_option(args.embedding),
        genes=not args.no_genes,
        connectivity=not args.no_connectivity,
        obs_keys=args.obs_keys,
        gene_identifiers=args.genes,
        var_gene_id_column=args.var_gene_id_column,
        compression=args.compression or None,
        var_quantization=args.var_quantization,
        obs_continuous_quantization=args.obs_quantization,
        obs_categorical_dtype=args.obs_categorical_dtype,
        centroid_outlier_quantile=args.centroid_outlier_quantile,
        centroid_min_points=args.centroid_min_points,
        dataset_name=args.dataset_name,
        dataset_id=args.dataset_id,
        dataset_description=args.description,
        source_name=args.source_name,
        source_url=args.source_url,
        source_citation=args.source_citation,
        force=args.force,
        quiet=args.quiet,
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from .sources.detect import detect
    from .storage.stores import parse_storage_options

    options = parse_storage_options(args.storage_options)
    if args.quiet:  # "print nothing but errors": warnings about the data included
        warnings.simplefilter("ignore")
    # FileNotFoundError / ValueError -> exit 1 with the message
    detected = detect(args.path, options)
    if not args.quiet:
        print(f"cellucid v{__version__}: opening {detected.kind} {detected.path}", file=sys.stderr)
    common = {
        "port": args.port,
        "host": args.host,
        "open_browser": not args.no_browser,
        "quiet": args.quiet,
        "session": args.session,
    }
    if detected.kind in ("export", "export_root"):
        from .server.runner import CellucidServer

        if args.embedding:
            raise ValueError(
                "--embedding chooses among an AnnData's obsm keys; an export folder shows the "
                "embeddings it was exported with (cellucid prepare --embedding KEY)"
            )
        server = CellucidServer(detected.path, storage_options=options, **common)
    else:
        from .server.runner import AnnDataServer

        kw: dict = {"backed": not args.no_backed} if detected.kind == "h5ad" else {}
        if options:
            kw["storage_options"] = options
        if args.latent_key:
            kw["latent_key"] = args.latent_key
        if args.dataset_name:
            kw["dataset_name"] = args.dataset_name
        if args.embedding:
            kw["embedding"] = _embedding_option(args.embedding)
        server = AnnDataServer(detected.path, **common, **kw)
    server.start(blocking=True)  # returns after Ctrl+C, port freed and files closed
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .export.validate import validate_export

    path: Path = args.path
    if not path.exists():
        raise FileNotFoundError(f"Path not found: {path}")
    violations = validate_export(path)
    if not args.quiet:
        for violation in violations:
            print(violation)
    if violations:
        print(f"{path}: {len(violations)} violation(s)", file=sys.stderr)
        return 1
    print(f"{path}: valid")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from .export.catalog import generate_datasets_manifest

    written = generate_datasets_manifest(args.root, default_dataset=args.default_dataset)
    if written is None:
        raise ValueError(f"no export folder found inside {args.root}")
    print(written)
    return 0


_COMMANDS = {
    "prepare": _cmd_prepare,
    "serve": _cmd_serve,
    "validate": _cmd_validate,
    "datasets": _cmd_datasets,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    restore = interrupt_on_signals() if args.command == "prepare" else (lambda: None)
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("cellucid: interrupted; nothing was changed", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"cellucid {args.command}: error: {message}", file=sys.stderr)
        return 1
    finally:
        restore()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
