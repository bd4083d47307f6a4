// The pure half of the viewer bridge (SPEC §4.2, §4.3): message classification, command
// validation, event payload shapes, the hover throttle and the HTTP outbox. No DOM, no
// network, no timers of its own (they are injected), so node can unit-test all of it
// (js/test/bridge.test.mjs). bridge.js wires it to the window, the viewer and fetch.

/** One hover event per this many milliseconds at most, keeping the latest (SPEC §4.3). */
export const HOVER_INTERVAL_MS = 50;
/** Browsers cap keepalive request bodies at about 64 KiB in flight; stay below that. */
export const KEEPALIVE_MAX_BYTES = 60 * 1024;
/** Inside the widget, wait this long for the parent to pin its origin before using HTTP. */
export const PIN_TIMEOUT_MS = 5000;

export const ENVELOPE_KEYS = Object.freeze(["type", "viewerId", "viewerToken"]);

/**
 * Commands (SPEC §4.2, plus our setSelection and setDimension) and the keys each takes
 * besides the envelope.
 */
export const COMMAND_KEYS = Object.freeze({
  highlight: ["cells", "color"],
  clearHighlights: [],
  setColorBy: ["field"],
  setVisibility: ["cells", "visible"],
  setSelection: ["cells"],
  setDimension: ["dimension"],
  resetCamera: [],
  freeze: [],
  ping: ["requestId"],
  debug_snapshot: ["requestId"],
  requestSessionBundle: ["requestId"],
  // ours (PROTOCOL.md 0.2.0): a user-defined field from Python; values are binary (a typed array)
  addField: ["name", "kind", "categories", "values"],
  // ours (PROTOCOL.md 0.2.0): show another obsm embedding (AnnData mode)
  setEmbedding: ["key"],
  // ours (PROTOCOL.md 0.2.0): split view, 1-4 panels (or null: one view)
  split: ["panels"],
});

/** Keys a command may carry besides those of COMMAND_KEYS (PROTOCOL.md 0.2.0). */
export const OPTIONAL_COMMAND_KEYS = Object.freeze({
  highlight: ["name"],
  setEmbedding: ["dimension"],
  split: ["linked"],
});

/** Events the viewer sends and their exact payload keys (SPEC §4.3). */
export const EVENT_KEYS = Object.freeze({
  ready: ["n_cells", "dimensions"],
  selection: ["cells", "source"],
  hover: ["cell", "position"],
  click: ["cell", "button", "shift", "ctrl"],
  pong: ["requestId", "t"],
  debug_snapshot: [
    "requestId",
    "ts",
    "locationHref",
    "origin",
    "serverUrl",
    "connected",
    "parentOrigin",
    "userAgent",
  ],
  command_error: ["command", "reason"],
  // ours: the colouring field and dimension after the user (or a command) changed them
  view: ["color_by", "dimension"],
  // ours (PROTOCOL.md 0.2.0): the highlight groups after any change, cells as binary cell sets
  groups: ["groups"],
  // ours (PROTOCOL.md 0.2.0): the user-defined fields (names, kinds, categories) after any change
  user_fields: ["fields"],
  // ours (PROTOCOL.md 0.2.0): the main panel's embedding after a switch (null: the dataset's own)
  embedding: ["key", "dimension"],
  // ours (PROTOCOL.md 0.2.0): the split view's panels after any change
  panels: ["panels", "linked"],
});

const COLOR_RE = /^#[0-9A-Fa-f]{6}$/;

