// A writing pad: a canvas a line is drawn on with a mouse, a pen or a finger (Pointer Events), kept as the
// API takes a drawn line. Your hand primes a model with it; Read reads it.
//
//   points   [[x, y, end_of_stroke], ...] in the canvas's CSS pixels, y down, absolute; end_of_stroke is 1
//            on the last point of each stroke (the pen lifts after it):
//            [[10, 50, 0], [14, 42, 0], [18, 50, 1], [30, 50, 0], [30, 40, 1]]   two strokes

const STEPS_PER_PX = 10; // points are kept to 1/10 of a CSS pixel: finer is below any pointer
const BASELINE = 0.68; // the line to write on, as a fraction of the canvas's height from the top
const BASELINE_INSET = 12; // px: it stops short of the canvas's edges
const BASELINE_COLOR = "#c9d3e6";
const INK = "#1a2a6c"; // the page's ink (style.css --ink), as the writing will be by default
const INK_WIDTH = 3; // px

export class WritingPad {
  // `onStroke`: called after each stroke ends (the pen lifts), with the pad
  constructor(canvas, { onStroke = () => {} } = {}) {
    this.canvas = canvas;
    this.points = [];
    this.pointer = null; // the pointer drawing the stroke now: a second finger is not a second pen
    this.onStroke = onStroke;
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.lift(e));
    canvas.addEventListener("pointercancel", (e) => this.lift(e));
    new ResizeObserver(() => this.redraw()).observe(canvas);
  }

  get strokes() {
    return this.points.reduce((n, p) => n + p[2], 0);
  }

  point(event) {
    const rect = this.canvas.getBoundingClientRect();
    const round = (v) => Math.round(v * STEPS_PER_PX) / STEPS_PER_PX;
    return [round(event.clientX - rect.left), round(event.clientY - rect.top), 0];
  }

  down(e) {
    if (e.button !== 0 || this.pointer !== null) return; // the main button, a pen's tip or a finger
    this.canvas.setPointerCapture(e.pointerId); // keep the stroke when the pen leaves the canvas
    this.pointer = e.pointerId;
    this.points.push(this.point(e));
    this.redraw();
  }

  move(e) {
    if (e.pointerId !== this.pointer) return;
    // the events the browser merged since the last frame: a fast stroke keeps its curve
    for (const event of e.getCoalescedEvents?.() ?? [e]) this.points.push(this.point(event));
    this.redraw();
  }

  lift(e) {
    if (e.pointerId !== this.pointer) return;
    this.pointer = null;
    this.points[this.points.length - 1][2] = 1;
    this.redraw();
    this.onStroke(this);
  }

  clear() {
    this.points = [];
    this.pointer = null; // a stroke under way when cleared ends here: its next moves are not drawn
    this.redraw();
  }

  // The whole drawing again, at every change: a few thousand points at most, and it follows the resize.
  redraw() {
    const canvas = this.canvas, ctx = canvas.getContext("2d");
    const rect = canvas.getBoundingClientRect(), ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(rect.width * ratio)) { // match the screen's pixels: sharp lines
      canvas.width = Math.round(rect.width * ratio);
      canvas.height = Math.round(rect.height * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, rect.width, rect.height);
    ctx.strokeStyle = BASELINE_COLOR; ctx.lineWidth = 1; // a baseline to write on
    ctx.beginPath();
    ctx.moveTo(BASELINE_INSET, rect.height * BASELINE);
    ctx.lineTo(rect.width - BASELINE_INSET, rect.height * BASELINE);
    ctx.stroke();
    ctx.strokeStyle = INK; ctx.lineWidth = INK_WIDTH; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath();
    let lifted = true;
    for (const [x, y, end] of this.points) {
      if (lifted) { ctx.moveTo(x, y); ctx.lineTo(x, y); } else ctx.lineTo(x, y);
      lifted = end === 1;
    }
    ctx.stroke();
  }
}

// At most `limit` points (the server's drawn_points): every k-th point, keeping each stroke's last.
export function thinned(points, limit) {
  if (!limit || points.length <= limit) return points;
  const step = Math.ceil(points.length / limit);
  return points.filter((p, i) => p[2] === 1 || i % step === 0);
}
