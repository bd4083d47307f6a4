"""Level-of-detail benchmark: frame times with the viewer's LOD against without, in bench mode
(``?bench=N``) in Debian's Chromium, at 1M, 10M and 20M generated points.

One command::

    python benchmarks/lod.py                 # 1,000,000, 10,000,000 and 20,000,000 points
    python benchmarks/lod.py --quick         # 50,000 points, correctness only (< 1 minute)
    python benchmarks/lod.py --cells 2000000 [--dim 3] [--budget 100000] [--full-max 1000000]

For each size the page generates the points (24 clusters), builds the LOD order in its worker
and runs ``benchLod`` (``js/viewer/src/ui/benchlod.js``): frames drawn on demand (each waits
for the GL with a one-pixel read-back) with the camera moving (a pan / orbit step before each)
and still, first with the LOD, then without it; then the memory the page holds (typed-array
bytes of its per-cell state against the payload: positions and fields; the LOD worker's copy
of the positions for the lasso on its own line), a lasso (through the LOD worker's tree index:
only cells near the polygon's boundary are projected) and a category pick (select worker), with
the longest stretch the page went without running a task meanwhile.

Software WebGL (SwiftShader, two shared cores) draws a frame of a million points in seconds
and a frame at 10M in minutes, and a frame once started cannot be stopped. So:

* above ``--full-max`` points (default 1M) full-detail frames are not drawn (shown as ``-``;
  no estimate: here a frame's time does not follow the number of points drawn, so scaling one
  would mislead), and the page draws at most ``--still-budget`` points even when still
  (``lodstill``), so that loading never starts a full frame;
* each page has a timeout (``--timeout``); a size that runs out is reported as such.

On a GPU the goal is 60 fps still and >= 30 fps moving at 10M; here the ratio (full moving
frame / LOD moving frame) is what carries over. Results go to
``benchmarks/results/<stamp>-lod.json``.
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

FULL_SIZES = (1_000_000, 10_000_000, 20_000_000)
QUICK_SIZES = (50_000,)
LASSO_TARGET_MS = 300.0


def log(msg: str) -> None:
    print(f"[lod-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_page(browser: Any, base: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    full = n <= args.full_max
    query = (
        f"bench={n}&dim={args.dim}&animate=0&lodbench=1&lodbudget={args.budget}"
        f"&frames={args.frames}&fullframes={1 if full else 0}"
    )
    if not full:
        query += f"&lodstill={args.still_budget}"
    page = browser.new_page(viewport={"width": 900, "height": 640})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.monotonic()
    try:
        page.goto(f"{base}/?{query}")
        page.wait_for_function(
            "() => window.__cellucid && window.__cellucid.bench && window.__cellucid.bench.lodBench",
            timeout=args.timeout * 1000,
            polling=1000,
        )
        out = page.evaluate(
            "() => ({...window.__cellucid.bench.lodBench, loadMs: window.__cellucid.bench.loadMs,"
            " generateMs: window.__cellucid.bench.generateMs})"
        )
    except Exception as err:  # a timeout or a crashed page: reported per size
        out = {"n": n, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
    finally:
        page.close()
    out["wallSeconds"] = round(time.monotonic() - t0, 1)
    if errors:
        out.setdefault("error", errors[0])
    return out


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _lasso_detail(lasso: dict[str, Any]) -> str:
    tested = lasso.get("tested")
    worker = "" if lasso.get("workerMs") is None else f", {_ms(lasso['workerMs'])} ms in the worker"
    tested_note = "" if tested is None else f" ({tested:,} cells tested one by one)"
    return (
        f"route {lasso.get('route')}, {lasso['cells']:,} cells; known after "
        f"{_ms(lasso.get('cellsMs'))} ms{worker}{tested_note}; selection step on the page "
        f"{_ms(lasso.get('selectMs'))} ms"
    )


def table(result: dict[str, Any]) -> None:
    print(
        f"LOD benchmark: {result['dim']}D, moving budget {result['budget']:,} points, "
        f"load average {result['load_average']} (software WebGL; frame = draw + GL read-back)"
    )
    head = (
        f"{'points':>11} {'load ms':>8} {'index ms':>8} {'level':>5} {'drawn':>9} "
        f"{'LOD mov ms':>10} {'full mov ms':>11} {'LOD still':>9} {'full still':>10} "
        f"{'ratio':>6} {'lasso ms':>8} {'blocked':>7} {'pick ms':>7} {'bytes/payload':>13} "
        f"{'worker':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in result["sizes"]:
        if "error" in r and "lod" not in r:
            print(f"{r['n']:>11,} {r['error'][:100]}")
            continue
        lod, src = r["lod"], r.get("full") or {}
        sel, mem = r["selection"], r["memory"]
        capped = r.get("stillBudget") not in (None, float("inf"), "Infinity")
        still_note = "*" if capped else ""
        print(
            f"{r['n']:>11,} {_ms(r['loadMs']):>8} {_ms(r['indexMs']):>8} {lod['level']:>5} "
            f"{lod['drawn']:>9,} {_ms(lod['moving']):>10} {_ms(src.get('moving')):>11} "
            f"{_ms(lod['still']) + still_note:>9} {_ms(src.get('still')):>10} "
            f"{_ratio(r.get('ratio')):>6} {sel['lasso']['ms']:>8,} "
            f"{sel['lasso']['pageBlockedMs']:>7,} {sel['category']['ms']:>7,} "
            f"{mem['typedArrayBytes'] / 2**20:>6.0f}/{mem['payloadBytes'] / 2**20:.0f} MB "
            f"{mem.get('lodWorkerBytes', 0) / 2**20:>4.0f} MB"
        )
    print(
        "- not drawn (above --full-max: a full frame would take minutes and cannot be "
        "stopped); * still frames drawn at the still budget (lodstill), not in full; "
        "worker = the LOD worker's copy for the lasso (not in bytes/payload)"
    )
    for r in result["sizes"]:
        lasso = r.get("selection", {}).get("lasso")
        if lasso:
            print(f"{r['n']:>11,} lasso: {_lasso_detail(lasso)}")
    print()
    for check in result["checks"]:
        print(f"{check['verdict']:<4}  {check['check']:<62} {check['value']}")


def checks(result: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in result["sizes"]:
        n = r["n"]
        if "lod" not in r:
            out.append(
                {"check": f"{n:,}: benchmark ran", "value": r.get("error"), "verdict": "FAIL"}
            )
            continue
        lod, sel, mem = r["lod"], r["selection"], r["memory"]
        out.append(
            {
                "check": f"{n:,}: moving frames draw at most the budget",
                "value": f"{lod['drawn']:,} drawn at level {lod['level']}",
                "verdict": "PASS"
                if (lod["drawn"] <= args.budget and (n <= args.budget or lod["level"] > 0))
                else "FAIL",
            }
        )
        out.append(
            {
                "check": f"{n:,}: lasso ran on the LOD worker's tree index",
                "value": f"route {sel['lasso'].get('route')}",
                "verdict": "PASS" if sel["lasso"].get("route") == "index" else "FAIL",
            }
        )
        out.append(
            {
                "check": f"{n:,}: lasso and category pick ran in workers",
                "value": f"{sel['lasso']['cells']:,} / {sel['category']['cells']:,} cells",
                "verdict": "PASS"
                if sel["inWorker"] and sel["lasso"]["cells"] > 0 and sel["category"]["cells"] > 0
                else "FAIL",
            }
        )
        if n >= 10_000_000:
            ms = sel["lasso"]["ms"]
            out.append(
                {
                    "check": f"{n:,}: lasso below {LASSO_TARGET_MS:.0f} ms",
                    "value": f"{ms} ms (page blocked {sel['lasso']['pageBlockedMs']} ms)",
                    "verdict": "PASS" if ms < LASSO_TARGET_MS else "FAIL",
                    "target": True,
                }
            )
        out.append(
            {
                "check": f"{n:,}: page memory near the payload (typed arrays <= 3x)",
                "value": f"x{mem['ratio']}",
                "verdict": "PASS" if mem["ratio"] <= 3 else "FAIL",
            }
        )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_SIZES[0]:,} points")
    ap.add_argument("--cells", type=int, nargs="+", help="sizes (default 1M 10M 20M)")
    ap.add_argument("--dim", type=int, choices=(2, 3), default=2)
    ap.add_argument("--budget", type=int, default=None, help="points drawn while moving")
    ap.add_argument("--still-budget", type=int, default=1_000_000, help="above --full-max")
    ap.add_argument("--full-max", type=int, default=1_000_000, help="largest full-detail size")
    ap.add_argument("--frames", type=int, default=4, help="moving frames per mode")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per page")
    args = ap.parse_args(argv)
    if args.cells is None:
        args.cells = list(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.budget is None:
        args.budget = 5_000 if args.quick else 100_000
    if args.quick:
        args.frames = min(args.frames, 2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {"dim": args.dim, "budget": args.budget, "sizes": []}
    result["load_average"] = round(os.getloadavg()[0], 2)
    with bench_browser(("--enable-precise-memory-info",)) as (browser, base):
        for n in args.cells:
            log(f"{n:,} points ({'with' if n <= args.full_max else 'without'} full frames)")
            result["sizes"].append(run_page(browser, base, n, args))
    result["checks"] = checks(result, args)
    table(result)
    if args.quick:
        print(QUICK_NOTE)
    dest = write_results("lod", json.loads(json.dumps(result, default=str)))
    log(f"results: {dest}")
    return exit_status(result["checks"], args.quick)


if __name__ == "__main__":
    sys.exit(main())
