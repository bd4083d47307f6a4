// Point size and opacity on first load, as functions of the number of cells. Pure module.
//
// Points of a fixed pixel size cover an area proportional to n, so a size that reads well for
// a few hundred cells buries a million of them in one blob. The default radius falls as a
// power of n: 4 px at 500 cells and a factor of 10^0.16 ≈ 1.45 smaller per ten-fold more cells,
// clamped to [0.6, 6] and rounded to the slider's 0.1 step:
//
//        n    100   1,000   10,000   100,000   1,000,000   10,000,000
//   radius    5.2     3.6      2.5       1.7         1.2          0.8

export const POINT_SIZE_MIN = 0.6;
export const POINT_SIZE_MAX = 6;

/**
 * Default point radius (pixels, the ScatterplotLayer radiusScale) for n cells.
 *
 * @param {number} n
 * @returns {number}
 */
export function defaultPointSize(n) {
  const cells = Math.max(1, Number(n) || 1);
  const size = 4 * Math.pow(cells / 500, -0.16);
  return Math.round(Math.min(POINT_SIZE_MAX, Math.max(POINT_SIZE_MIN, size)) * 10) / 10;
}

/** Default point opacity: overlapping points of a large dataset are drawn translucent. */
export function defaultOpacity(n) {
  return n > 200000 ? 0.7 : 0.9;
}
