// The Write panel: text -> handwriting, written as you type. It owns the pen controls (width and colour,
// which Your hand's writing follows too), the style buttons (a preview of each of the model's styles),
// and the SVG and PNG downloads, which repeat the writing on screen from the same seed.

import { failure, post, randomSeed } from "./api.js";
import { $, showError } from "./elements.js";
import { drawPreview, writingSize } from "./strokes.js";
import { makeWriter } from "./writer.js";

const DEBOUNCE_MS = 400; // typing pauses this long before the text is written
const PNG_SCALE = 2; // PNG download: pixels per SVG pixel (sharp on high-density screens)
const FILE_NAME_CHARS = 30; // of the text, in a download's file name

// `style`: the picked style's index (null: none); `lastDone`: the request on screen, as JSON
const write = { writer: null, models: [], style: null, timer: null, lastDone: "" };

// The pen the Write and Your hand panels draw with: a multiple of draw.py's width, and a colour.
export function pen() {
  return { pen: Number($("stroke-width").value), color: $("color").value };
}

// Calls `listener` whenever the pen's width or colour changes (app.js restyles both panels' writing).
export function onPenChange(listener) {
  $("stroke-width").addEventListener("input", listener);
  $("color").addEventListener("input", listener);
}

// A bias slider's value, shown beside it as the server will read it.
export function showBias(id) {
  $(`${id}-value`).value = Number($(id).value).toFixed(2);
}

function writeBody() {
  if (!$("seed").value) $("seed").value = randomSeed(); // the seed is always explicit: downloads repeat it
  return {
    model: $("write-model").value,
    text: $("write-text").value.trimEnd(),
    bias: Number($("bias").value),
    style: write.style,
    strokes: null,
    seed: Number($("seed").value),
    attention: $("attention").checked,
  };
}

// Write now unless this exact request was already written (Shift+Enter alone changes nothing).
function writeNow() {
  clearTimeout(write.timer);
  const body = writeBody(), key = JSON.stringify(body);
  showError($("write-error"), "");
  if (!body.text.trim()) {
    write.writer.abort();
    write.writer.clear();
    $("write-output").dataset.state = "idle";
    $("write-status").textContent = "";
    write.lastDone = "";
    return;
  }
  if (key === write.lastDone) return;
  write.lastDone = "";
  write.writer.write(body).then((done) => {
    if (done) write.lastDone = key;
  });
}

function writeSoon() {
  clearTimeout(write.timer);
  write.timer = setTimeout(writeNow, DEBOUNCE_MS);
}

// The style buttons of the picked model: "none", then a preview of each style, drawn at the model's
// writing size so that they compare as the writing will.
function fillStyles() {
  const model = write.models.find((m) => m.name === $("write-model").value);
  const size = writingSize(model);
  const none = document.createElement("button");
  none.type = "button"; none.textContent = "none"; none.dataset.style = "none";
  none.title = "no style: the model's own average hand";
  const buttons = [none];
  (model?.styles || []).forEach((style, i) => {
    const button = document.createElement("button");
    button.type = "button"; button.dataset.style = String(i); button.title = style.text;
    drawPreview(button, style.offsets, size);
    buttons.push(button);
  });
  for (const button of buttons) {
    button.className = "style-option";
    button.setAttribute("role", "radio");
    button.addEventListener("click", () => pickStyle(button.dataset.style));
  }
  $("style-list").replaceChildren(...buttons);
  pickStyle("none", false);
}

function pickStyle(which, rewrite = true) {
  write.style = which === "none" ? null : Number(which);
  for (const button of $("style-list").children) {
    button.setAttribute("aria-checked", String(button.dataset.style === which));
  }
  if (rewrite) writeNow();
}

// The page as a file: the server draws it (POST /api/write.svg, draw.py's SVG), from the same request.
async function download(format) {
  const body = { ...writeBody(), attention: false, color: $("color").value, stroke_width: Number($("stroke-width").value) };
  const stem = body.text.slice(0, FILE_NAME_CHARS).replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "");
  const name = `rnnlab-${stem || "writing"}`;
  showError($("write-error"), "");
  try {
    const svg = await (await post("/api/write.svg", body)).text();
    const blob = new Blob([svg], { type: "image/svg+xml" });
    downloadBlob(format === "svg" ? blob : await rasterise(blob), `${name}.${format}`);
  } catch (e) {
    showError($("write-error"), failure(e));
  }
}

// The server's SVG drawn into a canvas on white: a PNG without a server endpoint for it.
async function rasterise(svgBlob) {
  const url = URL.createObjectURL(svgBlob);
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth * PNG_SCALE;
    canvas.height = image.naturalHeight * PNG_SCALE;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    return await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  } finally {
    URL.revokeObjectURL(url);
  }
}

// A download without a server round trip: a link to the blob, clicked; the URL lives long enough for
// the browser to start saving it.
function downloadBlob(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// Wires the panel to `served` (GET /api/models: the models and the server's limits); its writer.
export function setUpWrite(served) {
  write.models = served.models;
  write.writer = makeWriter({
    output: $("write-output"), error: $("write-error"), status: $("write-status"), attention: $("write-attention"),
    models: served.models, pen,
  });
  const text = $("write-text");
  if (served.limits.text_chars) text.maxLength = served.limits.text_chars;
  text.addEventListener("input", writeSoon);
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); writeNow(); }
  });
  $("bias").addEventListener("input", () => { showBias("bias"); writeSoon(); });
  $("seed").value = randomSeed();
  $("seed").addEventListener("change", writeNow);
  $("again").addEventListener("click", () => { $("seed").value = randomSeed(); writeNow(); });
  $("attention").addEventListener("change", writeNow);
  $("write-model").addEventListener("change", () => { fillStyles(); writeNow(); });
  $("stroke-width").addEventListener("input", () => { $("stroke-width-value").value = `${$("stroke-width").value}×`; });
  $("download-svg").addEventListener("click", () => download("svg"));
  $("download-png").addEventListener("click", () => download("png"));
  fillStyles();
  return write.writer;
}
