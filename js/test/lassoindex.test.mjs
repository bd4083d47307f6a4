import assert from "node:assert/strict";
import { test } from "node:test";
import { buildLodOrder, mortonKeys, sortByKey } from "../viewer/src/render/lodorder.js";
import { LodJobs } from "../viewer/src/render/lodjobs.js";
import { LodIndex } from "../viewer/src/render/lod.js";
import { lassoIndexed, lassoTree, maskBitset, treeIndex } from "../viewer/src/select/lassoindex.js";
import { bitsetCells } from "../viewer/src/select/cellset.js";
import { lassoCells } from "../viewer/src/select/regionjob.js";
import { rng } from "./helpers.mjs";

const W = 900;
const H = 640;

function indexOf(pos, size) {
  const morton = mortonKeys(pos, size);
  return treeIndex(pos, size, morton, sortByKey(morton.keys, morton.bits));
}

/** Column-major a · b (4×4). */
function mul(a, b) {
  const out = new Float64Array(16);
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 4; k++) out[j * 4 + i] += a[k * 4 + i] * b[j * 4 + k];
  return out;
}

/** A perspective camera at `eye` looking at the origin around y (near, far planes). */
function perspective(angle, distance, near, far) {
  const f = 1 / Math.tan((40 * Math.PI) / 360);
  const asp = W / H;
  const proj = [f / asp, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) / (near - far), -1, 0, 0, (2 * far * near) / (near - far), 0];
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const view = [c, 0, -s, 0, 0, 1, 0, 0, s, 0, c, 0, 0, 0, -distance, 1];
  return mul(proj, view);
}

/** Orthographic, as deck's OrthographicView: data units to pixels at `zoom`, centred on (tx, ty). */
function orthographic(zoom, tx, ty) {
  const sx = (2 * zoom) / W;
  const sy = (2 * zoom) / H;
  return Float64Array.of(sx, 0, 0, 0, 0, sy, 0, 0, 0, 0, -0.001, 0, -tx * sx, -ty * sy, 0, 1);
}

/** Clustered cells (dense nodes the walk accepts whole), some with NaN / ±Infinity coordinates. */
function cloud(r, n, size, { spread = 0.35, sigma = 0.06, bad = 0 } = {}) {
  const centres = Array.from({ length: 12 }, () => Array.from({ length: size }, () => (r() * 2 - 1) * spread));
  const pos = new Float32Array(n * size);
  for (let i = 0; i < n; i++) {
    const c = centres[Math.floor(r() * centres.length)];
    for (let a = 0; a < size; a++) pos[i * size + a] = c[a] + (r() + r() + r() - 1.5) * sigma * 2;
  }
  for (let j = 0; j < bad; j++) pos[Math.floor(r() * n * size)] = [NaN, Infinity, -Infinity][j % 3];
  return pos;
}

/** Screen polygons: convex, concave, self-intersecting, many-vertex, tiny, covering, off-screen. */
function polygons(r) {
  const star = [];
  for (let k = 0; k < 14; k++) {
    const rad = k % 2 ? 90 : 260;
    star.push(450 + rad * Math.cos((k * Math.PI) / 7), 320 + rad * Math.sin((k * Math.PI) / 7));
  }
  const walk = [];
  for (let k = 0; k < 400; k++) {
    const t = (k / 400) * 2 * Math.PI;
    const rad = 200 + 60 * Math.sin(5 * t) + 20 * (r() - 0.5);
    walk.push(450 + rad * Math.cos(t), 320 + 0.8 * rad * Math.sin(t));
  }
  return {
    quad: [270, 192, 630, 160, 585, 448, 315, 480],
    star,
    bowtie: [200, 150, 700, 500, 700, 150, 200, 500],
    pentagram: [450, 60, 600, 560, 180, 240, 720, 240, 300, 560],
    freehand: walk,
    tiny: [450.2, 320.1, 451.1, 320.4, 450.6, 321.3],
    covering: [-5000, -4000, 9000, -4000, 9000, 8000, -5000, 8000],
    offscreen: [600, -300, 1400, 200, 800, 900, 500, 400],
    line: [100, 100, 800, 500],
  };
}

