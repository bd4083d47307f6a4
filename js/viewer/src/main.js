// Boots the viewer page: finds the server (its own page directory, SPEC §3.8), runs the
// startup sequence of SPEC §4.1, builds the UI and installs the bridge to Python.
// ?bench=N runs a synthetic N-cell benchmark without any server.
//
// The notebook widget's comm transport loads this page from a blob instead of the server:
// it then sets `window.__CELLUCID_BOOT__ = {query, base, transport: "comm", parentOrigin}`
// before this script runs, and every request goes to Python over the comm
// (data/commfetch.js).

import "./style.css";
import { describeHealth, healthUrl, pageBase, probeHealth } from "./health.js";
import { discover, openDataset } from "./app/dataset.js";
import { fetchBytes, fetchJson, LoadError, Progress } from "./data/http.js";
import { Viewer } from "./app/viewer.js";
import { buildPanel } from "./ui/panel.js";
import { Screen, setConnection, freezeOverlay } from "./ui/screens.js";
import { installLasso, SVGNS } from "./ui/lasso.js";
import { installProximity } from "./ui/proximity.js";
import { proximityFromScreen } from "./app/selecttools.js";
import { h, fmtInt } from "./ui/dom.js";
import { makeExporter } from "./render/export.js";
import { benchSelection, runBenchHud, syntheticDataset } from "./ui/bench.js";
import { benchLod } from "./ui/benchlod.js";
import { installBridge } from "./bridge/bridge.js";
import { CommandChannel, commandsUrl, wantsChannel } from "./bridge/channel.js";
import { installCommFetch } from "./data/commfetch.js";
import { Comparer } from "./analysis/compare.js";
import { createCompareWorker, createFiltersWorker, createLodWorker, createSelectWorker } from "./analysis/workerhost.js";
import { LodIndex, LodView, lodOptionsFromQuery } from "./render/lod.js";
import { SelectJobs } from "./select/client.js";
import { cacheStatusElement, watchCacheStatus } from "./ui/cachestatus.js";
import { FilterJobs } from "./filters/client.js";
import { buildComparePanel } from "./ui/compare.js";
import { installTooltip } from "./ui/tooltip.js";
import { installVisibleCount } from "./ui/filters.js";
import { ObsNameLoader } from "./data/obsnames.js";
import { findDefaultSession } from "./session/defaults.js";
import { openSessionBytes } from "./ui/session.js";
import { EmbeddingCatalog } from "./app/embeddings.js";
import { installPanelHeaders } from "./ui/panels.js";
import { benchSplit } from "./ui/benchsplit.js";

const POLL_MS = 3000;
/** Over the comm, the kernel answers only when no cell runs: wait for it (10 minutes). */
const COMM_HEALTH_TIMEOUT_MS = 600_000;
const bootConfig = window.__CELLUCID_BOOT__ || null;
const overComm = Boolean(bootConfig && bootConfig.transport === "comm");
const query = new URLSearchParams(bootConfig ? bootConfig.query : window.location.search);
/** The page URL the data server is resolved against (a placeholder over the comm). */
const pageHref = bootConfig ? bootConfig.base : window.location.href;
if (overComm) installCommFetch({ win: window, base: bootConfig.base, parentOrigin: bootConfig.parentOrigin });
const screen = new Screen(document.getElementById("screen"));
const connEls = [document.getElementById("conn")];
const app = document.getElementById("app");
const panelEl = document.getElementById("panel");
const stageEl = document.getElementById("stage");
const canvasHost = document.getElementById("canvas-host");
const lassoLayer = document.getElementById("lasso-layer");
const tooltip = document.getElementById("tooltip");

let lastConn = ["pending", ""];
function connection(state, text) {
  lastConn = [state, text];
  for (const el of connEls) setConnection(el, state, text);
}

function describe(health) {
  return describeHealth(health)
    .map(([k, v]) => `${k}: ${v}`)
    .join(" · ");
}

