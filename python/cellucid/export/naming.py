"""File names of the export format: the safe-filename rule (SPEC §2.4) and fixed paths.

Every module that maps a key to a file name goes through :func:`safe_name`, so writers,
servers and validators always agree on where a field lives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")

#: Dataset directory names a server or catalog may use (SPEC §2.2).
DATASET_DIR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,179}$")
_WINDOWS_DEVICE_RE = re.compile(r"^(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?$", re.IGNORECASE)
RESERVED_DIR_NAMES = frozenset({"assets", "_cellucid"})

# Fixed names of the export layout (SPEC §2.1).
IDENTITY_FILE = "dataset_identity.json"
OBS_MANIFEST_FILE = "obs_manifest.json"
VAR_MANIFEST_FILE = "var_manifest.json"
CONNECTIVITY_MANIFEST_FILE = "connectivity_manifest.json"
OBS_DIR = "obs"
VAR_DIR = "var"
CONNECTIVITY_DIR = "connectivity"
VECTORS_DIR = "vectors"
DATASETS_FILE = "datasets.json"


def _strip(name: object) -> str:
    return _UNSAFE_RUN.sub("_", str(name)).strip("._")


def safe_name(name: object) -> str:
    """Return the file-name form of ``name`` (SPEC §2.4), ``"field"`` when nothing is left.

    >>> safe_name("pct mito"), safe_name("CD8A/B"), safe_name("__x__"), safe_name("..")
    ('pct_mito', 'CD8A_B', 'x', 'field')
    """
    return _strip(name) or "field"


def strict_safe_name(name: object) -> str | None:
    """Return the safe form of an obs key or gene id, or ``None`` when it has no safe form.

    Keys such as ``""``, ``"★"`` or ``".."`` have no letter, digit or ``-`` and are
    rejected by strict readers instead of being mapped to ``"field"``.
    """
    return _strip(name) or None


def find_collisions(keys: Iterable[object]) -> tuple[dict[str, list[str]], list[str]]:
    """Group keys whose safe forms collide, and list keys without any safe form.

    Returns ``(collisions, unnamed)``: ``collisions`` maps a (case-folded) safe name to the
    two or more distinct original keys (as ``str``) that share it; exact duplicates count as
    a collision too. Safe names that differ only in case (``Gene1``, ``GENE1``) collide:
    they are one file on the case-insensitive file systems of macOS and Windows.
    """
    by_safe: dict[str, list[str]] = {}
    unnamed: list[str] = []
    for key in keys:
        text = str(key)
        safe = strict_safe_name(text)
        if safe is None:
            unnamed.append(text)
            continue
        by_safe.setdefault(safe.casefold(), []).append(text)
    collisions = {safe: ks for safe, ks in by_safe.items() if len(ks) > 1}
    return collisions, unnamed


def check_names(keys: Iterable[object], what: str, hint: str) -> None:
    """Raise ``ValueError`` naming every key that collides or has no safe file name.

    ``what`` names the kind of key ("obs key", "gene id"); ``hint`` says how to fix it.
    """
    collisions, unnamed = find_collisions(keys)
    problems: list[str] = []
    for ks in collisions.values():
        listed = ", ".join(repr(k) for k in ks)
        names = sorted({strict_safe_name(k) or "" for k in ks})
        if len(set(ks)) == 1:
            problems.append(f"{what} {ks[0]!r} appears {len(ks)} times")
        elif len(names) == 1:
            problems.append(f"{what}s {listed} all map to the file name {names[0]!r}")
        else:
            shown = ", ".join(repr(n) for n in names)
            problems.append(
                f"{what}s {listed} map to file names that differ only in case ({shown}), "
                "which are one file on macOS and Windows"
            )
    for key in unnamed:
        problems.append(f"{what} {key!r} has no letter, digit or '-' to build a file name from")
    if problems:
        raise ValueError(
            f"cannot export: {len(problems)} {what} problem(s): "
            + "; ".join(problems)
            + f". {hint}"
        )


def is_eligible_dataset_dir_name(name: str) -> bool:
    """Whether a subdirectory name may hold a dataset of an export root (SPEC §2.2)."""
    if not DATASET_DIR_RE.match(name):
        return False
    if _WINDOWS_DEVICE_RE.match(name):
        return False
    return name not in RESERVED_DIR_NAMES


def with_gz(path: str, compression: int | None) -> str:
    """Append ``.gz`` to a binary payload path when compression is on."""
    return path + ".gz" if compression else path
