// Newline-delimited JSON read incrementally: the answer of `POST _cellucid/compare` arrives as
// one JSON object per line, streamed while the server works. Chunks may end anywhere, also
// inside a line or a multi-byte UTF-8 character.
//
// Pure module: no DOM, runs in browsers and node.

/** Incremental NDJSON parser: push(bytes) returns the objects of the lines completed so far. */
export class NdjsonParser {
  constructor() {
    this.decoder = new TextDecoder("utf-8");
    this.pending = "";
    this.line = 0;
  }

  /**
   * @param {Uint8Array} chunk
   * @returns {object[]}
   */
  push(chunk) {
    return this.lines(this.decoder.decode(chunk, { stream: true }), false);
  }

  /**
   * The last line (the stream ended without a final newline).
   *
   * @returns {object[]}
   */
  end() {
    return this.lines(this.decoder.decode(), true);
  }

  lines(text, final) {
    const parts = (this.pending + text).split("\n");
    this.pending = final ? "" : parts.pop();
    const out = [];
    for (const raw of parts) {
      this.line++;
      const line = raw.trim();
      if (!line) continue;
      try {
        out.push(JSON.parse(line));
      } catch (err) {
        throw new Error(`line ${this.line} of the answer is not JSON: ${err.message}`);
      }
    }
    return out;
  }
}

/**
 * Read a streamed body line by line. Resolves when the body ends; rejects with the reader's error
 * (an AbortError when the fetch is aborted).
 *
 * @param {ReadableStream<Uint8Array>|null} body a fetch Response body
 * @param {(message: object) => void} onMessage called for each object, in order
 * @param {() => Promise<ArrayBuffer>} [whole] fallback when there is no stream: the whole body
 * @returns {Promise<void>}
 */
export async function readNdjson(body, onMessage, whole = null) {
  const parser = new NdjsonParser();
  if (!body || typeof body.getReader !== "function") {
    if (!whole) throw new Error("no response body");
    for (const m of parser.push(new Uint8Array(await whole()))) onMessage(m);
  } else {
    const reader = body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const m of parser.push(value)) onMessage(m);
    }
  }
  for (const m of parser.end()) onMessage(m);
}

/**
 * A JSON number list as float64, null (a non-finite number on the wire) as NaN.
 *
 * @param {Array<number|null>|undefined} list
 * @returns {Float64Array}
 */
export function numbers(list) {
  return Float64Array.from(list || [], (v) => (v === null ? NaN : v));
}
