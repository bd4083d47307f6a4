// Continuous user-defined fields in a session (python/cellucid/server/PROTOCOL.md "Session
// chunks"): SPEC §5.2's user-defined fields are categorical, so numeric ones (Python's
// viewer.add_field(name, floats)) go into new chunks. Pure module.
//
//   cellucid/user-fields                 json    {version: 1, fields: [{id, key, kind:
//                                                 "continuous", source: "obs", dtype: "float32",
//                                                 length}]}
//   cellucid/user-fields/values/<id>     binary  length float32 values, little-endian

export const USER_FIELDS_CHUNK = "cellucid/user-fields";
export const USER_VALUES_PREFIX = "cellucid/user-fields/values/";
export const USER_FIELDS_VERSION = 1;

const LITTLE = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** float32 values as little-endian bytes (a copy). */
export function encodeFloat32(values) {
  if (!(values instanceof Float32Array)) throw new TypeError("values must be a Float32Array");
  const out = new Uint8Array(values.length * 4);
  if (LITTLE) out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  else {
    const view = new DataView(out.buffer);
    values.forEach((v, i) => view.setFloat32(4 * i, v, true));
  }
  return out;
}

/**
 * Little-endian float32 bytes back to a Float32Array of `length` values.
 *
 * @param {Uint8Array} bytes
 * @param {number} length expected number of values
 * @returns {Float32Array}
 */
export function decodeFloat32(bytes, length) {
  if (bytes.length !== length * 4) throw new Error(`${bytes.length} bytes hold ${bytes.length / 4} float32 values, not ${length}`);
  if (LITTLE) return new Float32Array(bytes.slice().buffer); // copy: the chunk may be unaligned
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float32Array.from({ length }, (_, i) => view.getFloat32(4 * i, true));
}

/**
 * The extra chunks (session/bundle.js writeSessionBundle `extraChunks`) of continuous fields.
 *
 * @param {Array<{id: string, key: string, values: Float32Array}>} fields
 * @returns {Array<object>} nothing when there are none
 */
export function continuousFieldChunks(fields) {
  if (!fields.length) return [];
  const meta = fields.map((f) => ({ id: f.id, key: f.key, kind: "continuous", source: "obs", dtype: "float32", length: f.values.length }));
  return [
    { id: USER_FIELDS_CHUNK, label: "Numeric user-defined fields", kind: "json", value: { version: USER_FIELDS_VERSION, fields: meta } },
    ...fields.map((f) => ({ id: USER_VALUES_PREFIX + f.id, label: `Values: ${f.key}`, kind: "binary", bytes: encodeFloat32(f.values), dependsOn: USER_FIELDS_CHUNK })),
  ];
}

/**
 * The continuous fields of a read bundle (session/bundle.js readSessionBundle `chunks`).
 *
 * @param {Map<string, {value: unknown}>} chunks
 * @param {number} nCells
 * @returns {{fields: Array<{key: string, values: Float32Array}>, warnings: string[]}}
 */
export function readContinuousFields(chunks, nCells) {
  const doc = chunks.get(USER_FIELDS_CHUNK)?.value;
  if (!doc) return { fields: [], warnings: [] };
  if (doc.version !== USER_FIELDS_VERSION || !Array.isArray(doc.fields)) return { fields: [], warnings: [`${USER_FIELDS_CHUNK}: unknown layout, ignored`] };
  const fields = [];
  const warnings = [];
  for (const f of doc.fields) {
    const name = f && typeof f.key === "string" ? f.key : "?";
    const chunk = f && typeof f.id === "string" ? chunks.get(USER_VALUES_PREFIX + f.id) : null;
    if (!chunk || f.kind !== "continuous" || f.dtype !== "float32") {
      warnings.push(`numeric field ${JSON.stringify(name)} skipped: no float32 values in the bundle`);
      continue;
    }
    try {
      fields.push({ key: f.key, values: decodeFloat32(chunk.value, nCells) });
    } catch (err) {
      warnings.push(`numeric field ${JSON.stringify(name)} skipped: ${err.message}`);
    }
  }
  return { fields, warnings };
}
