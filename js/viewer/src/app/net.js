// Fetching relative to the page directory, with byte progress and .gz handling (SPEC §2.3, §3.8).
// INTERIM until src/data/http.js lands; the viewer only uses fetchJson/fetchBytes below.

import { gunzip } from "./interim.js";

export class LoadError extends Error {
  /** A failure tied to one file of the contract; `key` names the offending key or "(http)". */
  constructor(file, key, message) {
    super(message);
    this.file = file;
    this.key = key;
  }
}

/** Progress over many files: listeners get {files, filesDone, bytes, bytesTotal, current}. */
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

function resolve(base, rel) {
  return new URL(rel, base).href;
}

async function request(base, rel, init, label) {
  let res;
  try {
    res = await fetch(resolve(base, rel), { credentials: "same-origin", ...init });
  } catch (err) {
    throw new LoadError(label, "(http)", `could not fetch ${label}: ${err.message || err}`);
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

export async function fetchJson(base, rel, { progress, label = rel, cache } = {}) {
  if (progress) {
    progress.files++;
    progress.current = label;
    progress.emit();
  }
  const res = await request(base, rel, { cache: cache || "default", headers: { Accept: "application/json" } }, label);
  const text = await res.text();
  if (progress) {
    progress.filesDone++;
    progress.bytes += text.length;
    progress.bytesTotal += text.length;
    progress.emit();
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new LoadError(label, "(json)", `${label} is not valid JSON: ${err.message}`);
  }
}

/** Bytes of a payload; gunzipped only when the path ends with .gz (never by Content-Encoding). */
export async function fetchBytes(base, rel, { progress, label = rel, signal } = {}) {
  if (progress) {
    progress.files++;
    progress.current = label;
    progress.emit();
  }
  const res = await request(base, rel, { signal }, label);
  const total = Number(res.headers.get("Content-Length")) || 0;
  if (progress) {
    progress.bytesTotal += total;
    progress.emit();
  }
  let bytes;
  if (res.body && progress) {
    const reader = res.body.getReader();
    const chunks = [];
    let got = 0;
    let last = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      got += value.byteLength;
      progress.bytes += value.byteLength;
      if (got - last > 1 << 18) {
        last = got;
        progress.emit();
      }
    }
    if (!total) progress.bytesTotal += got;
    bytes = new Uint8Array(got);
    let off = 0;
    for (const c of chunks) {
      bytes.set(c, off);
      off += c.byteLength;
    }
  } else {
    bytes = new Uint8Array(await res.arrayBuffer());
  }
  if (progress) {
    progress.filesDone++;
    progress.emit();
  }
  if (/\.gz$/.test(rel.split("?")[0])) {
    try {
      bytes = await gunzip(bytes);
    } catch (err) {
      throw new LoadError(label, "(gzip)", `${label} is not a valid gzip member: ${err.message || err}`);
    }
  }
  return bytes;
}
