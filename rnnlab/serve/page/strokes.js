// Handwriting on screen: stroke offsets -> SVG paths, one <svg> per line that grows as its points arrive,
// with the pen's dot at the last point; the small previews of a model's styles; a model's writing size.
// The layout constants are rnnlab/draw.py's, so the screen looks like the downloads.

import { svgElement } from "./elements.js";

const STROKE_WIDTH_FRACTION = 0.03; // pen width / writing size (one line's height): draw.py
const MARGIN_FRACTION = 0.1; // blank border / writing size, keeps the round pen caps inside: draw.py
const SCREEN_PX = 100; // on screen: pixels per writing size, as draw.py's files
const PREVIEW_PX = 26; // the same for the small style previews
const PREVIEW_PEN = 1.5; // the previews' pen, times the usual width: thin lines vanish at 26 px
const DOT_RADIUS = 1.4; // the pen's dot / pen width: just wider than the line it draws
const FALLBACK_SIZE = 500; // data units: IAM-OnDB's writing height, for a model without styles to measure

// One line of handwriting as an <svg> that grows as its points arrive. The server sends offsets
// (dx, dy, end_of_stroke) with y up, from the line's origin; the pen lifts after a point whose
// end_of_stroke is 1, so the next offset is a move, not a line:
//
//   offsets  (0,0,0) (5,2,0) (4,-1,1) (30,0,0) (3,3,1)
//   paths    M 0 0 L 5 -2 L 9 -1 | M 39 -1 L 42 -4        (one <path> per stroke, y negated)
export class LineDrawing {
  // `pen`: the width as a multiple of the usual one; `pixels`: screen pixels per writing size
  constructor(parent, { size, pixels = SCREEN_PX, pen, color }) {
    this.size = size; // writing size in data units: sets the scale and the margin, fixed from the start
    this.penSize = size; // the writing size the pen width follows (finish() sets the page's)
    this.pixels = pixels;
    this.svg = svgElement("svg", { class: "line" });
    this.ink = svgElement("g", {
      class: "ink", fill: "none", "stroke-linecap": "round", "stroke-linejoin": "round",
    }, this.svg);
    this.dot = svgElement("circle", { class: "pen", r: 0 }, this.svg);
    this.setPen(pen, color);
    this.x = 0; this.y = 0; // the pen, screen axes (y down)
    this.lifted = true; // the next point starts a stroke
    this.path = null; this.d = ""; this.count = 0; // the stroke being drawn, its points
    this.box = null; // [x0, y0, x1, y1] of the points so far
    parent.append(this.svg);
  }

  setPen(multiple, color) {
    this.multiple = multiple; this.color = color;
    const width = STROKE_WIDTH_FRACTION * this.penSize * multiple;
    this.ink.setAttribute("stroke", color);
    this.ink.setAttribute("stroke-width", width.toFixed(2));
    this.dot.setAttribute("r", (DOT_RADIUS * width).toFixed(2));
  }

  add(offsets) {
    for (const [dx, dy, end] of offsets) {
      this.x += dx; this.y -= dy;
      const point = `${this.x.toFixed(1)} ${this.y.toFixed(1)}`;
      if (this.lifted) {
        this.path = svgElement("path", {}, this.ink);
        this.d = `M ${point}`; this.count = 1;
      } else {
        this.d += ` L ${point}`; this.count += 1;
      }
      this.lifted = end > 0.5;
      if (this.lifted && this.count === 1) this.d += ` L ${point}`; // a dot: round caps draw a disc
      this.path.setAttribute("d", this.d);
      this.grow(this.x, this.y);
    }
    this.dot.setAttribute("cx", this.x.toFixed(1));
    this.dot.setAttribute("cy", this.y.toFixed(1));
    this.fit();
  }

  grow(x, y) {
    const b = this.box;
    this.box = b ? [Math.min(b[0], x), Math.min(b[1], y), Math.max(b[2], x), Math.max(b[3], y)] : [x, y, x, y];
  }

  // The viewBox hugs the points plus the margin; the size on screen keeps `pixels` per writing size, so
  // every line of a page is drawn at one scale whatever its own height.
  fit() {
    if (!this.box) return;
    const m = MARGIN_FRACTION * this.size, [x0, y0, x1, y1] = this.box;
    const w = x1 - x0 + 2 * m, h = y1 - y0 + 2 * m, scale = this.pixels / this.size;
    this.svg.setAttribute("viewBox", `${(x0 - m).toFixed(1)} ${(y0 - m).toFixed(1)} ${w.toFixed(1)} ${h.toFixed(1)}`);
    this.svg.setAttribute("width", Math.ceil(w * scale));
    this.svg.setAttribute("height", Math.ceil(h * scale));
  }

  height() {
    return this.box ? this.box[3] - this.box[1] : 0;
  }

  // The line is done: the pen follows ``penSize`` (the downloads' writing size) from now on.
  finish(penSize = this.penSize) {
    this.dot.remove();
    this.penSize = penSize;
    this.setPen(this.multiple, this.color);
  }
}

// A style's line, small, drawn at once into `parent` (a style button) in the button's text colour.
export function drawPreview(parent, offsets, size) {
  const drawing = new LineDrawing(parent, { size, pixels: PREVIEW_PX, pen: PREVIEW_PEN, color: "currentColor" });
  drawing.add(offsets);
  drawing.finish();
  return drawing;
}

// A model's writing size: the median height of its styles (real lines of its data), so the lines on
// screen keep one scale from their first point, before their own height is known.
export function writingSize(model) {
  const heights = (model?.styles || []).map((style) => {
    let y = 0, lo = 0, hi = 0;
    for (const [, dy] of style.offsets) { y += dy; lo = Math.min(lo, y); hi = Math.max(hi, y); }
    return hi - lo;
  }).filter((h) => h > 0).sort((a, b) => a - b);
  return heights.length ? heights[Math.floor(heights.length / 2)] : FALLBACK_SIZE;
}