export function isPlainObject(value) {
  if (value === null || typeof value !== "object") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Compare two strings without stopping at the first difference. */
export function sameSecret(a, b) {
  if (typeof a !== "string" || typeof b !== "string") return false;
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a.charCodeAt(i) || 0) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * Who sent this message? `{verdict, reason}` with verdict
 *   "ignore"        not a command for us (no string type, or a wrong/missing token): silent
 *   "reject"        the right token for another viewerId: logged
 *   "authenticated" ours; origin pinning and field validation come next
 * A viewer without a token (a standalone page) authenticates nothing.
 */
export function classifyMessage(data, { viewerId, viewerToken }) {
  if (!isPlainObject(data) || typeof data.type !== "string") {
    return { verdict: "ignore", reason: "not a command object with a string type" };
  }
  if (!viewerToken || !sameSecret(data.viewerToken, viewerToken)) {
    return { verdict: "ignore", reason: "wrong or missing viewerToken" };
  }
  if (data.viewerId !== viewerId) {
    return {
      verdict: "reject",
      reason: `viewerId ${JSON.stringify(data.viewerId)} is not this viewer (${viewerId})`,
    };
  }
  return { verdict: "authenticated", reason: "" };
}

/**
 * Origin pinning (SPEC §4.2): the first authenticated message pins its origin; later
 * messages from any other origin are refused.
 */
export class OriginPin {
  constructor() {
    this.origin = null;
  }

  /** true when `origin` is (now) the pinned origin. */
  admit(origin) {
    if (this.origin === null) {
      this.origin = origin;
      return true;
    }
    return origin === this.origin;
  }
}

/** Whether `value` survives JSON unchanged (plain objects, arrays, strings, finite numbers, booleans, null). */
export function isJsonSafe(value, depth = 0) {
  if (depth > 64) return false;
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((item) => isJsonSafe(item, depth + 1));
  if (isPlainObject(value)) return Object.values(value).every((item) => isJsonSafe(item, depth + 1));
  return false;
}

function keyProblem(data, type, extra, optional = []) {
  const allowed = new Set([...ENVELOPE_KEYS, ...extra, ...optional]);
  const unknown = Object.keys(data).filter((key) => !allowed.has(key));
  const missing = extra.filter((key) => !Object.prototype.hasOwnProperty.call(data, key));
  const parts = [];
  if (missing.length) parts.push(`is missing ${missing.join(", ")}`);
  if (unknown.length) parts.push(`does not take ${unknown.join(", ")}`);
  return parts.length ? `${type} ${parts.join(" and ")}` : null;
}

function bad(reason) {
  const error = new Error(reason);
  error.name = "CommandError";
  return error;
}

/**
 * Validate a cell list against a dataset of `nCells` cells: a JSON list of unique
 * non-negative integers < nCells, a Uint32Array (what our widget posts: the comm carries
 * cells as bytes), or a binary cell set of events.py (decoded by `decode`, i.e. cellset.js
 * decodeCells). Returns a Uint32Array (order kept); throws an Error whose message says
 * what is wrong.
 */
export function parseCells(value, nCells, decode, { allowEmpty = true, label = "cells" } = {}) {
  if (!Number.isInteger(nCells) || nCells < 0) throw bad("no dataset is loaded yet");
  let cells;
  if (Array.isArray(value)) {
    cells = new Uint32Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
        throw bad(`${label}[${i}] is ${JSON.stringify(v) ?? String(v)}, not a non-negative integer`);
      }
      if (v >= nCells) throw bad(`${label}[${i}] = ${v} is not below the ${nCells} cells`);
      cells[i] = v;
    }
  } else if (value instanceof Uint32Array) {
    cells = value;
    for (let i = 0; i < cells.length; i++) {
      if (cells[i] >= nCells) throw bad(`${label}[${i}] = ${cells[i]} is not below the ${nCells} cells`);
    }
  } else if (isPlainObject(value) && typeof value.encoding === "string") {
    try {
      cells = decode(value, nCells);
    } catch (err) {
      throw bad(`${label}: ${(err && err.message) || err}`);
    }
    if (!(cells instanceof Uint32Array)) cells = Uint32Array.from(cells);
    for (let i = 0; i < cells.length; i++) {
      if (cells[i] >= nCells) throw bad(`${label} holds ${cells[i]}, not below the ${nCells} cells`);
    }
  } else {
    throw bad(`${label} must be a list of cell indices or an encoded cell set`);
  }
  if (!allowEmpty && cells.length === 0) throw bad(`${label} must not be empty`);
  const seen = new Uint8Array(nCells);
  for (let i = 0; i < cells.length; i++) {
    if (seen[cells[i]]) throw bad(`${label} holds ${cells[i]} twice`);
    seen[cells[i]] = 1;
  }
  return cells;
}

function requireString(data, key, { nonEmpty = true } = {}) {
  const value = data[key];
  if (typeof value !== "string" || (nonEmpty && value.length === 0)) {
    throw bad(`${data.type}.${key} must be a non-empty string`);
  }
  return value;
}

/**
 * Check an authenticated command (SPEC §4.2). Returns `{ok: true, command}` with the
 * command's own keys normalised (cells as Uint32Array, null for "all cells"), or
 * `{ok: false, reason}`. Custom types pass through with their JSON payload.
 */