/** The UI around a started Viewer: panel, tooltip, lasso, keys, freeze overlay. */
function mountUi(viewer, { datasets, currentId }) {
  app.hidden = false;
  const exporter = makeExporter(viewer);
  viewer.tool = "navigate";
  const proximityLayer = document.createElementNS(SVGNS, "svg");
  proximityLayer.setAttribute("class", "lasso-layer proximity-layer");
  stageEl.append(proximityLayer);
  const setTool = (t) => {
    viewer.tool = t;
    lassoLayer.toggleAttribute("hidden", t !== "lasso"); // an SVG element has no .hidden property
    proximityLayer.toggleAttribute("hidden", t !== "proximity");
    viewer.scene.setInteractive(t === "navigate");
    stageEl.dataset.tool = t;
    viewer.emit("tool", t);
  };
  const compare = buildComparePanel(viewer, { host: app });
  const ui = buildPanel(viewer, {
    panel: panelEl,
    datasets,
    currentId,
    exporter,
    onTool: setTool,
    onCompare: () => compare.toggle(),
    stage: stageEl,
    onDataset: (id) => {
      const q = new URLSearchParams(query);
      q.set("dataset", id);
      // Over the comm the page is a blob: the widget rebuilds it with the new query.
      if (overComm) window.parent.postMessage({ type: "cellucid:navigate", query: `?${q}` }, bootConfig.parentOrigin);
      else window.location.search = q.toString();
    },
  });
  connEls.push(ui.conn);
  connection(...lastConn);
  const defaultMode = () => viewer.selectMode;
  installLasso(lassoLayer, (poly, mode) => Promise.resolve(viewer.lasso(poly, mode)).catch((err) => console.error("cellucid: lasso failed", err)), { defaultMode });
  installProximity(
    proximityLayer,
    (start, end, mode) => {
      const { center, radius, panel } = proximityFromScreen(viewer, start, end);
      viewer.selectWithin(center, radius, mode, panel);
    },
    { defaultMode },
  );
  setTool("navigate");

  installTooltip(viewer, { tooltip, stage: stageEl, canvasHost });
  installPanelHeaders(viewer, stageEl, { onError: (m) => ui.genes.setStatus(m) });
  installVisibleCount(viewer, panelEl);

  window.addEventListener("keydown", (e) => {
    if (viewer.frozen || e.target.closest("input, select, textarea")) return;
    if (e.key === "Escape") viewer.clearSelection();
    else if (e.key === "l" || e.key === "L") setTool(viewer.tool === "lasso" ? "navigate" : "lasso");
    else if (e.key === "n" || e.key === "N") setTool("navigate");
    else if (e.key === "r" || e.key === "R") viewer.resetCamera();
  });

  viewer.on("freeze", ({ reason, image }) => {
    // The last frame stays visible under the overlay; the WebGL context is gone.
    if (image) canvasHost.replaceChildren(h("img.frozen-frame", { src: image, alt: "" }));
    freezeOverlay(document.body, { reason });
  });
  viewer.on("error", (err) => {
    const box = panelEl.querySelector(".loading");
    if (box) {
      box.hidden = false;
      box.classList.add("bad");
      box.textContent = err.message.startsWith(err.file) ? err.message : `${err.file}: ${err.message}`;
    }
  });
  return ui;
}

function defaultField(viewer) {
  const ds = viewer.dataset;
  const cat = ds.fields.find((f) => f.kind === "category" && f.categories.length <= 200 && f.categories.length > 1);
  return (cat || ds.fields.find((f) => f.kind === "category") || ds.fields[0] || {}).key;
}

/** The bridge to Python (SPEC §4): commands in, events out; inert on a standalone page. */
function connectBridge(viewer) {
  try {
    return installBridge(viewer, {
      viewerId: query.get("viewerId"),
      viewerToken: query.get("viewerToken"),
      jupyter: query.get("jupyter") === "true",
      baseUrl: pageBase(pageHref),
      // Loaded from the server inside the widget: events also go by HTTP, so that Python
      // gets them while its kernel runs a cell (the comm waits for the cell to end).
      alsoHttp: query.get("jupyter") === "true" && !overComm,
    });
  } catch (err) {
    console.error("cellucid: bridge not installed", err);
    return null;
  }
}

/**
 * Python's commands for a page in a plain tab (not inside the notebook widget): a WebSocket
 * to the server, opened as soon as a server is found so that commands sent meanwhile wait in
 * the page; they run once the viewer is ready (startChannel).
 */
let channel = null;
function openChannel() {
  const viewerId = query.get("viewerId");
  const viewerToken = query.get("viewerToken");
  const framed = window.parent !== window;
  if (!wantsChannel({ viewerId, viewerToken, jupyter: query.get("jupyter") === "true", framed, overComm })) return;
  channel = new CommandChannel({ url: commandsUrl(pageBase(pageHref), viewerId, viewerToken), viewerId, viewerToken });
  window.__cellucidChannel = channel;
  channel.connect();
}

function startChannel(viewer) {
  if (channel === null) return;
  if (!viewer.bridge) return channel.close();
  viewer.on("freeze", () => channel.close());
  channel.start((command) => viewer.bridge.command(command));
}

/**
 * Compare groups for this page: on the server when there is one (credentials from the query, else
 * from POST _cellucid/viewers), else in a worker over the gene files (analysis/compare.js).
 */
function comparerFor(dataset, mode) {
  if (!dataset.vars || !dataset.genes.length) return null;
  const viewerId = query.get("viewerId");
  const viewerToken = query.get("viewerToken");
  return new Comparer({
    nCells: dataset.n,
    datasetId: dataset.id,
    mode,
    base: pageBase(pageHref),
    credentials: viewerId && viewerToken ? { viewerId, viewerToken } : null,
    genes: dataset.genes,
    schema: dataset.vars._varSchema,
    fetchGene: (index, signal) => dataset.fetchGeneBytes(index, signal),
    createWorker: createCompareWorker,
  });
}