/** `positions` holds the coordinates of `cells` (in any order), each exactly once. */
function samePositions(positions, cells, pos, size, what) {
  assert.equal(positions.length, cells.length * size, `${what}: ${positions.length / size} positions for ${cells.length} cells`);
  const count = new Map();
  const key = (a, o) => Array.from(a.subarray(o, o + size)).join(",");
  for (const c of cells) count.set(key(pos, c * size), (count.get(key(pos, c * size)) || 0) + 1);
  for (let j = 0; j < cells.length; j++) {
    const k = key(positions, j * size);
    const left = count.get(k);
    if (!left) assert.fail(`${what}: position ${k} is not one of the cells'`);
    count.set(k, left - 1);
  }
}

function sameCells(got, expected, what) {
  assert.ok(got instanceof Uint32Array, `${what}: a Uint32Array`);
  assert.equal(got.length, expected.length, `${what}: ${got.length} cells, brute force ${expected.length}`);
  for (let i = 0; i < got.length; i++) if (got[i] !== expected[i]) assert.fail(`${what}: cell ${i} is ${got[i]}, brute force ${expected[i]}`);
}

const CAMERAS = {
  2: {
    ortho: orthographic(700, 0.05, -0.03),
    zoomed: orthographic(4000, 0.2, 0.1), // most cells off-screen
    perspective: perspective(0.3, 1.2, 0.2, 5),
  },
  3: {
    ortho: orthographic(700, 0.0, 0.0),
    perspective: perspective(0.5, 2.2, 0.1, 100),
    inside: perspective(1.1, 0.3, 0.05, 0.6), // camera inside the cloud: cells behind it, before near, beyond far
  },
};

for (const size of [2, 3]) {
  test(`lassoIndexed (${size}D) selects exactly what brute force selects: cameras, polygons, masks, NaN/Infinity`, () => {
    const r = rng(size * 101);
    const n = 120_000;
    const pos = cloud(r, n, size, { bad: 300 });
    const index = indexOf(pos, size);
    assert.equal(index.allFinite, false);
    const mask = Uint8Array.from({ length: n }, () => (r() < 0.8 ? 1 : 0));
    let accepted = 0;
    let skipped = 0;
    for (const [cam, m] of Object.entries(CAMERAS[size])) {
      for (const [name, poly] of Object.entries(polygons(r))) {
        for (const msk of [null, mask]) {
          const what = `${size}D ${cam} ${name} ${msk ? "masked" : "all"}`;
          const stats = {};
          const got = lassoIndexed(index, m, W, H, poly, msk, stats);
          sameCells(got, lassoCells(pos, size, m, W, H, poly, msk), what);
          accepted += stats.accepted;
          skipped += n - stats.accepted - stats.tested;
          if (cam === "ortho" || name === "star") {
            const both = lassoTree(index, { matrix: m, width: W, height: H, polygon: poly, maskBits: msk && maskBitset(msk), positions: true });
            sameCells(both.cells, got, `${what} (with positions)`);
            let ones = 0;
            for (const word of both.bits) for (let b = 0; b < 32; b++) ones += (word >>> b) & 1;
            assert.equal(ones, got.length, `${what}: the bitset holds the cells and nothing else`);
            sameCells(bitsetCells(new Uint8Array(both.bits.buffer), got.length), got, `${what} (bitset)`);
            samePositions(both.positions, got, pos, size, what);
          }
        }
      }
    }
    assert.ok(accepted > n, `whole nodes were accepted without a test (${accepted})`);
    assert.ok(skipped > n, `whole nodes were skipped (${skipped})`);
  });
}

