"""The safe-filename rule, strict names and collisions (SPEC §2.4), and dataset dir names (§2.2)."""

from __future__ import annotations

import re

import pytest

from cellucid.export.naming import (
    check_names,
    find_collisions,
    is_eligible_dataset_dir_name,
    safe_name,
    strict_safe_name,
)

# The six examples of SPEC §2.4, verbatim.
SPEC_EXAMPLES = [
    ("pct mito", "pct_mito"),
    ("CD8A/B", "CD8A_B"),
    ("__x__", "x"),
    ("..", "field"),
    ("Gène", "G_ne"),
    ("a  ,b", "a_b"),
]


@pytest.mark.parametrize(("name", "expected"), SPEC_EXAMPLES)
def test_spec_examples(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("already.safe-Name_1", "already.safe-Name_1"),
        ("a//b\\c", "a_b_c"),  # a maximal run becomes one "_"
        ("a_/_b", "a___b"),  # existing "_" are kept, only the run is replaced
        ("._.a._.", "a"),  # strip every leading and trailing "." and "_"
        ("-a-", "-a-"),  # "-" is not stripped
        ("x\ty\nz", "x_y_z"),
        ("日本語 gene", "gene"),
        ("α", "field"),
        (5, "5"),  # step (1): str()
        (1.5, "1.5"),
        (None, "None"),
        (("a", "b"), "a_b"),
    ],
)
def test_rule_steps(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["", "★", "__", "..", "._.", " ", "日本", "\t\n", "_★_"])
def test_names_without_a_safe_form(name):
    """Step (4) (``field``) is only for derived names; strict names have no safe form."""
    assert strict_safe_name(name) is None
    assert safe_name(name) == "field"


@pytest.mark.parametrize(("name", "expected"), [*SPEC_EXAMPLES[:3], *SPEC_EXAMPLES[4:], ("-", "-")])
def test_strict_name_equals_safe_name_when_it_exists(name, expected):
    assert strict_safe_name(name) == expected


@pytest.mark.parametrize(
    "name",
    ["pct mito", "  x  ", "a.b", "..a..", "€€1€€", "-", "x" * 300, "a\x00b", "Ünïcödé", "1 / 2"],
)
def test_safe_output_is_safe_and_idempotent(name):
    s = safe_name(name)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", s)
    assert not s.startswith((".", "_")) and not s.endswith((".", "_"))
    assert safe_name(s) == s


def test_find_collisions_groups_distinct_keys_and_unnamed():
    collisions, unnamed = find_collisions(["pct mito", "pct_mito", "pct/mito", "ok", "★", ".."])
    assert collisions == {"pct_mito": ["pct mito", "pct_mito", "pct/mito"]}
    assert unnamed == ["★", ".."]


def test_find_collisions_compares_after_str():
    collisions, unnamed = find_collisions([1, "1", "2"])
    assert collisions == {"1": ["1", "1"]}
    assert unnamed == []


def test_no_collisions():
    assert find_collisions(["a", "b", "a.b", "a-b", "c"]) == ({}, [])


def test_names_that_differ_only_in_case_collide():
    """One file on macOS and Windows: a collision like any other (issue 13)."""
    assert find_collisions(["Gene1", "GENE1", "b"]) == ({"gene1": ["Gene1", "GENE1"]}, [])
    with pytest.raises(ValueError, match=r"differ only in case \('GENE1', 'Gene1'\)"):
        check_names(["Gene1", "GENE1"], "gene id", "Rename one.")


def test_check_names_names_both_keys_and_the_hint():
    with pytest.raises(ValueError) as exc:
        check_names(["pct mito", "pct_mito"], "obs key", "Use obs_keys=[...].")
    msg = str(exc.value)
    assert "'pct mito'" in msg and "'pct_mito'" in msg
    assert "obs_keys" in msg


def test_check_names_reports_duplicates_and_unnamed_keys():
    with pytest.raises(ValueError) as exc:
        check_names(["a", "a", "★"], "gene id", "Make ids unique.")
    msg = str(exc.value)
    assert "'a'" in msg and "'★'" in msg
    assert "Make ids unique." in msg


def test_check_names_accepts_clean_keys():
    check_names(["a", "b", "c d"], "obs key", "hint")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("pbmc3k", True),
        ("a", True),
        ("A.b-c_d", True),
        ("a" * 180, True),
        ("a" * 181, False),
        (".hidden", False),
        ("_private", False),
        ("-x", False),
        ("has space", False),
        ("", False),
        ("CON", False),
        ("con", False),
        ("Con.txt", False),
        ("nul.tar.gz", False),
        ("COM1", False),
        ("com9.json", False),
        ("LPT1", False),
        ("COM0", True),
        ("LPT10", True),
        ("CONSOLE", True),
        ("assets", False),
        ("_cellucid", False),
    ],
)
def test_dataset_dir_eligibility(name, ok):
    assert is_eligible_dataset_dir_name(name) is ok