export function checkCommand(data, { nCells, decode }) {
  const type = data.type;
  if (type.length === 0) return { ok: false, reason: "type must not be empty" };
  const extra = Object.prototype.hasOwnProperty.call(COMMAND_KEYS, type) ? COMMAND_KEYS[type] : null;
  if (extra === null) {
    if (!isJsonSafe(data)) return { ok: false, reason: `${type}: the message is not plain JSON` };
    const payload = {};
    for (const [key, value] of Object.entries(data)) {
      if (!ENVELOPE_KEYS.includes(key)) payload[key] = value;
    }
    return { ok: true, command: { type, custom: true, payload } };
  }
  const problem = keyProblem(data, type, extra, OPTIONAL_COMMAND_KEYS[type]);
  if (problem) return { ok: false, reason: problem };
  try {
    const command = { type };
    switch (type) {
      case "highlight":
        if (typeof data.color !== "string" || !COLOR_RE.test(data.color)) {
          throw bad(`highlight.color must be "#RRGGBB", not ${JSON.stringify(data.color)}`);
        }
        command.cells = parseCells(data.cells, nCells, decode, { allowEmpty: false, label: "highlight.cells" });
        command.color = data.color;
        if (data.name !== undefined && data.name !== null) command.name = requireString(data, "name");
        break;
      case "addField":
        Object.assign(command, parseAddField(data, nCells));
        break;
      case "setColorBy":
        command.field = requireString(data, "field");
        break;
      case "setVisibility":
        if (typeof data.visible !== "boolean") throw bad("setVisibility.visible must be true or false");
        command.cells =
          data.cells === null ? null : parseCells(data.cells, nCells, decode, { label: "setVisibility.cells" });
        command.visible = data.visible;
        break;
      case "setSelection":
        command.cells = parseCells(data.cells, nCells, decode, { label: "setSelection.cells" });
        break;
      case "setDimension":
        if (![1, 2, 3].includes(data.dimension)) throw bad(`setDimension.dimension must be 1, 2 or 3, not ${JSON.stringify(data.dimension)}`);
        command.dimension = data.dimension;
        break;
      case "setEmbedding":
        command.key = data.key === null ? null : requireString(data, "key");
        if (data.dimension !== undefined && data.dimension !== null) {
          if (![1, 2, 3].includes(data.dimension)) throw bad(`setEmbedding.dimension must be 1, 2 or 3, not ${JSON.stringify(data.dimension)}`);
          command.dimension = data.dimension;
        } else command.dimension = null;
        break;
      case "split":
        command.panels = parseSplitPanels(data.panels);
        if (data.linked !== undefined && data.linked !== null) {
          if (typeof data.linked !== "boolean") throw bad("split.linked must be true or false");
          command.linked = data.linked;
        }
        break;
      case "ping":
      case "debug_snapshot":
      case "requestSessionBundle":
        command.requestId = requireString(data, "requestId");
        break;
      default:
        break;
    }
    return { ok: true, command };
  } catch (err) {
    return { ok: false, reason: err.message };
  }
}

/** Panels a split command may ask for. */
export const MAX_SPLIT_PANELS = 4;

/**
 * split.panels → null (one view) or a list of 1-4 specs: a field name, or {field?, dimension?,
 * embedding?} (field: an obs key or gene id; dimension 1-3; embedding an obsm key or null for
 * the dataset's own points). The viewer checks the names against the dataset.
 */
export function parseSplitPanels(panels) {
  if (panels === null) return null;
  if (!Array.isArray(panels) || panels.length < 1 || panels.length > MAX_SPLIT_PANELS) {
    throw bad(`split.panels must be null or a list of 1 to ${MAX_SPLIT_PANELS} panels`);
  }
  return panels.map((p, i) => {
    if (typeof p === "string" && p) return p;
    if (!isPlainObject(p)) throw bad(`split.panels[${i}] must be a field name or {field, dimension, embedding}`);
    const unknown = Object.keys(p).filter((k) => !["field", "dimension", "embedding"].includes(k));
    if (unknown.length) throw bad(`split.panels[${i}] does not take ${unknown.join(", ")}`);
    if (p.field !== undefined && p.field !== null && (typeof p.field !== "string" || !p.field)) throw bad(`split.panels[${i}].field must be a non-empty string`);
    if (p.dimension !== undefined && p.dimension !== null && ![1, 2, 3].includes(p.dimension)) throw bad(`split.panels[${i}].dimension must be 1, 2 or 3`);
    if (p.embedding !== undefined && p.embedding !== null && (typeof p.embedding !== "string" || !p.embedding)) throw bad(`split.panels[${i}].embedding must be an obsm key or null`);
    const out = {};
    for (const k of ["field", "dimension", "embedding"]) if (p[k] !== undefined) out[k] = p[k];
    if (out.dimension === null) delete out.dimension;
    return out;
  });
}