test("lassoIndexed: cells exactly on edges and vertices follow the half-open rule of brute force", () => {
  // data units map to whole pixels exactly (powers of two): cells on a grid land on polygon edges
  const w = 256;
  const m = Float64Array.of(1 / 128, 0, 0, 0, 0, -1 / 128, 0, 0, 0, 0, 1, 0, -1, 1, 0, 1);
  const r = rng(9);
  const n = 60_000;
  const pos = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    pos[2 * i] = Math.floor(r() * 257);
    pos[2 * i + 1] = Math.floor(r() * 257);
  }
  const index = indexOf(pos, 2);
  const shapes = [
    [64, 64, 192, 64, 192, 192, 64, 192], // axis-aligned square: left/top edges in, right/bottom out
    [32, 32, 224, 32, 128, 224], // triangle with integer vertices
    [0, 0, 256, 0, 256, 256, 0, 256], // the whole view
    [100, 20, 140, 20, 140, 200, 180, 200, 180, 240, 60, 240, 60, 200, 100, 200], // concave "T" upside down
    [40, 40, 216, 216, 216, 40, 40, 216], // bowtie through grid points
  ];
  for (const poly of shapes) {
    const stats = {};
    sameCells(lassoIndexed(index, m, w, w, poly, null, stats), lassoCells(pos, 2, m, w, w, poly, null), `edges ${poly.slice(0, 4)}`);
  }
  // the square's four edges: which of the cells on them are inside
  const sq = lassoIndexed(index, m, w, w, shapes[0]);
  const inSq = new Set(sq);
  for (let i = 0; i < n; i++) {
    const [x, y] = [pos[2 * i], pos[2 * i + 1]];
    if (x === 64 && y > 64 && y < 192) assert.ok(inSq.has(i), "left edge inside");
    if (x === 192 && y > 64 && y < 192) assert.ok(!inSq.has(i), "right edge outside");
  }
});

test("lassoIndexed: small and degenerate inputs", () => {
  const m = orthographic(700, 0, 0);
  const poly = polygons(rng(1)).quad;
  for (const n of [0, 1, 5, 33]) {
    const pos = cloud(rng(n + 1), n, 2);
    sameCells(lassoIndexed(indexOf(pos, 2), m, W, H, poly), lassoCells(pos, 2, m, W, H, poly), `n = ${n}`);
  }
  // one axis without range, and every coordinate non-finite on another
  const flat = cloud(rng(4), 5000, 3);
  for (let i = 0; i < 5000; i++) flat[3 * i + 2] = 0.25;
  sameCells(lassoIndexed(indexOf(flat, 3), m, W, H, poly), lassoCells(flat, 3, m, W, H, poly), "flat z");
  const nan = cloud(rng(5), 5000, 2);
  for (let i = 0; i < 5000; i++) nan[2 * i + 1] = NaN;
  assert.equal(lassoIndexed(indexOf(nan, 2), m, W, H, poly).length, 0);
  const pos = cloud(rng(6), 1000, 2);
  assert.throws(() => lassoIndexed(indexOf(pos, 2), m, W, H, poly, new Uint8Array(10)), /mask has 10 entries for 1000 cells/);
  assert.throws(() => lassoIndexed(indexOf(pos, 2), m, W, H, [0, 0, NaN, 1, 2, 2]), /polygon vertex 1 is not finite/);
});

test("lassoIndexed tests only the cells near the boundary (a fraction of them all)", () => {
  const r = rng(77);
  const n = 400_000;
  const pos = cloud(r, n, 2, { spread: 0.45, sigma: 0.12 });
  const index = indexOf(pos, 2);
  // a "C": its notch (inside the bounding box, outside the polygon) holds many cells
  const shapes = { quad: polygons(r).quad, c: [150, 80, 750, 80, 750, 220, 330, 220, 330, 420, 750, 420, 750, 560, 150, 560] };
  for (const [name, poly] of Object.entries(shapes)) {
    const stats = {};
    const got = lassoIndexed(index, CAMERAS[2].ortho, W, H, poly, null, stats);
    sameCells(got, lassoCells(pos, 2, CAMERAS[2].ortho, W, H, poly), name);
    assert.ok(got.length > n / 10, `${name}: a real selection (${got.length})`);
    assert.ok(stats.tested < n / 8, `${name}: ${stats.tested} of ${n} cells tested one by one`);
    assert.ok(stats.accepted > got.length / 2, `${name}: ${stats.accepted} accepted in whole nodes`);
  }
});

