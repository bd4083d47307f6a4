// anywidget front end of the cellucid notebook widget.
//
// For now it shows the viewer page in an iframe: `viewer_url` (the page URL chosen by
// Python) and `height` (pixels) are synced traits, and the iframe follows their changes.

const DEFAULT_HEIGHT = 600;

function cssHeight(value) {
  const px = Number(value);
  return `${Number.isFinite(px) && px > 0 ? px : DEFAULT_HEIGHT}px`;
}

function render({ model, el }) {
  const iframe = document.createElement("iframe");
  iframe.className = "cellucid-frame";
  iframe.title = "Cellucid viewer";
  iframe.style.display = "block";
  iframe.style.width = "100%";
  iframe.style.border = "0";

  const sync = () => {
    const url = model.get("viewer_url") || "about:blank";
    if (iframe.getAttribute("src") !== url) iframe.setAttribute("src", url);
    iframe.style.height = cssHeight(model.get("height"));
  };

  sync();
  el.appendChild(iframe);
  model.on("change:viewer_url", sync);
  model.on("change:height", sync);

  return () => {
    model.off("change:viewer_url", sync);
    model.off("change:height", sync);
    iframe.remove();
  };
}

export default { render };
