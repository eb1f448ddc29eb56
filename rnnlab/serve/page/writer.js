// A writer: one panel's POST /api/write, drawn live. The server streams ndjson messages, each with a
// line's new points ({"line": i, "points": [[dx, dy, end], ...]}), then one {"done": true, ...} with the
// texts, which lines ended by themselves (the others hit the cap of points) and, when asked, the
// attention weights; or {"error": ...}.
// The Write and Your hand panels each own one.

import { ApiError, failure, ndjson, post } from "./api.js";
import { showError } from "./elements.js";
import { drawAttention } from "./heatmap.js";
import { LineDrawing, writingSize } from "./strokes.js";

// Writes into one panel's `output`, with its `error` and `status` lines and, where the panel has one,
// its `attention` box for the heat maps; `models` are the served ones (GET /api/models), `pen()` gives
// the pen's {pen, color} at any moment.
// A new request aborts the one before it (AbortController), and the old output stays on screen until
// the new one draws its first point, so typing does not flicker.
export function makeWriter({ output, error, status, attention, models, pen }) {
  let controller = null;
  let drawings = [];

  function clear() {
    output.replaceChildren();
    if (attention) attention.replaceChildren();
    drawings = [];
  }

  // Writes `body` (POST /api/write's fields); true once this request's writing is the one on the page,
  // false where it failed or a newer request replaced it.
  async function write(body) {
    const size = writingSize(models.find((m) => m.name === body.model));
    controller?.abort();
    controller = new AbortController();
    const signal = controller.signal, started = performance.now();
    let fresh = true; // the output still shows the previous writing
    const replaceOld = () => { if (fresh) { clear(); fresh = false; } };
    const lineAt = (i) => {
      replaceOld();
      while (drawings.length <= i) {
        const box = document.createElement("div");
        box.className = "line-box";
        output.append(box);
        drawings.push(new LineDrawing(box, { size, ...pen() }));
      }
      return drawings[i];
    };
    output.dataset.state = "writing";
    status.textContent = "writing…";
    try {
      const response = await post("/api/write", body, signal);
      for await (const message of ndjson(response)) {
        if (signal.aborted) return false;
        if (message.error !== undefined) throw new ApiError(message.error);
        if (message.points) lineAt(message.line).add(message.points);
        if (message.done) { replaceOld(); return finish(message, started); }
      }
      throw new ApiError("the server ended the stream before the writing was done");
    } catch (e) {
      const message = failure(e);
      if (message === null || signal.aborted) return false;
      showError(error, message);
      output.dataset.state = "error"; // the old writing stays, dimmed, under the message
      status.textContent = "";
      return false;
    }
  }

  // The stream's last message: the pen of the downloads, the status, the heat maps.
  function finish(message, started) {
    // the downloads' pen: the tallest line's height sets its width (writing.layout_page)
    const size = Math.max(0, ...drawings.map((d) => d.height())) || drawings[0]?.size;
    for (const drawing of drawings) drawing.finish(size);
    const cut = message.stopped.map((stopped, i) => (stopped ? null : i + 1)).filter((i) => i !== null);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    status.textContent = `${message.texts.length} line${message.texts.length === 1 ? "" : "s"} in ${seconds} s` +
      (cut.length ? `; line ${cut.join(", ")} reached the cap of points before its end and was cut there` : "");
    if (attention && message.attention) {
      message.attention.forEach((weights, i) => drawAttention(attention, message.texts[i], weights));
    }
    output.dataset.state = "done";
    output.dataset.writings = String(Number(output.dataset.writings || 0) + 1); // tests wait on a new one
    return true;
  }

  // The pen controls changed: every line on the page takes the new width and colour.
  function restyle() {
    const { pen: multiple, color } = pen();
    for (const drawing of drawings) drawing.setPen(multiple, color);
  }

  return { write, clear, restyle, abort: () => controller?.abort() };
}
