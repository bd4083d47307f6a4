"""Selection-tool benchmark: category pick, kNN grow and proximity against a plain recolour,
in the viewer's bench mode (``?bench=N``) in Debian's Chromium.

One command::

    python benchmarks/selection.py              # 1,000,000 cells
    python benchmarks/selection.py --quick      # 100,000 cells
    python benchmarks/selection.py --cells N [--dim 3] [--repeat R] [--frame-repeat F] [--no-frames]

The page generates N cells in 24 clusters and a kNN graph (each cell's 15 nearest in its
cluster's order, symmetrised: 16 neighbours a cell; ``js/viewer/src/ui/bench.js``) and runs
``benchSelection``: a recolour of the cluster field, a category pick (the first cell's
cluster), a proximity disc (a ball in 3D) of radius 0.1 around the first cell, and a kNN grow
by one hop from that disc (in the select worker; the graph's one-time load and row build are
reported apart). Two runs:

* **compute**: ``--repeat`` times each (median), without waiting for drawing: the time until the
  step returned, its new picture handed to deck.gl. On a GPU the draw itself takes a few ms,
  so this is what the 100 ms target of issue 10 is about (target: below 100 ms at 1M cells).
* **frames**: ``--frame-repeat`` times each (median): also until the viewer drew the new picture
  and until the browser showed it. Chromium here draws with SwiftShader (software WebGL): a
  frame of 1M points takes tens of seconds on two cores, so what matters is each tool's shown
  time as a ratio to the recolour's (the drawing of the points dominates both).

A third run, **split**: the frame time of a camera move with two panels of the split view
(the second a copy of the first view) against one panel (``?splitbench=R``,
``js/viewer/src/ui/benchsplit.js``), as a ratio, and whether the two panels draw from one GPU
copy of the positions. With software WebGL each panel's points are drawn on the CPU, so the
ratio is near 2 here; what it guards is that a panel adds a draw, not a copy of the data.

Results go to ``benchmarks/results/<stamp>-select-<N>.json``; timings on a shared machine vary
a lot (the 1-minute load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from _benchpage import bench_browser
from _common import QUICK_NOTE, exit_status, write_results

FULL_CELLS = 1_000_000
QUICK_CELLS = 100_000
STEPS = ("recolor", "categoryPick", "proximity", "knnGrow")
TARGET_MS = 100.0


def log(msg: str) -> None:
    print(f"[select-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_page(browser: Any, base: str, args: argparse.Namespace, mode: str, repeat: int) -> dict:
    query = f"selectbench={mode}&repeat={repeat}"
    return run_bench(browser, base, args, query, "select")


def run_split(browser: Any, base: str, args: argparse.Namespace) -> dict:
    return run_bench(browser, base, args, f"splitbench={args.split_rounds}", "split")


def run_bench(browser: Any, base: str, args: argparse.Namespace, query: str, key: str) -> dict:
    """Open the bench page with ``query`` and wait for ``window.__cellucid.bench[key]``."""
    page = browser.new_page(viewport={"width": 900, "height": 640})
    try:
        page.goto(f"{base}/?bench={args.cells}&dim={args.dim}&animate=0&{query}")
        page.wait_for_function(
            f"() => window.__cellucid && window.__cellucid.bench && window.__cellucid.bench.{key}",
            timeout=args.timeout * 1000,
            polling=1000,
        )
        return page.evaluate(f"() => window.__cellucid.bench.{key}")
    finally:
        page.close()


def table(result: dict[str, Any]) -> None:
    compute, frames = result["compute"], result.get("frames")
    print(
        f"select benchmark: {result['cells']:,} cells, {result['dim']}D, "
        f"{compute['edges']:,} kNN edges, load average {result['load_average']}"
    )
    print(
        f"kNN graph: loaded in {compute['knnLoadMs']} ms (rows built in the worker in "
        f"{compute['knnBuildMs']} ms), once"
    )
    head = f"{'step':<14} {'cells':>9} {'compute ms':>11} {'ratio':>6}"
    if frames:
        head += f" {'frame ms':>10} {'shown ms':>10} {'shown ratio':>12}"
    print(head)
    print("-" * len(head))
    for step in STEPS:
        c = compute[step]
        line = f"{step:<14} {c['cells']:>9,} {c['computeMs']:>11.1f} {c.get('ratio', 1.0):>6.2f}"
        if frames:
            f = frames[step]
            line += f" {f['frameMs']:>10.0f} {f['shownMs']:>10.0f} {f.get('ratio', 1.0):>12.2f}"
        print(line)
    split = result.get("split")
    if split:
        print()
        print(
            f"{'split view':<14} {'cells':>9} {'1 panel ms':>11} {'2 panels ms':>12} {'ratio':>6}"
        )
        print(
            f"{'camera move':<14} {split['n']:>9,} {split['oneMs']:>11.0f} "
            f"{split['twoMs']:>12.0f} {split['ratio']:>6.2f}"
        )
    print()
    for check in result["checks"]:
        print(f"{check['verdict']:<4}  {check['check']:<58} {check['value']}")


def checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    compute = result["compute"]
    out = []
    for step in STEPS[1:]:
        ms = compute[step]["computeMs"]
        out.append(
            {
                "check": f"{step} compute below {TARGET_MS:.0f} ms",
                "value": f"{ms:.1f} ms",
                "verdict": "PASS" if ms < TARGET_MS else "FAIL",
                "target": True,
            }
        )
    grown, disc = compute["knnGrow"]["cells"], compute["proximity"]["cells"]
    out.append(
        {
            "check": "every tool selected cells; the grow added some",
            "value": f"{compute['categoryPick']['cells']:,} / {disc:,} / {grown:,}",
            "verdict": "PASS" if compute["categoryPick"]["cells"] and 0 < disc < grown else "FAIL",
        }
    )
    split = result.get("split")
    if split:
        one_copy = split["positionBytes"] + split["n"] * 4  # the positions and the radii, once
        out.append(
            {
                "check": "2 panels draw from one GPU copy of the positions",
                "value": f"{split['sharedBytes']:,} B shared (positions + radii: {one_copy:,} B)",
                "verdict": "PASS"
                if split["sharedPositions"] and split["sharedBytes"] == one_copy
                else "FAIL",
            }
        )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_CELLS:,} cells")
    ap.add_argument("--cells", type=int, help=f"cells (default {FULL_CELLS:,})")
    ap.add_argument("--dim", type=int, choices=(2, 3), default=2)
    ap.add_argument("--repeat", type=int, default=5, help="compute runs per step (median)")
    ap.add_argument("--frame-repeat", type=int, default=1, help="drawn runs per step (median)")
    ap.add_argument("--no-frames", action="store_true", help="only the compute run")
    ap.add_argument("--split-rounds", type=int, default=3, help="camera moves per split setup")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per page")
    args = ap.parse_args(argv)
    if args.cells is None:
        args.cells = QUICK_CELLS if args.quick else FULL_CELLS
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {"cells": args.cells, "dim": args.dim}
    result["load_average"] = round(os.getloadavg()[0], 2)
    with bench_browser() as (browser, base):
        log(f"compute run: {args.cells:,} cells, {args.repeat} runs a step")
        result["compute"] = run_page(browser, base, args, "compute", args.repeat)
        if not args.no_frames:
            log(f"frames run: {args.frame_repeat} drawn runs a step (software WebGL)")
            result["frames"] = run_page(browser, base, args, "1", args.frame_repeat)
            log(f"split run: 1 panel vs 2, {args.split_rounds} camera moves each")
            result["split"] = run_split(browser, base, args)
    result["checks"] = checks(result)
    table(result)
    if args.quick:
        print(QUICK_NOTE)
    dest = write_results(f"select-{args.cells}", json.loads(json.dumps(result)))
    log(f"results: {dest}")
    return exit_status(result["checks"], args.quick)


if __name__ == "__main__":
    sys.exit(main())
