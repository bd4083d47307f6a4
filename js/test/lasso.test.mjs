import assert from "node:assert/strict";
import { test } from "node:test";
import { combineSelection, pointsInPolygon, projectToScreen, sortedUnique } from "../viewer/src/select/lasso.js";
import { rng } from "./helpers.mjs";

const IDENTITY = Float32Array.of(1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1);

// column-major perspective (gl-matrix perspective) times a look-at from (0, 0, 5) to the origin
function perspectiveView(fovy, aspect, near, far, eyeZ) {
  const f = 1 / Math.tan(fovy / 2);
  const nf = 1 / (near - far);
  const proj = [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0];
  const view = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, -eyeZ, 1];
  const out = new Float32Array(16);
  for (let c = 0; c < 4; c++) for (let r = 0; r < 4; r++) for (let k = 0; k < 4; k++) out[c * 4 + r] += proj[k * 4 + r] * view[c * 4 + k];
  return out;
}

test("projectToScreen: identity maps clip space to pixels, y down", () => {
  const xy = projectToScreen(Float32Array.of(-1, 1, 0, 1, -1, 0, 0, 0, 0), 3, IDENTITY, 200, 100);
  assert.deepEqual(Array.from(xy), [0, 0, 200, 100, 100, 50]);
});

test("projectToScreen: 1D and 2D points are padded with zeros", () => {
  assert.deepEqual(Array.from(projectToScreen(Float32Array.of(0.5, -0.5), 1, IDENTITY, 100, 100)), [75, 50, 25, 50]);
  assert.deepEqual(Array.from(projectToScreen(Float32Array.of(0.5, 0.5), 2, IDENTITY, 100, 100)), [75, 25]);
  const translate = Float32Array.of(1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0.5, 0, 0, 1); // column-major: translation in 12-14
  assert.deepEqual(Array.from(projectToScreen(Float32Array.of(0, 0), 2, translate, 100, 100)), [75, 50]);
  assert.throws(() => projectToScreen(Float32Array.of(1, 2, 3), 2, IDENTITY, 1, 1), /multiple of dim/);
  assert.throws(() => projectToScreen(Float32Array.of(1), 4, IDENTITY, 1, 1), /dim must be/);
});

test("projectToScreen: perspective; points behind the camera or outside near/far are NaN", () => {
  const m = perspectiveView(Math.PI / 2, 1, 0.1, 100, 5);
  const pts = Float32Array.of(0, 0, 0, 1, 0, 0, 0, 0, 6, 0, 0, 4.95, 0, 0, -200, 0, 0, 4.8);
  const xy = projectToScreen(pts, 3, m, 100, 100);
  assert.deepEqual([xy[0], xy[1]], [50, 50]);
  assert.ok(Math.abs(xy[2] - 60) < 1e-3, `x of (1,0,0): ${xy[2]}`); // 1 unit at distance 5 with 90° fov
  assert.ok(Number.isNaN(xy[4]) && Number.isNaN(xy[5]), "behind the camera");
  assert.ok(Number.isNaN(xy[6]), "closer than the near plane");
  assert.ok(Number.isNaN(xy[8]), "beyond the far plane");
  assert.ok(Number.isFinite(xy[10]), "just past the near plane");
  const out = new Float32Array(12);
  assert.equal(projectToScreen(pts, 3, m, 100, 100, out), out);
  assert.throws(() => projectToScreen(pts, 3, m, 100, 100, new Float32Array(4)), /needs 12/);
});

const square = Float32Array.of(0, 0, 10, 0, 10, 10, 0, 10);

test("pointsInPolygon: inside, outside, and points on the boundary (half-open rule)", () => {
  const pts = Float32Array.of(5, 5, 11, 5, -1, 5, 5, -1, 5, 11, 0, 5, 10, 5, 5, 0, 5, 10, 0, 0, 10, 10, 10, 0, 0, 10, NaN, 5, 5, NaN);
  const inside = Array.from(pointsInPolygon(pts, square));
  // centre, left edge (x = 0), top edge (y = 0) and the top-left corner are inside;
  // right edge, bottom edge and the other corners are outside; NaN never inside
  assert.deepEqual(inside, [0, 5, 7, 9]);
});

test("pointsInPolygon: shared edges belong to exactly one of two adjacent polygons", () => {
  const left = Float32Array.of(0, 0, 5, 0, 5, 10, 0, 10);
  const right = Float32Array.of(5, 0, 10, 0, 10, 10, 5, 10);
  const pts = new Float32Array(2 * 121);
  let k = 0;
  for (let x = 0; x <= 10; x++) for (let y = 0; y <= 10; y++) pts.set([x, y], 2 * k++);
  const a = new Set(pointsInPolygon(pts, left));
  const b = new Set(pointsInPolygon(pts, right));
  for (const i of a) assert.ok(!b.has(i), `point ${i} in both`);
  for (let i = 0; i < 121; i++) {
    const [x, y] = [pts[2 * i], pts[2 * i + 1]];
    if (x < 10 && y < 10) assert.ok(a.has(i) || b.has(i), `point (${x}, ${y}) in neither`);
  }
});

test("pointsInPolygon: concave and self-intersecting polygons (even-odd)", () => {
  const u = Float32Array.of(0, 0, 3, 0, 3, 3, 2, 3, 2, 1, 1, 1, 1, 3, 0, 3); // a U shape
  const pts = Float32Array.of(0.5, 2, 1.5, 2, 2.5, 2, 1.5, 0.5);
  assert.deepEqual(Array.from(pointsInPolygon(pts, u)), [0, 2, 3]);
  const bowtie = Float32Array.of(0, 0, 10, 10, 10, 0, 0, 10); // two triangles meeting at (5, 5)
  assert.deepEqual(Array.from(pointsInPolygon(Float32Array.of(2, 5, 8, 5, 5, 2, 5, 8), bowtie)), [0, 1]);
  // a pentagram: the central pentagon is covered twice, so even-odd leaves it out
  const star = new Float32Array(10);
  for (let i = 0; i < 5; i++) {
    const a = -Math.PI / 2 + (i * 4 * Math.PI) / 5;
    star.set([Math.cos(a) * 10, Math.sin(a) * 10], 2 * i);
  }
  assert.deepEqual(Array.from(pointsInPolygon(Float32Array.of(0, 0, 0, -8), star)), [1]);
});

