// The dot plot of a comparison: its data (top genes by score), the layout (dot area ∝ fraction
// expressing, one colour scale) and the SVG written from it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ResultTable } from "../viewer/src/analysis/result.js";
import { dotplotLayout, dotplotModel, dotplotSvg, drawDotplot } from "../viewer/src/ui/dotplot.js";

function comparison(complete) {
  const result = new ResultTable(3);
  const rows = {
    genes: [0, 1, 2],
    names: ["Low", "Top", "Mid"],
    scores: [1, 9, 5],
    pct_nz_group: [0.25, 1, 0],
    pct_nz_reference: [0.5, 0.01, 0.3],
    mean_group: [0.2, 2, NaN],
    mean_reference: [0.4, 0.05, 1],
  };
  if (complete) result.setResult({ ...rows, genes: [1, 2, 0], names: ["Top", "Mid", "Low"], scores: [9, 5, 1], pct_nz_group: [1, 0, 0.25], pct_nz_reference: [0.01, 0.3, 0.5], mean_group: [2, NaN, 0.2], mean_reference: [0.05, 1, 0.4] });
  else result.addRows(rows);
  return { result, group: { label: "Selection (300 cells)" }, reference: "rest" };
}

test("the model takes the top genes by score with their % and means", () => {
  for (const complete of [false, true]) {
    const m = dotplotModel(comparison(complete), 2);
    assert.deepEqual(m.genes, ["Top", "Mid"]);
    assert.deepEqual(m.labels, ["Selection (300 cells)", "rest"]);
    assert.deepEqual(m.pct, [[1, 0.01], [0, 0.3]]);
    assert.equal(m.maxMean, 2);
  }
  assert.equal(dotplotModel(null), null);
  assert.equal(dotplotModel({ result: new ResultTable(0) }), null);
});

test("the layout: one row per gene, dot area proportional to % expressing, no dot at 0 %", () => {
  const layout = dotplotLayout(dotplotModel(comparison(true)));
  const texts = layout.shapes.filter((s) => s.kind === "text").map((s) => s.text);
  for (const g of ["Top", "Mid", "Low", "A", "B", "A: Selection (300 cells)", "B: rest"]) assert.ok(texts.includes(g), g);
  const rowOf = (gene) => layout.shapes.find((s) => s.kind === "text" && s.text === gene).y - 4;
  const dots = (gene) => layout.shapes.filter((s) => s.kind === "circle" && s.cy === rowOf(gene));
  const [topA, topB] = dots("Top");
  assert.ok(topA.cx < topB.cx);
  assert.ok(Math.abs(topA.r ** 2 / topB.r ** 2 - 100) < 1e-9, "area ratio = % ratio");
  assert.equal(dots("Mid").length, 1, "0 % draws no dot");
  assert.match(topA.fill, /^rgb\(\d+,\d+,\d+\)$/);
  assert.notEqual(topA.fill, topB.fill, "colour follows the mean");
  assert.ok(Math.abs(dots("Low")[0].r ** 2 * 2 - dots("Low")[1].r ** 2) < 1e-9);
  assert.ok(layout.width > 200 && layout.height > 3 * 20);
  const dark = dotplotLayout(dotplotModel(comparison(true)), { dark: true });
  assert.notEqual(dark.shapes[0].fill, layout.shapes[0].fill, "text colour follows the theme");
});

test("SVG and canvas draw every shape", () => {
  const layout = dotplotLayout(dotplotModel(comparison(true)));
  const svg = dotplotSvg(layout, 10, 20);
  assert.match(svg, /^<g class="dotplot" transform="translate\(10,20\)"/);
  assert.equal((svg.match(/<circle /g) || []).length, layout.shapes.filter((s) => s.kind === "circle").length);
  assert.equal((svg.match(/<text /g) || []).length, layout.shapes.filter((s) => s.kind === "text").length);
  assert.ok(!/[<>&](?![a-z/]|amp;|lt;|gt;|quot;)/.test(svg.replace(/<[^>]*>/g, "")), "text is escaped");
  const calls = [];
  const ctx = new Proxy({}, { get: (_, k) => (k in ctx_state ? ctx_state[k] : (...a) => calls.push([k, ...a])), set: (_, k, v) => ((ctx_state[k] = v), true) });
  const ctx_state = {};
  drawDotplot(ctx, layout, 5, 5);
  assert.equal(calls.filter((c) => c[0] === "arc").length, layout.shapes.filter((s) => s.kind === "circle").length);
  assert.equal(calls.filter((c) => c[0] === "fillText").length, layout.shapes.filter((s) => s.kind === "text").length);
  assert.deepEqual(calls[1], ["translate", 5, 5]);
});