test("lassoIndexed: a node reaching behind the camera is never judged by its corners' projections", () => {
  // a slab from far in front of the eye to just behind it: the front corners project near the
  // centre, the ones behind to the mirrored side, and the rectangle of the corners misses the
  // polygon, where many cells in front of the eye project
  const f = 1 / Math.tan((40 * Math.PI) / 360);
  const near = 0.001;
  const far = 100;
  const m = Float64Array.of(f / (W / H), 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) / (near - far), -1, 0, 0, (2 * far * near) / (near - far), 0);
  const r = rng(31);
  const n = 20_000;
  const pos = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    pos[3 * i] = 1 + 0.2 * r();
    pos[3 * i + 1] = 0.2 * r() - 0.1;
    pos[3 * i + 2] = -10 + 10.01 * r();
  }
  const ndc = (x, y) => [(x + 1) * (W / 2), (1 - y) * (H / 2)];
  const poly = [...ndc(0.4, 0.5), ...ndc(0.9, 0.5), ...ndc(0.9, -0.5), ...ndc(0.4, -0.5)];
  const expected = lassoCells(pos, 3, m, W, H, poly);
  assert.ok(expected.length > 1000, `cells in front project into the polygon (${expected.length})`);
  sameCells(lassoIndexed(indexOf(pos, 3), m, W, H, poly), expected, "straddling the camera plane");
});

test("LodJobs: the order of buildLodOrder, lasso on the kept index, the mask sent once, eviction", () => {
  const r = rng(12);
  const n = 30_000;
  const pos2 = cloud(r, n, 2);
  const pos3 = cloud(r, n, 3);
  const jobs = new LodJobs();
  const built = jobs.handle({ type: "order", key: 1, positions: pos2.slice(), size: 2, keep: true, order: true });
  assert.deepEqual(built.answer.order, buildLodOrder(pos2, 2));
  assert.equal(built.transfer[0], built.answer.order.buffer);
  assert.deepEqual(built.answer.held, [1]);
  assert.equal(built.answer.heldBytes, n * 12 + 4 * (2 ** 16 + 1));
  const legacy = jobs.handle({ positions: pos3.slice(), size: 3 }); // no type, no key: an order, nothing kept
  assert.deepEqual(legacy.answer.order, buildLodOrder(pos3, 3));
  assert.equal(legacy.answer.kept, false);
  jobs.handle({ type: "order", key: 2, positions: pos3.slice(), size: 3, keep: true, order: false });

  const m = CAMERAS[2].ortho;
  const poly = polygons(r).star;
  const mask = Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0));
  const lasso = (extra) => jobs.handle({ type: "lasso", key: 1, matrix: m, width: W, height: H, polygon: poly, ...extra }).answer;
  const first = lasso({ mask, maskToken: "a" });
  sameCells(first.cells, lassoCells(pos2, 2, m, W, H, poly, mask), "with the mask");
  assert.equal(first.heldBytes, n * 12 + 4 * (2 ** 16 + 1) + n * 16 + 4 * (2 ** 18 + 1) + 4 * Math.ceil(n / 32), "the mask is kept, as a bitset");
  sameCells(lasso({ maskToken: "a" }).cells, first.cells, "the kept mask");
  assert.deepEqual(lasso({ maskToken: "b" }), { needMask: true, held: [1, 2], heldBytes: first.heldBytes });
  sameCells(lasso({ mask: null, maskToken: null }).cells, lassoCells(pos2, 2, m, W, H, poly, null), "no mask");
  const m3 = CAMERAS[3].perspective;
  sameCells(jobs.handle({ type: "lasso", key: 2, matrix: m3, width: W, height: H, polygon: poly, mask: null }).answer.cells, lassoCells(pos3, 3, m3, W, H, poly), "3D");
  assert.throws(() => lasso({ mask: new Uint8Array(5), maskToken: "c" }), /mask has 5 entries for 30000 cells/);

  const kept = jobs.handle({ type: "keep", keys: [2] }).answer;
  assert.deepEqual(kept.held, [2]);
  assert.deepEqual(lasso({ mask: null }).missing, true);
  assert.deepEqual(jobs.handle({ type: "keep", keys: [] }).answer, { held: [], heldBytes: 0 });
  assert.throws(() => jobs.handle({ type: "nope" }), /unknown LOD job "nope"/);
  const page = new LodJobs({ keep: false });
  assert.equal(page.handle({ type: "order", key: 3, positions: pos2, size: 2, keep: true }).answer.kept, false, "the page keeps no copy");
});

/** A worker made of LodJobs: messages are structured-cloned as a real worker gets them. */
class FakeLodWorker {
  constructor(log) {
    this.jobs = new LodJobs();
    this.log = log;
  }

