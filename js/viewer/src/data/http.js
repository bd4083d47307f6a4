// Fetching the files of the contract (SPEC §2.3, §3.8): URLs relative to the page directory
// (the server may sit under a `/proxy/<port>/` prefix, so nothing is resolved against the host
// root), byte and file progress, no caching for the live `_cellucid/*` endpoints, and gunzip
// decided by the `.gz` suffix of the URL only (never by Content-Encoding or Content-Type).
//
// No DOM: runs in browsers and in node 20 (tests pass their own `fetchImpl`).

import { gunzip } from "./decode.js";

/** A failure tied to one file of the contract; `key` names the offending key or "(http)". */
export class LoadError extends Error {
  constructor(file, key, message) {
    super(message);
    this.name = "LoadError";
    this.file = file;
    this.key = key;
  }
}

/**
 * The error an aborted fetch rejects with (a DOMException named "AbortError" where there is one).
 *
 * @param {string} [message]
 * @returns {Error}
 */
export function abortError(message = "The request was aborted") {
  try {
    return new DOMException(message, "AbortError");
  } catch {
    const err = new Error(message);
    err.name = "AbortError";
    return err;
  }
}

/**
 * Progress over many files. Listeners get the Progress itself: `files` requested, `filesDone`,
 * `bytes` received (stored bytes, before gunzip), `bytesTotal` (Content-Length when known, else
 * the bytes received once a file is done) and `current` (label of the last file started).
 */
export class Progress {
  constructor() {
    this.files = 0;
    this.filesDone = 0;
    this.bytes = 0;
    this.bytesTotal = 0;
    this.current = "";
    this.listeners = new Set();
  }

  emit() {
    for (const cb of this.listeners) cb(this);
  }
}

/** Bytes between two progress reports while a body streams in. */
export const PROGRESS_STEP = 1 << 18;

/**
 * Resolve a contract path against a directory URL (the page directory, or a dataset directory
 * below it). Only relative paths are accepted: a rooted path (`/x`) or a URL with a scheme
 * would leave the proxy prefix the page was served under.
 *
 * @param {URL|string} base a directory URL ending in `/`
 * @param {string} rel e.g. `"_cellucid/datasets"`, `"obs/louvain.codes.u8.gz"`
 * @returns {string} the absolute URL
 * @throws {LoadError} for a rooted path or a URL with a scheme
 */
export function resolveUrl(base, rel) {
  const text = String(rel);
  if (text.startsWith("/") || text.startsWith("\\") || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(text)) {
    throw new LoadError(text, "(path)", `${text}: expected a path relative to the page directory`);
  }
  return new URL(text, base).href;
}

/**
 * Whether a payload is gzip-compressed: its URL path (query and fragment dropped) ends with
 * `.gz` (SPEC §2.3). Headers never decide.
 *
 * @param {string} url relative path or absolute URL
 * @returns {boolean}
 */
export function isGzipPath(url) {
  return /\.gz$/.test(String(url).split(/[?#]/)[0]);
}

/**
 * Fetch options for a contract path: `cache: "no-store"` for the live `_cellucid/*` endpoints
 * (health, catalog, events), the browser default for dataset files.
 *
 * @param {string} rel
 * @returns {{cache: RequestCache, credentials: RequestCredentials}}
 */
export function requestInit(rel) {
  return { cache: /^(\.\/)?_cellucid\//.test(String(rel)) ? "no-store" : "default", credentials: "same-origin" };
}

async function request(base, rel, init, label, fetchImpl) {
  const url = resolveUrl(base, rel);
  let res;
  try {
    res = await fetchImpl(url, { ...requestInit(rel), ...init });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new LoadError(label, "(http)", `could not fetch ${label}: ${(err && err.message) || err}`);
  }
  if (!res.ok) {
    let msg = "";
    try {
      const body = await res.clone().json();
      if (body && typeof body.message === "string") msg = `: ${body.message}`;
    } catch {
      /* not JSON */
    }
    throw new LoadError(label, "(http)", `${label} answered HTTP ${res.status}${msg}`);
  }
  return res;
}

// The body as bytes, counting them into `progress` as they arrive.
async function readBody(res, progress) {
  const total = Number(res.headers.get("Content-Length")) || 0;
  if (progress) {
    progress.bytesTotal += total;
    progress.emit();
  }
  if (!res.body || !progress) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (progress) {
      progress.bytes += bytes.byteLength;
      if (!total) progress.bytesTotal += bytes.byteLength;
    }
    return bytes;
  }
  let got = 0;
  let last = 0;
  const counter = new TransformStream({
    transform(chunk, controller) {
      got += chunk.byteLength;
      progress.bytes += chunk.byteLength;
      if (got - last > PROGRESS_STEP) {
        last = got;
        progress.emit();
      }
      controller.enqueue(chunk);
    },
  });
  const bytes = new Uint8Array(await new Response(res.body.pipeThrough(counter)).arrayBuffer());
  if (!total) progress.bytesTotal += got;
  return bytes;
}

function started(progress, label) {
  if (!progress) return;
  progress.files++;
  progress.current = label;
  progress.emit();
}

function finished(progress) {
  if (!progress) return;
  progress.filesDone++;
  progress.emit();
}

// started → request → body (with progress) → done → gunzip by suffix.
async function load(base, rel, init, { progress, label = rel, fetchImpl = globalThis.fetch }) {
  started(progress, label);
  const res = await request(base, rel, init, label, fetchImpl);
  const bytes = await readBody(res, progress);
  finished(progress);
  if (!isGzipPath(rel)) return bytes;
  try {
    return new Uint8Array(await gunzip(bytes));
  } catch (err) {
    throw new LoadError(label, "(gzip)", `${label} is not a valid gzip member: ${(err && err.message) || err}`);
  }
}

/**
 * Fetch the stored bytes of a contract file, gunzipped when its path ends with `.gz` (exactly
 * one gzip member, `data/decode.js` `gunzip`).
 *
 * @param {URL|string} base directory URL
 * @param {string} rel path relative to `base`
 * @param {{progress?: Progress, label?: string, signal?: AbortSignal, fetchImpl?: typeof fetch}} [opts]
 *   `label` names the file in errors (default `rel`)
 * @returns {Promise<Uint8Array>}
 * @throws {LoadError} (rejects) on a network error, an HTTP error or a bad gzip member
 */
export function fetchBytes(base, rel, opts = {}) {
  return load(base, rel, opts.signal ? { signal: opts.signal } : {}, opts);
}

/**
 * Fetch and parse a JSON document of the contract (gunzipped first when its path ends with
 * `.gz`).
 *
 * @param {URL|string} base directory URL
 * @param {string} rel path relative to `base`
 * @param {{progress?: Progress, label?: string, fetchImpl?: typeof fetch}} [opts]
 * @returns {Promise<unknown>}
 * @throws {LoadError} (rejects) as `fetchBytes`, or for text that is not JSON
 */
export async function fetchJson(base, rel, opts = {}) {
  const label = opts.label ?? rel;
  const bytes = await load(base, rel, { headers: { Accept: "application/json" } }, opts);
  try {
    return JSON.parse(new TextDecoder("utf-8").decode(bytes));
  } catch (err) {
    throw new LoadError(label, "(json)", `${label} is not valid JSON: ${err.message}`);
  }
}
