// The Read panel: a line written on the canvas is read by a recognizer (POST /api/read) after every
// stroke, so the text follows the writing.
//
// One request at a time: a stroke that ends while one is out only marks the line as changed, and the
// answer, come back, sends the line again as it is now. An answer for a line that has changed since
// (a stroke more, cleared, another model) is not shown: only the newest line's text is.
//
//   strokes   1    2       3            (pointerup)
//   requests  [--A--][----B----]        B carries strokes 1-3; A's text is shown, B's replaces it
//   clear          x                    A comes back stale: not shown, nothing left to send

import { failure, post } from "./api.js";
import { $, showError } from "./elements.js";
import { thinned, WritingPad } from "./pad.js";

// `version` counts the changes to what is read (strokes, clear, model, mode): an answer for an older one is
// stale. `busy`: a request is out. `limits`: the server's (GET /api/models).
const read = { pad: null, version: 0, busy: false, limits: {} };

// The line drawn again: its canvas was hidden behind another tab, with no size to draw at.
export function redrawRead() {
  read.pad?.redraw();
}

// The request body: beam null is the model's own default (a beam search with its language model), "0" the
// best path.
function body() {
  const mode = $("read-mode").value;
  return {
    model: $("read-model").value, points: thinned(read.pad.points, read.limits.drawn_points),
    beam: mode === "" ? null : Number(mode), lm_weight: null,
  };
}

function changed() {
  read.version += 1;
  readLine();
}

async function readLine() {
  if (read.busy || !read.pad.points.length) return; // when busy, the answer's return sends the line again
  const version = read.version, output = $("read-output"), started = performance.now();
  const strokes = read.pad.strokes;
  read.busy = true;
  output.dataset.state = "reading";
  $("read-status").textContent = "reading…";
  try {
    const { text } = await (await post("/api/read", body())).json();
    if (version === read.version) {
      showError($("read-error"), "");
      output.textContent = text;
      output.dataset.state = "done";
      output.dataset.reads = String(Number(output.dataset.reads || 0) + 1); // tests wait on a new one
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      $("read-status").textContent = `${strokes} stroke${strokes === 1 ? "" : "s"} read in ${seconds} s`;
    }
  } catch (e) {
    if (version === read.version) {
      showError($("read-error"), failure(e));
      output.dataset.state = "error"; // the last text stays, dimmed, under the message
      $("read-status").textContent = "";
    }
  } finally {
    read.busy = false;
  }
  if (version !== read.version) readLine();
}

function clear() {
  read.pad.clear();
  read.version += 1; // an answer on its way is for a line that is gone
  $("read-output").textContent = "";
  $("read-output").dataset.state = "idle";
  $("read-status").textContent = "";
  showError($("read-error"), "");
}

// Wires the panel to `served` (GET /api/models), for the most points the server reads.
export function setUpRead(served) {
  read.limits = served.limits;
  read.pad = new WritingPad($("read-canvas"), { onStroke: changed });
  $("read-clear").addEventListener("click", clear);
  $("read-model").addEventListener("change", changed);
  $("read-mode").addEventListener("change", changed);
}
