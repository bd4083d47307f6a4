// Bench mode (?bench=N&lodbench=1): frame times with the level of detail against without, the
// LOD level, the memory the page holds against the payload, and the lasso and category pick
// in the select worker. Every frame is drawn on demand (deck.redraw, then a one-pixel read-back
// so the GL has finished) with the camera either moving (a small orbit / pan step before each
// frame) or still. Full-detail frames of very large datasets can take minutes with software
// WebGL and cannot be interrupted once started: `fullFrames: false` skips them (null times).

const median = (xs) => {
  if (!xs.length) return null;
  const s = Float64Array.from(xs).sort();
  return Math.round(s[s.length >> 1] * 10) / 10;
};

/** Draw now and wait for the GL: ms. */
function drawFrame(scene) {
  const t0 = performance.now();
  scene.deck.redraw("bench");
  const gl = scene.deck.device && scene.deck.device.gl;
  if (gl) gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
  return performance.now() - t0;
}

/** One camera step (orbit in 3D, pan in 2D), as a user's drag would make it. */
function step(scene, t) {
  const vs = { ...scene.viewState };
  if (scene.dim === 3) vs.rotationOrbit = (vs.rotationOrbit || 0) + 2;
  else vs.target = [Math.sin(t) * 0.05, Math.cos(t) * 0.03, 0];
  scene.setViewState(vs);
}

/** Frame times moving (after a camera step each) and still, with the view's current LOD setting. */
function frames(scene, { moving, still }) {
  const lod = scene.lod;
  const out = { moving: null, still: null, firstMoving: null, level: 0, drawn: 0 };
  if (moving > 0) {
    const times = [];
    for (let i = 0; i < moving; i++) {
      const t0 = performance.now();
      step(scene, i); // the step's own work counts: a new subset is gathered when motion starts
      drawFrame(scene);
      times.push(performance.now() - t0);
    }
    out.firstMoving = Math.round(times[0] * 10) / 10;
    out.moving = median(times.slice(moving > 2 ? 1 : 0));
    if (lod) Object.assign(out, { level: lod.status().level, drawn: lod.status().drawn });
  }
  if (lod) lod.settle();
  if (still > 0) {
    scene.update();
    const times = [];
    for (let i = 0; i < still; i++) times.push(drawFrame(scene));
    out.still = median(times);
    if (lod) Object.assign(out, { stillLevel: lod.status().level, stillDrawn: lod.status().drawn });
  }
  return out;
}

/** Typed-array bytes of the page's per-cell state, against the payload (positions + fields). */
export function memoryReport(viewer) {
  const scene = viewer.scene;
  const seen = new Set();
  let held = 0;
  const add = (a) => {
    if (a && a.buffer && !seen.has(a.buffer)) {
      seen.add(a.buffer);
      held += a.buffer.byteLength;
    }
  };
  let payload = 0;
  for (const pts of viewer.dataset.points.values()) {
    payload += pts.byteLength;
    add(pts);
  }
  const fields = viewer.dataset.loadedFields ? viewer.dataset.loadedFields() : viewer.field ? [viewer.field] : [];
  for (const f of fields) {
    const a = f.codes || f.values;
    payload += a.byteLength;
    add(a);
  }
  for (const a of [scene.positions, scene.colors, scene.radii, scene.mask, viewer.visibility.base, viewer.visibility.mask, viewer.visibility.radiiBuffer]) add(a);
  const lodBytes = scene.lod ? scene.lod.bytes() : 0;
  held += lodBytes;
  const heap = performance.memory ? performance.memory.usedJSHeapSize : null;
  return { payloadBytes: payload, typedArrayBytes: held, lodBytes, ratio: Math.round((held / payload) * 100) / 100, jsHeapBytes: heap };
}

/** Wait for the view's LOD index (built in the LOD worker). */
async function indexReady(scene, timeoutMs) {
  const t0 = performance.now();
  while (scene.lod && scene.lod.state !== "ready") {
    if (scene.lod.state === "error") throw new Error(`LOD index failed: ${scene.lod.error}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`no LOD index within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return performance.now() - t0;
}

/**
 * Lasso and category pick through the viewer (the select worker above its threshold): ms until
 * the selection is made, and the longest the page went without running a task meanwhile.
 */
export async function measureSelection(viewer) {
  const scene = viewer.scene;
  const vp = scene.viewport();
  const w = vp.width;
  const hgt = vp.height;
  const poly = [
    [w * 0.3, hgt * 0.3],
    [w * 0.7, hgt * 0.25],
    [w * 0.65, hgt * 0.7],
    [w * 0.35, hgt * 0.75],
  ];
  const blocked = async (fn) => {
    let last = performance.now();
    let worst = 0;
    const probe = setInterval(() => {
      const t = performance.now();
      worst = Math.max(worst, t - last);
      last = t;
    }, 5);
    const t0 = performance.now();
    await fn();
    const ms = performance.now() - t0;
    clearInterval(probe);
    worst = Math.max(worst, performance.now() - last);
    return { ms: Math.round(ms), pageBlockedMs: Math.round(worst), cells: viewer.selection.length };
  };
  const saved = viewer.selectWorkerMin;
  viewer.selectWorkerMin = 0; // the worker path at every size
  let lasso, category;
  try {
    lasso = await blocked(() => viewer.lasso(poly, "replace"));
    category = await blocked(() => viewer.pickCategory(0, "replace"));
  } finally {
    viewer.selectWorkerMin = saved;
  }
  viewer.setSelection(new Uint32Array(0), "bench");
  const inWorker = !!(viewer.selectJobs && viewer.selectJobs.worker);
  return { lasso, category, inWorker };
}

/**
 * The LOD benchmark of this page: {n, dim, indexMs, lod: frames, full: frames | null, ratio
 * (moving frame without LOD / with), memory, selection}.
 */
export async function benchLod(viewer, { moving = 4, still = 2, fullFrames = true, timeoutMs = 600_000 } = {}) {
  const scene = viewer.scene;
  const indexWaitMs = await indexReady(scene, timeoutMs);
  const lod = scene.lod;
  const saved = { enabled: lod.enabled };
  const out = { n: viewer.nCells, dim: viewer.dim, indexMs: lod && scene.lodIndex.buildMs !== null ? Math.round(scene.lodIndex.buildMs) : null, indexWaitMs: Math.round(indexWaitMs), movingBudget: lod.movingBudget, stillBudget: lod.stillBudget };
  out.lod = frames(scene, { moving, still });
  if (fullFrames) {
    lod.setBudgets({ enabled: false });
    out.full = frames(scene, { moving: Math.min(moving, 2), still: Math.min(still, 1) });
    lod.setBudgets(saved);
    scene.update();
    out.ratio = out.lod.moving ? Math.round((out.full.moving / out.lod.moving) * 10) / 10 : null;
  } else {
    out.full = null;
    out.ratio = null;
  }
  out.memory = memoryReport(viewer);
  out.selection = await measureSelection(viewer);
  return out;
}