/** The longest user-defined field or group name accepted. */
export const MAX_NAME_LENGTH = 256;

/**
 * addField's keys → {name, kind, categories, values}: `values` is binary, a Uint8Array or
 * Uint16Array of category codes (a code ≥ the number of categories is missing) or a Float32Array
 * (continuous), one per cell. JSON lists of numbers are refused (SPEC §8).
 */
export function parseAddField(data, nCells) {
  const name = requireString(data, "name");
  if (name.length > MAX_NAME_LENGTH) throw bad(`addField.name has more than ${MAX_NAME_LENGTH} characters`);
  const { kind, categories, values } = data;
  if (kind !== "category" && kind !== "continuous") throw bad(`addField.kind must be "category" or "continuous", not ${JSON.stringify(kind)}`);
  if (kind === "category") {
    if (!(values instanceof Uint8Array || values instanceof Uint16Array)) {
      throw bad("addField.values of a category field must be binary: a Uint8Array or Uint16Array of codes");
    }
    if (!Array.isArray(categories) || !categories.length || !categories.every((c) => typeof c === "string")) {
      throw bad("addField.categories must be a non-empty list of strings");
    }
    if (new Set(categories).size !== categories.length) throw bad("addField.categories must not repeat");
    if (categories.length > (values instanceof Uint8Array ? 255 : 65535)) throw bad(`addField: ${categories.length} categories need uint16 codes`);
  } else {
    if (!(values instanceof Float32Array)) throw bad("addField.values of a continuous field must be binary: a Float32Array");
    if (categories !== null) throw bad("addField.categories must be null for a continuous field");
  }
  if (values.length !== nCells) throw bad(`addField.values holds ${values.length} values, the dataset has ${nCells} cells`);
  return { name, kind, categories: kind === "category" ? categories.slice() : null, values };
}

// ---- event payloads ---------------------------------------------------------------------

function finiteOr0(value) {
  const number = Number(value);
  return Number.isFinite(number) ? number : 0;
}

function cellOrNull(cell) {
  return typeof cell === "number" && Number.isInteger(cell) && cell >= 0 ? cell : null;
}

/** `{x, y, z}` zero-padded from `{x, y[, z]}` or `[x, y[, z]]`; null stays null. */
export function padPosition(position) {
  if (position === null || position === undefined) return null;
  const [x, y, z] = Array.isArray(position) || ArrayBuffer.isView(position)
    ? [position[0], position[1], position[2]]
    : [position.x, position.y, position.z];
  return { x: finiteOr0(x), y: finiteOr0(y), z: finiteOr0(z) };
}

export function hoverPayload(event) {
  const cell = cellOrNull(event && event.cell);
  const position = event ? padPosition(event.position) : null;
  return { cell, position: cell === null && position === null ? null : position };
}

/** The click payload, or null for clicks that must not be sent (empty space, odd buttons). */
export function clickPayload(event) {
  const cell = cellOrNull(event && event.cell);
  const button = event && event.button;
  if (cell === null || ![0, 1, 2].includes(button)) return null;
  return {
    cell,
    button,
    shift: Boolean(event.shift || event.shiftKey),
    ctrl: Boolean(event.ctrl || event.ctrlKey || event.meta || event.metaKey),
  };
}

/** ready's `dimensions` is one number (1|2|3): the viewer's current dimension. */
export function readyPayload(event, viewer = {}) {
  const nCells = Number.isInteger(event && event.n_cells) ? event.n_cells : viewer.nCells;
  let dims = event ? event.dimensions : undefined;
  if (Array.isArray(dims)) {
    dims = dims.includes(viewer.dim) ? viewer.dim : Math.max(...dims);
  } else if (!Number.isInteger(dims)) {
    dims = viewer.dim;
  }
  return { n_cells: nCells, dimensions: dims };
}

