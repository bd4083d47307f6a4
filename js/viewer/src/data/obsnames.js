// Cell names (obs_names) for the hover tooltip, from the server route
// `GET _cellucid/obs_names?dataset=&start=&count=` (python/cellucid/server/PROTOCOL.md): the
// binary block decoder and a lazy loader that fetches the block holding a cell on first use.
// An export folder or a static host has no names: the first failure turns the loader off and
// the tooltip shows the row number only. Pure module (fetching is injected).

export const OBS_NAMES_BLOCK = 65536;

/**
 * Decode one answer: u32 start, u32 count, u32 offsets[count + 1], UTF-8 names.
 *
 * @param {Uint8Array} bytes
 * @returns {{start: number, count: number, offsets: Uint32Array, names: Uint8Array}}
 */
export function decodeObsNames(bytes) {
  if (bytes.byteLength < 12) throw new Error(`obs_names: ${bytes.byteLength} bytes is too short`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const start = view.getUint32(0, true);
  const count = view.getUint32(4, true);
  const head = 8 + 4 * (count + 1);
  if (bytes.byteLength < head) throw new Error(`obs_names: ${count} offsets do not fit in ${bytes.byteLength} bytes`);
  const offsets = new Uint32Array(count + 1);
  for (let i = 0; i <= count; i++) offsets[i] = view.getUint32(8 + 4 * i, true);
  const names = bytes.subarray(head);
  if (offsets[0] !== 0 || offsets[count] !== names.byteLength) throw new Error(`obs_names: the offsets do not cover the ${names.byteLength} name bytes`);
  for (let i = 0; i < count; i++) if (offsets[i + 1] < offsets[i]) throw new Error("obs_names: offsets go backwards");
  return { start, count, offsets, names };
}

const utf8 = new TextDecoder("utf-8");

/** Name of `cell` in a decoded block, or null when the block does not hold it. */
export function nameInBlock(block, cell) {
  const i = cell - block.start;
  if (!(i >= 0 && i < block.count)) return null;
  return utf8.decode(block.names.subarray(block.offsets[i], block.offsets[i + 1]));
}

/**
 * Lazy cell names: `get(cell)` answers the name when its block is loaded, else null and starts
 * loading it (`onLoad` is called once it arrives). After a failed fetch `available` is false
 * and nothing more is requested.
 */
export class ObsNameLoader {
  /**
   * @param {{nCells: number, fetchBlock: (start: number, count: number) => Promise<Uint8Array>,
   *   onLoad?: () => void, block?: number, enabled?: boolean}} opts
   */
  constructor({ nCells, fetchBlock, onLoad = () => {}, block = OBS_NAMES_BLOCK, enabled = true }) {
    this.nCells = nCells;
    this.fetchBlock = fetchBlock;
    this.onLoad = onLoad;
    this.block = block;
    this.available = enabled; // true until a request fails (then: no names on this server)
    this.blocks = new Map(); // block index -> decoded block | Promise
    this.error = null;
  }

  /** The name of a cell, or null (not loaded yet, or no names). */
  get(cell) {
    if (!this.available || !(cell >= 0 && cell < this.nCells)) return null;
    const b = Math.floor(cell / this.block);
    const got = this.blocks.get(b);
    if (got && !(got instanceof Promise)) return nameInBlock(got, cell);
    if (!got) this.load(b);
    return null;
  }

  /** Load block b (once); resolves when it is there or the loader gave up. */
  load(b) {
    if (this.blocks.has(b)) return Promise.resolve(this.blocks.get(b));
    const start = b * this.block;
    const count = Math.min(this.block, this.nCells - start);
    const p = Promise.resolve()
      .then(() => this.fetchBlock(start, count))
      .then((bytes) => {
        const block = decodeObsNames(bytes);
        if (block.start !== start || block.count !== count) throw new Error(`obs_names: asked for ${count} cells from ${start}, got ${block.count} from ${block.start}`);
        this.blocks.set(b, block);
        this.onLoad();
        return block;
      })
      .catch((err) => {
        this.available = false;
        this.error = err;
        this.blocks.delete(b);
        return null;
      });
    this.blocks.set(b, p);
    return p;
  }
}
