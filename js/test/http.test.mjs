// data/http.js: URL resolution relative to the page directory (also under a notebook proxy
// prefix), gzip decided by the URL suffix only, cache policy, progress accounting, errors.
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { describe, test } from "node:test";

import {
  fetchBytes,
  fetchJson,
  isGzipPath,
  LoadError,
  Progress,
  PROGRESS_STEP,
  requestInit,
  resolveUrl,
} from "../viewer/src/data/http.js";

const PAGE = "https://hub.example.org/user/me/proxy/8765/";

/** A fake fetch serving `files` (path below PAGE → bytes or {status, body, headers}); logs calls. */
function fakeFetch(files, { chunk = 3, contentLength = true } = {}) {
  const calls = [];
  const impl = async (url, init) => {
    calls.push({ url, init });
    const path = url.startsWith(PAGE) ? url.slice(PAGE.length).split(/[?#]/)[0] : url;
    let spec = files[path];
    if (spec === undefined) spec = { status: 404, body: JSON.stringify({ message: "no such file" }) };
    if (spec instanceof Uint8Array || typeof spec === "string") spec = { body: spec };
    const body = typeof spec.body === "string" ? new TextEncoder().encode(spec.body) : spec.body;
    const headers = new Headers(spec.headers ?? {});
    if (contentLength) headers.set("Content-Length", String(body.length));
    // stream the body in small chunks so progress sees several reads
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < body.length; i += chunk) controller.enqueue(body.slice(i, i + chunk));
        controller.close();
      },
    });
    return new Response(stream, { status: spec.status ?? 200, headers });
  };
  return { impl, calls };
}

describe("resolveUrl", () => {
  test("resolves relative to the page directory, keeping a /proxy/<port>/ prefix", () => {
    assert.equal(resolveUrl(PAGE, "_cellucid/health"), `${PAGE}_cellucid/health`);
    assert.equal(resolveUrl(PAGE, "datasets.json"), `${PAGE}datasets.json`);
    const dataset = new URL("pbmc/", PAGE);
    assert.equal(resolveUrl(dataset, "obs/louvain.codes.u8.gz"), `${PAGE}pbmc/obs/louvain.codes.u8.gz`);
    assert.equal(resolveUrl(dataset, "./points_2d.bin"), `${PAGE}pbmc/points_2d.bin`);
  });

  test("refuses rooted paths and URLs with a scheme (they would leave the proxy prefix)", () => {
    for (const rel of ["/_cellucid/health", "//evil.example/x", "https://evil.example/x", "\\x", "javascript:alert(1)"]) {
      assert.throws(() => resolveUrl(PAGE, rel), (err) => err instanceof LoadError && err.key === "(path)", rel);
    }
  });
});

describe("isGzipPath and requestInit", () => {
  test("gzip is decided by the .gz suffix of the path only", () => {
    assert.equal(isGzipPath("obs/louvain.codes.u8.gz"), true);
    assert.equal(isGzipPath(`${PAGE}pbmc/points_2d.bin.gz?v=2#x`), true);
    assert.equal(isGzipPath("points_2d.bin"), false);
    assert.equal(isGzipPath("points.gz.bin"), false);
    assert.equal(isGzipPath("points_2d.bin?file=x.gz"), false);
    assert.equal(isGzipPath("x.GZ"), false);
  });

  test("no-store for the live _cellucid/* endpoints, the default cache for dataset files", () => {
    assert.equal(requestInit("_cellucid/datasets").cache, "no-store");
    assert.equal(requestInit("./_cellucid/health").cache, "no-store");
    assert.equal(requestInit("dataset_identity.json").cache, "default");
    assert.equal(requestInit("obs/_cellucid/x.bin").cache, "default");
    assert.equal(requestInit("datasets.json").credentials, "same-origin");
  });
});