test("pointsInPolygon: degenerate polygons, visibility mask, empty input", () => {
  const pts = Float32Array.of(5, 5, 6, 6);
  assert.equal(pointsInPolygon(pts, Float32Array.of(0, 0, 10, 10)).length, 0); // 2 vertices
  assert.equal(pointsInPolygon(pts, Float32Array.of(0, 0, 10, 10, 20, 20)).length, 0); // collinear
  assert.deepEqual(Array.from(pointsInPolygon(pts, square, { visible: Uint8Array.of(0, 1) })), [1]);
  assert.equal(pointsInPolygon(new Float32Array(0), square).length, 0);
  assert.equal(pointsInPolygon(Float32Array.of(5, 5), square).length, 1); // n = 1
  assert.throws(() => pointsInPolygon(pts, Float32Array.of(0, 0, NaN, 1, 2, 2)), /not finite/);
});

test("pointsInPolygon: many-vertex lasso agrees with a brute-force even-odd test", () => {
  const random = rng(7);
  const nv = 500;
  const poly = new Float32Array(2 * nv);
  for (let i = 0; i < nv; i++) {
    const a = (i / nv) * 2 * Math.PI;
    const r = 200 + 120 * Math.sin(7 * a) + 40 * random();
    poly.set([400 + r * Math.cos(a), 300 + r * Math.sin(a)], 2 * i);
  }
  const n = 20000;
  const pts = new Float32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) pts[i] = random() * 800;
  const brute = [];
  for (let p = 0; p < n; p++) {
    const [x, y] = [pts[2 * p], pts[2 * p + 1]];
    let inside = false;
    for (let i = 0, j = nv - 1; i < nv; j = i++) {
      const [xi, yi, xj, yj] = [poly[2 * i], poly[2 * i + 1], poly[2 * j], poly[2 * j + 1]];
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
    if (inside) brute.push(p);
  }
  assert.ok(brute.length > 1000);
  assert.deepEqual(Array.from(pointsInPolygon(pts, poly)), brute);
});

test("performance smoke: 1M points projected and lassoed well under 5 s", () => {
  const n = 1_000_000;
  const random = rng(11);
  const positions = new Float32Array(3 * n);
  for (let i = 0; i < positions.length; i++) positions[i] = random() * 2 - 1;
  const lasso = new Float32Array(2 * 200);
  for (let i = 0; i < 200; i++) {
    const a = (i / 200) * 2 * Math.PI;
    lasso.set([640 + 300 * Math.cos(a) * (1 + 0.3 * Math.sin(5 * a)), 360 + 250 * Math.sin(a)], 2 * i);
  }
  const start = performance.now();
  const xy = projectToScreen(positions, 3, perspectiveView(Math.PI / 3, 16 / 9, 0.1, 100, 4), 1280, 720);
  const inside = pointsInPolygon(xy, lasso);
  const elapsed = performance.now() - start;
  assert.ok(inside.length > 10000 && inside.length < n);
  assert.ok(elapsed < 5000, `${elapsed.toFixed(0)} ms`);
});

test("combineSelection: replace, add, subtract; sorted unique results", () => {
  const a = Uint32Array.of(1, 3, 5, 7);
  const b = Uint32Array.of(7, 2, 3, 3);
  assert.deepEqual(Array.from(combineSelection(a, b, "replace")), [2, 3, 7]);
  assert.deepEqual(Array.from(combineSelection(a, b, "add")), [1, 2, 3, 5, 7]);
  assert.deepEqual(Array.from(combineSelection(a, b, "subtract")), [1, 5]);
  const empty = new Uint32Array(0);
  assert.deepEqual(Array.from(combineSelection(empty, b, "add")), [2, 3, 7]);
  assert.deepEqual(Array.from(combineSelection(a, empty, "subtract")), [1, 3, 5, 7]);
  assert.deepEqual(Array.from(combineSelection(empty, empty, "replace")), []);
  assert.deepEqual(Array.from(combineSelection(Uint32Array.of(4, 4, 0), Uint32Array.of(4), "subtract")), [0]);
  assert.deepEqual(Array.from(combineSelection(Uint32Array.of(4294967295), Uint32Array.of(0), "add")), [0, 4294967295]);
  const result = combineSelection(a, b, "add");
  assert.notEqual(result, a);
  assert.throws(() => combineSelection(a, b, "xor"), /mode must be/);
});

test("combineSelection agrees with set operations on random input", () => {
  const random = rng(5);
  for (let round = 0; round < 50; round++) {
    const make = () => Uint32Array.from({ length: (random() * 200) | 0 }, () => (random() * 300) | 0);
    const [a, b] = [make(), make()];
    const [sa, sb] = [new Set(a), new Set(b)];
    const sorted = (s) => [...s].sort((x, y) => x - y);
    assert.deepEqual(Array.from(combineSelection(a, b, "add")), sorted(new Set([...sa, ...sb])));
    assert.deepEqual(Array.from(combineSelection(a, b, "subtract")), sorted([...sa].filter((x) => !sb.has(x))));
    assert.deepEqual(Array.from(sortedUnique(a)), sorted(sa));
  }
});
