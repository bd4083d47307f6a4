// How the overlays on the points look (colours as RGBA 0-255, sizes in CSS pixels), shared by
// the deck.gl layers (render/scene.js) and the SVG figure export (render/svgoverlays.js), so
// the exported figure matches the screen. Pure module.

/**
 * @param {{dark: boolean, pointSize: number}} style
 */
export function overlayStyle({ dark, pointSize }) {
  return {
    edge: { color: dark ? [200, 210, 230, 40] : [40, 50, 70, 40], width: 1 },
    highlight: {
      radius: Math.max(2.5, pointSize * 1.5),
      alpha: 235,
      stroke: dark ? [0, 0, 0, 200] : [255, 255, 255, 220],
      strokeWidth: 0.75,
    },
    selection: {
      radius: Math.max(3, pointSize * 1.9),
      stroke: dark ? [255, 255, 255, 230] : [20, 20, 20, 230],
      strokeWidth: 1.25,
    },
    vector: { color: dark ? [240, 240, 240, 200] : [30, 30, 30, 190], width: 1 },
    label: {
      size: 13,
      weight: 600,
      color: dark ? [240, 242, 246, 255] : [20, 24, 32, 255],
      halo: dark ? [12, 14, 18, 230] : [255, 255, 255, 235],
      haloWidth: 3,
      font: "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif",
    },
  };
}

/** "rgb(r,g,b)" and the opacity of an RGBA colour, for SVG attributes. */
export function svgPaint(rgba) {
  const a = rgba.length > 3 ? rgba[3] / 255 : 1;
  return { rgb: `rgb(${rgba[0]},${rgba[1]},${rgba[2]})`, opacity: Number(a.toFixed(3)) };
}
