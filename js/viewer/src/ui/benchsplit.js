// Bench mode (?bench=N&splitbench=R): the frame time of a camera move with two panels of the
// split view against one panel, with the camera still otherwise (?animate=0). The second panel
// is "new panel from the current view": the same embedding, so it draws from the same GPU
// position buffer (render/views.js) and adds only its colour buffer. Each move is timed from
// the call to the end of the first frame after it (benchfilters.js frameAfter); medians over R.

import { frameAfter, median } from "./benchfilters.js";

const raf = () => new Promise((resolve) => requestAnimationFrame(resolve));

async function still(viewer) {
  for (let i = 0; i < 1000; i++) {
    await raf();
    const deck = viewer.scene.deck;
    if (!deck || !deck.needsRedraw({ clearRedrawFlags: false })) return;
  }
}

/** Pan panel 0 a little (linked panels follow): a redraw of every panel. */
function nudge(viewer, k) {
  const scene = viewer.scene;
  const vs = { ...scene.viewState, target: [((k % 7) - 3) * 1e-3, 0, 0] };
  if (scene.split) scene.split.onViewState("panel-0", vs);
  else {
    scene.viewState = vs;
    scene.deck.setProps({ viewState: vs });
  }
}

async function timeMoves(viewer, rounds) {
  const times = [];
  for (let r = 0; r < rounds; r++) {
    await still(viewer);
    const done = frameAfter(viewer);
    const t0 = performance.now();
    nudge(viewer, r + 1);
    times.push((await done) - t0);
  }
  return median(times);
}

/** {oneMs, twoMs, ratio, gpuPositionBytes, sharedPositions}. */
export async function benchSplit(viewer, { rounds = 5 } = {}) {
  const oneMs = await timeMoves(viewer, rounds);
  await viewer.panels.add(); // a copy of the current view
  await still(viewer);
  const twoMs = await timeMoves(viewer, rounds);
  const scene = viewer.scene;
  const out = {
    n: viewer.nCells,
    rounds,
    oneMs,
    twoMs,
    ratio: Math.round((twoMs / oneMs) * 100) / 100,
    sharedPositions: scene.split.extra[0].positions === scene.positions,
    sharedBytes: scene.buffers.bytes(), // positions once + radii once
    positionBytes: scene.positions.byteLength,
  };
  await viewer.split(null);
  return out;
}