/**
 * Cell names for the tooltip, from the server's GET _cellucid/obs_names (PROTOCOL.md), a block
 * at a time on first hover. A static host and a server of export folders have none (the row
 * number is shown), so they are not asked.
 */
function obsNamesFor(viewer, mode, health) {
  const base = pageBase(pageHref);
  const id = encodeURIComponent(viewer.dataset.id);
  return new ObsNameLoader({
    nCells: viewer.nCells,
    enabled: mode === "server" && !(health && health.type === "exported"),
    fetchBlock: (start, count) => fetchBytes(base, `_cellucid/obs_names?dataset=${id}&start=${start}&count=${count}`),
    onLoad: () => viewer.emit("obsnames", null),
  });
}

async function start(dataset, { datasets = [], currentId, bench = false, mode = "static", health = null } = {}) {
  const viewer = new Viewer({ dataset, stage: { canvasHost } });
  viewer.filterJobs = new FilterJobs({ createWorker: createFiltersWorker });
  viewer.createSelectWorker = createSelectWorker;
  viewer.selectJobs = new SelectJobs({ createWorker: createSelectWorker }); // lasso, category pick
  // level of detail (render/lod.js): a subset while the camera moves; ?lod=off, ?lodbudget=N
  viewer.scene.attachLod(new LodView(lodOptionsFromQuery(query)), new LodIndex({ createWorker: createLodWorker }));
  if (!bench) viewer.comparer = comparerFor(dataset, mode);
  if (!bench) viewer.obsNames = obsNamesFor(viewer, mode, health);
  // AnnData mode: every obsm embedding (an export folder answers 404: its own points only)
  if (mode === "server" && !(health && health.type === "exported")) {
    viewer.embeddings = await EmbeddingCatalog.load(pageBase(pageHref), dataset).catch((err) => (console.error("cellucid: no embedding list", err), null));
  }
  window.__cellucid = viewer;
  app.hidden = false;
  await viewer.start();
  mountUi(viewer, { datasets, currentId });
  if (!bench) viewer.bridge = connectBridge(viewer);
  screen.hide();
  viewer.emit("ready", { n_cells: viewer.nCells, dimensions: viewer.dimensions.slice() });
  const key = defaultField(viewer);
  if (key !== undefined) await viewer.setColorBy(key).catch((err) => console.error(err));
  if (!bench) await openDefaultSession(viewer, mode);
  return viewer;
}

/**
 * The session that opens with the dataset (session/defaults.js): ?session=<url>, else the
 * server's or the static host's default. A broken one is reported and the dataset stays open.
 */
async function openDefaultSession(viewer, mode) {
  let found;
  try {
    found = await findDefaultSession({ sessionParam: query.get("session"), pageHref, mode, pageBase: pageBase(pageHref), datasetId: viewer.dataset.id, datasetBase: viewer.dataset.base });
  } catch (err) {
    viewer.emit("sessionstatus", { state: "bad", text: `The session for this dataset could not be loaded (${err.message || err}); the dataset opened without it.`, details: [] });
    return;
  }
  if (found) await openSessionBytes(viewer, found.bytes, found.from);
}

async function pickDataset(datasets, defaultId) {
  const wanted = query.get("dataset");
  if (wanted && datasets.some((d) => d.id === wanted)) return datasets.find((d) => d.id === wanted);
  if (datasets.length === 1) return datasets[0];
  screen.show("pick", "Choose a dataset");
  return new Promise((resolve) => {
    const list = h(
      "ul.pick-list",
      {},
      ...datasets.map((d) =>
        h(
          "li",
          {},
          h("button.pick", { type: "button", on: { click: () => (list.remove(), resolve(d)) } }, h("strong", { text: d.name || d.id }), d.n_cells ? h("span.muted", { text: ` ${fmtInt(d.n_cells)} cells` }) : null, d.id === defaultId ? h("span.muted", { text: " (default)" }) : null),
        ),
      ),
    );
    screen.el.querySelector(".screen-box").append(list);
  });
}

function pollHealth(viewer) {
  const url = healthUrl(pageHref);
  let timer = null;
  const tick = async () => {
    const r = await probeHealth(url);
    if (viewer.frozen) return;
    if (r.kind !== "ok") {
      connection("lost", `Lost the connection to the cellucid server (${r.detail || r.kind})`);
      viewer.connected = false;
      viewer.freeze("Lost the connection to the cellucid server.");
      return;
    }
    timer = setTimeout(tick, POLL_MS);
  };
  timer = setTimeout(tick, POLL_MS);
  window.addEventListener("pagehide", () => {
    clearTimeout(timer);
    viewer.freeze("The page was hidden.");
  });
}