  postMessage(msg) {
    this.log.push({ type: msg.type, mask: msg.mask === undefined ? "kept" : msg.mask === null ? null : msg.mask.length, key: msg.key });
    const data = structuredClone(msg);
    setTimeout(() => {
      try {
        const { answer } = this.jobs.handle(data);
        this.onmessage({ data: { ...answer, id: data.id } });
      } catch (err) {
        this.onmessage({ data: { id: data.id, error: String(err.message) } });
      }
    }, 0);
  }

  terminate() {}
}

test("LodIndex: lasso in the worker on the kept index, mask sent when it changes, panels kept, re-indexed when shown again", async () => {
  const r = rng(21);
  const n = 40_000;
  const a = cloud(r, n, 2);
  const b = cloud(r, n, 3);
  const log = [];
  const index = new LodIndex({ createWorker: () => new FakeLodWorker(log) });
  const m = CAMERAS[2].ortho;
  const poly = polygons(r).quad;
  assert.equal(index.canLasso(a), false, "nothing built yet");
  assert.equal(await index.lasso({ positions: a, matrix: m, width: W, height: H, polygon: poly }), null);
  const orderA = index.order(a, 2);
  index.keep([a]);
  assert.equal(index.canLasso(a), false, "still building");
  assert.deepEqual(await orderA, buildLodOrder(a, 2));
  assert.ok(index.canLasso(a));
  assert.ok(index.heldBytes >= n * 12);

  const mask = Uint8Array.from({ length: n }, () => (r() < 0.7 ? 1 : 0));
  const run = async (positions, size, msk, token) => (await index.lasso({ positions, matrix: m, width: W, height: H, polygon: poly, mask: msk, maskToken: token })).cells;
  log.length = 0;
  sameCells(await run(a, 2, mask, "v1"), lassoCells(a, 2, m, W, H, poly, mask), "masked");
  sameCells(await run(a, 2, mask, "v1"), lassoCells(a, 2, m, W, H, poly, mask), "masked, mask kept");
  mask.fill(1, 0, 1000); // the viewer updates its mask in place and bumps its version
  sameCells(await run(a, 2, mask, "v2"), lassoCells(a, 2, m, W, H, poly, mask), "changed mask");
  sameCells(await run(a, 2, null, null), lassoCells(a, 2, m, W, H, poly, null), "no mask");
  assert.deepEqual(
    log.map((e) => e.mask),
    [n, "kept", n, null],
    "the mask goes to the worker only when it changed",
  );
  assert.ok(index.lastLasso.stats.tested < n / 2, "the worker used the index");

  // split view: a second embedding on screen; then only it; then the first again
  await index.order(b, 3);
  index.keep([a, b]);
  await new Promise((res) => setTimeout(res, 5));
  assert.ok(index.canLasso(a) && index.canLasso(b));
  const m3 = CAMERAS[3].perspective;
  const in3 = await index.lasso({ positions: b, matrix: m3, width: W, height: H, polygon: poly, withPositions: true });
  sameCells(in3.cells, lassoCells(b, 3, m3, W, H, poly), "the 3D panel");
  samePositions(in3.positions, in3.cells, b, 3, "the 3D panel's ring positions");
  index.keep([b]);
  await new Promise((res) => setTimeout(res, 5));
  assert.equal(index.canLasso(a), false, "dropped when no longer shown");
  assert.deepEqual([...index.held], [2]);
  log.length = 0;
  index.keep([a]);
  await new Promise((res) => setTimeout(res, 50));
  while (index.building) await new Promise((res) => setTimeout(res, 20));
  assert.ok(index.canLasso(a), "indexed again once shown again");
  assert.equal(index.canLasso(b), false);
  assert.deepEqual(
    log.map((e) => e.type),
    ["keep", "order"],
  );
  sameCells(await run(a, 2, null, null), lassoCells(a, 2, m, W, H, poly, null), "after re-indexing");

  // no worker: orders on the page, no index kept, lasso elsewhere
  const local = new LodIndex();
  assert.deepEqual(await local.order(a, 2), buildLodOrder(a, 2));
  local.keep([a]);
  assert.equal(local.canLasso(a), false);
});
