// The Your hand panel: a line drawn on the canvas with a mouse, a pen or a finger primes the model, which
// then writes new text in that hand (POST /api/write with `strokes`). It writes with the Write panel's pen.

import { randomSeed } from "./api.js";
import { $, showError } from "./elements.js";
import { thinned, WritingPad } from "./pad.js";
import { pen, showBias } from "./write.js";
import { makeWriter } from "./writer.js";

// `pad`: the drawing; `limits`: the server's (GET /api/models), for the points it takes.
const hand = { pad: null, writer: null, limits: {} };

// The line drawn again: its canvas was hidden behind another tab, with no size to draw at.
export function redrawHand() {
  hand.pad?.redraw();
}

function writeInHand() {
  showError($("hand-error"), "");
  if (!hand.pad.points.length) {
    showError($("hand-error"), "draw a few words on the line first, then say what they are in \"What it says\"");
    return;
  }
  hand.writer.write({
    model: $("hand-model").value,
    text: $("hand-write-text").value.trimEnd(),
    bias: Number($("hand-bias").value),
    style: null,
    strokes: { text: $("hand-text").value, points: thinned(hand.pad.points, hand.limits.drawn_points) },
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
  hand.pad = new WritingPad($("hand-canvas"));
  $("hand-clear").addEventListener("click", () => hand.pad.clear());
  if (served.limits.text_chars) $("hand-write-text").maxLength = served.limits.text_chars;
  $("hand-bias").addEventListener("input", () => showBias("hand-bias"));
  $("hand-write").addEventListener("click", writeInHand);
  $("hand-write-text").addEventListener("keydown", (e) => { if (e.key === "Enter") writeInHand(); });
  return hand.writer;
}