async function boot() {
  const base = pageBase(pageHref);
  const progress = new Progress();
  progress.listeners.add((p) => screen.progress(p));
  screen.show("loading", overComm ? "Waiting for the notebook kernel (a running cell holds the viewer back until it ends)…" : "Looking for a cellucid server…");
  connection("pending", overComm ? "Server: the notebook kernel, over the widget's comm" : `Server: ${base.href}`);
  let found;
  try {
    found = await discover(
      base,
      progress,
      (mode, health) => {
        if (health && mode === "server") connection("ok", `Connected · ${describe(health)}`);
        else connection("static", "Static host (no cellucid server)");
      },
      { healthTimeoutMs: overComm ? COMM_HEALTH_TIMEOUT_MS : 5000 },
    );
  } catch (err) {
    if (err.file === "_cellucid/health" || (err.file === "datasets.json" && err.key === "(http)")) {
      connection("none", `No cellucid server found at ${base.href}`);
      screen.show("none", "No cellucid server found. Start one with: cellucid serve <folder or .h5ad>, then open the URL it prints.");
      screen.setDetails([["Server", base.href], ["Details", err.message]]);
      return;
    }
    throw err;
  }
  if (found.mode === "server") openChannel();
  const entry = await pickDataset(found.datasets, found.defaultId);
  screen.show("loading", `Loading ${entry.name || entry.id}…`);
  const ds = await openDataset(base, entry, progress, found.mode === "static" ? "datasets.json" : "_cellucid/datasets");
  screen.show("loading", `Loading ${fmtInt(ds.n)} cells…`);
  const viewer = await start(ds, { datasets: found.datasets, currentId: entry.id, mode: found.mode, health: found.health });
  startChannel(viewer);
  if (found.mode === "server") pollHealth(viewer);
  if (found.mode === "server" && found.health && found.health.type === "anndata") showCacheStatus(viewer, base);
  else window.addEventListener("pagehide", () => viewer.freeze("The page was hidden."));
}

/** "gene cache 42%" in the stage while the server builds its column cache (ui/cachestatus.js). */
function showCacheStatus(viewer, base) {
  const el = cacheStatusElement();
  stageEl.append(el);
  const watch = watchCacheStatus(el, () => fetchJson(base, "_cellucid/info"));
  viewer.on("freeze", () => watch.stop());
}

async function bench(n) {
  const startedAt = performance.now();
  const dim = query.get("dim") === "3" ? 3 : 2;
  screen.show("loading", `Generating ${fmtInt(n)} points…`);
  await new Promise((r) => setTimeout(r, 0));
  const ds = syntheticDataset(n, dim);
  connection("static", "Benchmark mode (no server)");
  const viewer = await start(ds, { bench: true });
  const stats = runBenchHud(viewer, stageEl, { startedAt, animate: query.get("animate") !== "0", measure: query.get("measure") === "filters", rounds: Math.max(1, parseInt(query.get("rounds"), 10) || 7) });
  stats.generateMs = Math.round(ds.generateMs);
  viewer.bench = stats;
  viewer.benchSelection = (opts) => benchSelection(viewer, opts);
  // ?selectbench=1 (with frames) or =compute (compute times only); &repeat=N (3)
  viewer.benchLod = (opts) => benchLod(viewer, opts);
  // ?lodbench=1: frames with and without the level of detail (&fullframes=0 skips full-detail frames)
  if (query.get("lodbench")) stats.lodBench = await benchLod(viewer, { fullFrames: query.get("fullframes") !== "0", moving: Number(query.get("frames")) || 4 }).catch((err) => ({ error: String((err && err.stack) || err) }));
  const selectBench = query.get("selectbench");
  if (selectBench) stats.select = await benchSelection(viewer, { repeat: Number(query.get("repeat")) || 3, frames: selectBench !== "compute" });
  // ?splitbench=R: a camera move with two panels against one (ui/benchsplit.js)
  const splitBench = query.get("splitbench");
  if (splitBench) stats.split = await benchSplit(viewer, { rounds: Math.max(1, Number(splitBench) || 5) });
}

function fail(err) {
  console.error(err);
  if (channel !== null) channel.close();
  const e = err instanceof LoadError ? err : { message: String((err && err.message) || err) };
  screen.error(e, [["Server", overComm ? "the notebook kernel (comm transport)" : pageBase(pageHref).href]]);
  if (window.__cellucid && window.__cellucid.emit && e.file) window.__cellucid.emit("error", { file: e.file, key: e.key, message: e.message });
}

const benchN = query.get("bench");
(benchN !== null ? bench(Math.max(1, Math.min(20_000_000, parseInt(benchN, 10) || 100000))) : boot()).catch(fail);