describe("fetchBytes / fetchJson", () => {
  test("gunzips .gz payloads, passes others through even when they look like gzip", async () => {
    const raw = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const gz = new Uint8Array(gzipSync(raw));
    const { impl, calls } = fakeFetch({ "a.bin.gz": gz, "b.bin": gz, "c.bin": { body: raw, headers: { "Content-Encoding": "gzip" } } });
    assert.deepEqual(await fetchBytes(PAGE, "a.bin.gz", { fetchImpl: impl }), raw);
    assert.deepEqual(await fetchBytes(PAGE, "b.bin", { fetchImpl: impl }), gz);
    assert.deepEqual(await fetchBytes(PAGE, "c.bin", { fetchImpl: impl }), raw);
    assert.deepEqual(calls.map((c) => c.url), [`${PAGE}a.bin.gz`, `${PAGE}b.bin`, `${PAGE}c.bin`]);
    assert.equal(calls[0].init.cache, "default");
  });

  test("a .gz file with two members or junk is a LoadError naming the file", async () => {
    const member = new Uint8Array(gzipSync(new Uint8Array([1, 2, 3, 4])));
    const two = new Uint8Array([...member, ...member]);
    const { impl } = fakeFetch({ "x.bin.gz": two, "y.bin.gz": new Uint8Array([1, 2, 3]) });
    for (const rel of ["x.bin.gz", "y.bin.gz"]) {
      await assert.rejects(fetchBytes(PAGE, rel, { fetchImpl: impl }), (err) => {
        assert.ok(err instanceof LoadError);
        assert.equal(err.file, rel);
        assert.equal(err.key, "(gzip)");
        assert.match(err.message, new RegExp(`^${rel.replace(".", "\\.")} is not a valid gzip member`));
        return true;
      });
    }
  });

  test("fetchJson parses UTF-8 JSON, uses no-store for _cellucid/*, reports bad JSON and HTTP errors", async () => {
    const { impl, calls } = fakeFetch({ "_cellucid/datasets": '{"datasets": [{"id": "é"}]}', "bad.json": "{nope" });
    assert.deepEqual(await fetchJson(PAGE, "_cellucid/datasets", { fetchImpl: impl }), { datasets: [{ id: "é" }] });
    assert.equal(calls[0].init.cache, "no-store");
    assert.equal(calls[0].init.headers.Accept, "application/json");
    await assert.rejects(fetchJson(PAGE, "bad.json", { fetchImpl: impl }), (err) => err instanceof LoadError && err.file === "bad.json" && err.key === "(json)");
    await assert.rejects(fetchJson(PAGE, "missing.json", { fetchImpl: impl, label: "the catalog" }), (err) => {
      assert.ok(err instanceof LoadError);
      assert.equal(err.file, "the catalog");
      assert.equal(err.message, "the catalog answered HTTP 404: no such file");
      return true;
    });
  });

  test("a network failure is a LoadError (http) naming the file", async () => {
    const impl = async () => {
      throw new TypeError("Failed to fetch");
    };
    await assert.rejects(fetchBytes(PAGE, "points_2d.bin", { fetchImpl: impl }), (err) => err instanceof LoadError && err.key === "(http)" && /could not fetch points_2d\.bin: Failed to fetch/.test(err.message));
  });

  for (const contentLength of [true, false]) {
    test(`progress counts files and stored bytes (Content-Length ${contentLength ? "sent" : "absent"})`, async () => {
      const raw = new Uint8Array(1000).map((_, i) => i % 7);
      const gz = new Uint8Array(gzipSync(raw));
      const json = '{"a": 1}';
      const { impl } = fakeFetch({ "p.bin": raw, "q.bin.gz": gz, "m.json": json }, { contentLength, chunk: 64 });
      const progress = new Progress();
      const seen = [];
      progress.listeners.add((p) => seen.push({ files: p.files, filesDone: p.filesDone, bytes: p.bytes, bytesTotal: p.bytesTotal, current: p.current }));
      await fetchBytes(PAGE, "p.bin", { progress, fetchImpl: impl });
      await fetchBytes(PAGE, "q.bin.gz", { progress, fetchImpl: impl, label: "obs/q" });
      await fetchJson(PAGE, "m.json", { progress, fetchImpl: impl });
      const stored = raw.length + gz.length + json.length;
      assert.equal(progress.files, 3);
      assert.equal(progress.filesDone, 3);
      assert.equal(progress.bytes, stored, "bytes on the wire, not the gunzipped size");
      assert.equal(progress.bytesTotal, stored);
      assert.deepEqual(seen[0], { files: 1, filesDone: 0, bytes: 0, bytesTotal: 0, current: "p.bin" });
      assert.ok(seen.some((s) => s.current === "obs/q"), "the label is reported as current");
      for (let i = 1; i < seen.length; i++) {
        assert.ok(seen[i].bytes >= seen[i - 1].bytes && seen[i].filesDone >= seen[i - 1].filesDone, "monotonic");
        assert.ok(seen[i].filesDone <= seen[i].files);
      }
      assert.equal(seen.at(-1).filesDone, 3);
    });
  }

  test("a large body reports progress while it streams, every PROGRESS_STEP bytes", async () => {
    const size = 4 * PROGRESS_STEP + 10;
    const { impl } = fakeFetch({ "big.bin": new Uint8Array(size) }, { chunk: 1 << 16 });
    const progress = new Progress();
    const during = [];
    progress.listeners.add((p) => {
      if (p.filesDone === 0 && p.bytes > 0) during.push(p.bytes);
    });
    const bytes = await fetchBytes(PAGE, "big.bin", { progress, fetchImpl: impl });
    assert.equal(bytes.length, size);
    assert.ok(during.length >= 3, `intermediate reports: ${during}`);
    assert.ok(during.every((b) => b < size));
  });

  test("parallel downloads share one Progress", async () => {
    const files = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`f${i}.bin`, new Uint8Array(100 * (i + 1))]));
    const { impl } = fakeFetch(files, { chunk: 17 });
    const progress = new Progress();
    const out = await Promise.all(Object.keys(files).map((rel) => fetchBytes(PAGE, rel, { progress, fetchImpl: impl })));
    assert.deepEqual(out.map((b) => b.length), [100, 200, 300, 400, 500]);
    assert.equal(progress.files, 5);
    assert.equal(progress.filesDone, 5);
    assert.equal(progress.bytes, 1500);
    assert.equal(progress.bytesTotal, 1500);
  });
});