/**
 * The selection payload. `encode` is cellset.js encodeCellsForEvent: a JSON list up to
 * 1,000 cells, else the smaller binary form of python's `encode_cells`.
 */
export function selectionPayload(event, nCells, encode) {
  const raw = event && event.cells;
  const cells = raw instanceof Uint32Array ? raw : Uint32Array.from(raw || []);
  const source = typeof event.source === "string" && event.source ? event.source : "lasso";
  return { cells: encode(cells, nCells), source };
}

/**
 * The `groups` payload: every highlight group in list order, `cells` encoded like a selection's
 * (`encode` = cellset.js encodeCellsForEvent: a JSON list up to 1,000 cells, else binary).
 */
export function groupsPayload(groups, nCells, encode) {
  return {
    groups: groups.map((g) => ({ id: g.id, name: g.label, color: g.color, visible: g.visible !== false, cells: encode(g.cells, nCells) })),
  };
}

/** The `user_fields` payload: [{key, kind, categories (null for continuous), origin}]. */
export function userFieldsPayload(fields) {
  return { fields: fields.map((f) => ({ key: f.key, kind: f.kind, categories: f.categories ?? null, origin: f.origin })) };
}

/** Redact the token from a URL before it goes into a debug snapshot. */
export function redactToken(href) {
  try {
    const url = new URL(href);
    if (url.searchParams.has("viewerToken")) url.searchParams.set("viewerToken", "redacted");
    return url.href;
  } catch {
    return String(href);
  }
}

// ---- hover throttle -----------------------------------------------------------------------

function hoverKey(payload) {
  if (payload.cell !== null) return `cell:${payload.cell}`;
  return payload.position === null ? "left" : "empty";
}

/**
 * At most one hover per `interval` ms, sending the latest pending position when the gap
 * ends (trailing edge: the final position is never lost). A hover for the cell that was
 * sent last is suppressed (so is a second "left the canvas").
 */
export class HoverThrottle {
  constructor(send, { interval = HOVER_INTERVAL_MS, now = () => Date.now(), timers = globalThis } = {}) {
    this.send = send;
    this.interval = interval;
    this.now = now;
    this.timers = timers;
    this.timer = null;
    this.pending = null;
    this.lastSentAt = -Infinity;
    this.lastKey = null;
  }

  push(payload) {
    this.pending = payload;
    if (this.timer !== null) return;
    const wait = this.lastSentAt + this.interval - this.now();
    if (wait <= 0) {
      this.fire();
    } else {
      this.timer = this.timers.setTimeout(() => {
        this.timer = null;
        this.fire();
      }, wait);
    }
  }

  /** Send what is pending now (page going away). */
  flush() {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
    this.fire();
  }

  cancel() {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
  }

  fire() {
    const payload = this.pending;
    this.pending = null;
    if (payload === null) return;
    const key = hoverKey(payload);
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.lastSentAt = this.now();
    this.send(payload);
  }
}

// ---- HTTP outbox -------------------------------------------------------------------------

/**
 * Events POSTed one at a time, in order (parallel requests could overtake each other).
 * A hover waiting behind a slow request is replaced by a newer hover.
 * `post(body)` returns a promise; its rejection is passed to `onError` and the next
 * event goes on.
 */
export class Outbox {
  constructor(post, { onError = () => {} } = {}) {
    this.post = post;
    this.onError = onError;
    this.queue = [];
    this.busy = false;
    this.idleWaiters = [];
  }

  /** Queue `body`; `eventId` (optional) travels with it to `post(body, eventId)`. */
  push(body, eventId = null) {
    const item = { body, eventId };
    const last = this.queue[this.queue.length - 1];
    if (body.type === "hover" && last && last.body.type === "hover") {
      this.queue[this.queue.length - 1] = item;
    } else {
      this.queue.push(item);
    }
    if (!this.busy) this.pump();
  }

  async pump() {
    this.busy = true;
    while (this.queue.length) {
      const { body, eventId } = this.queue.shift();
      try {
        await this.post(body, eventId);
      } catch (err) {
        this.onError(err, body);
      }
    }
    this.busy = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Resolves once everything queued so far has been posted (or failed). */
  idle() {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Take what has not started yet, as {body, eventId} (page going away: sent in parallel with keepalive). */
  drain() {
    return this.queue.splice(0);
  }
}
