// The Your hand panel: a line drawn on the canvas with a mouse, a pen or a finger primes the model, which
// then writes new text in that hand (POST /api/write with `strokes`). It writes with the Write panel's pen.

import { randomSeed } from "./api.js";
import { $, showError } from "./elements.js";
import { pen, showBias } from "./write.js";
import { makeWriter } from "./writer.js";

const STEPS_PER_PX = 10; // points are kept to 1/10 of a CSS pixel: finer is below any pointer
const BASELINE = 0.68; // the line to write on, as a fraction of the canvas's height from the top
const BASELINE_INSET = 12; // px: it stops short of the canvas's edges
const BASELINE_COLOR = "#c9d3e6";
const INK = "#1a2a6c"; // the page's ink (style.css --ink), as the writing will be by default
const INK_WIDTH = 3; // px

// The drawing, in the canvas's CSS pixels (y down, as the API takes it): [x, y, end_of_stroke].
// `limits`: the server's (GET /api/models), for the points it takes.
const hand = { points: [], drawing: false, writer: null, limits: {} };

function handPoint(event, end = 0) {
  const rect = $("hand-canvas").getBoundingClientRect();
  const round = (v) => Math.round(v * STEPS_PER_PX) / STEPS_PER_PX;
  return [round(event.clientX - rect.left), round(event.clientY - rect.top), end];
}

// The whole drawing again, at every change: a few thousand points at most, and it follows the resize.
export function redrawHand() {
  const canvas = $("hand-canvas"), ctx = canvas.getContext("2d");
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
  for (const [x, y, end] of hand.points) {
    if (lifted) { ctx.moveTo(x, y); ctx.lineTo(x, y); } else ctx.lineTo(x, y);
    lifted = end === 1;
  }
  ctx.stroke();
}

function setUpHandCanvas() {
  const canvas = $("hand-canvas");
  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return; // the main button, a pen's tip or a finger
    canvas.setPointerCapture(e.pointerId); // keep the stroke when the pen leaves the canvas
    hand.drawing = true;
    hand.points.push(handPoint(e));
    redrawHand();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!hand.drawing) return;
    // the events the browser merged since the last frame: a fast stroke keeps its curve
    for (const event of e.getCoalescedEvents?.() ?? [e]) hand.points.push(handPoint(event));
    redrawHand();
  });
  const lift = () => {
    if (!hand.drawing) return;
    hand.drawing = false;
    hand.points[hand.points.length - 1][2] = 1;
    redrawHand();
  };
  canvas.addEventListener("pointerup", lift);
  canvas.addEventListener("pointercancel", lift);
  $("hand-clear").addEventListener("click", () => { hand.points = []; redrawHand(); });
  new ResizeObserver(redrawHand).observe(canvas);
}

// At most `limit` points (the server's drawn_points): every k-th point, keeping each stroke's last.
function thinned(points, limit) {
  if (!limit || points.length <= limit) return points;
  const step = Math.ceil(points.length / limit);
  return points.filter((p, i) => p[2] === 1 || i % step === 0);
}

function writeInHand() {
  showError($("hand-error"), "");
  if (!hand.points.length) {
    showError($("hand-error"), "draw a few words on the line first, then say what they are in \"What it says\"");
    return;
  }
  hand.writer.write({
    model: $("hand-model").value,
    text: $("hand-write-text").value.trimEnd(),
    bias: Number($("hand-bias").value),
    style: null,
    strokes: { text: $("hand-text").value, points: thinned(hand.points, hand.limits.drawn_points) },
    seed: randomSeed(),
    attention: false,
  });
}

// Wires the panel to `served` (GET /api/models: the models and the server's limits); its writer.
export function setUpHand(served) {
  hand.limits = served.limits;
  hand.writer = makeWriter({
    output: $("hand-output"), error: $("hand-error"), status: $("hand-status"), models: served.models, pen,
  });
  setUpHandCanvas();
  if (served.limits.text_chars) $("hand-write-text").maxLength = served.limits.text_chars;
  $("hand-bias").addEventListener("input", () => showBias("hand-bias"));
  $("hand-write").addEventListener("click", writeInHand);
  $("hand-write-text").addEventListener("keydown", (e) => { if (e.key === "Enter") writeInHand(); });
  return hand.writer;
}
