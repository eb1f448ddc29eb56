// rnnlab serve: the page's entry (index.html loads this module; it imports the rest). Five panels over the
// server's HTTP API and nothing else (no build step, no libraries): Write (text -> handwriting, drawn as
// the points stream in), Your hand (a line drawn here primes the model's hand), Read (a line written here
// is read as it grows), Text (a language model samples) and Training (loss curves as a run trains). Every
// error is the server's one line ({"error": "..."}), shown as given in the panel that asked.
//
//   app.js       tabs, GET /api/models, the model lists; wires the panels
//   write.js     the Write panel, its pen, styles and downloads     hand.js      the Your hand panel
//   read.js      the Read panel                                     pad.js       a canvas to draw a line on
//   text.js      the Text panel                                     training.js  the Training panel
//   writer.js    POST /api/write, drawn live into a panel           heatmap.js   the attention heat map
//   strokes.js   offsets -> SVG paths, draw.py's layout             api.js       requests and their errors
//   elements.js  elements by id, SVG elements, error lines

import { failure, getJson } from "./api.js";
import { $, showError } from "./elements.js";
import { redrawHand, setUpHand } from "./hand.js";
import { redrawRead, setUpRead } from "./read.js";
import { setUpText } from "./text.js";
import { setUpTraining, showTraining } from "./training.js";
import { onPenChange, setUpWrite } from "./write.js";

const TABS = ["write", "hand", "read", "text", "training"];

function showTab(name) {
  const open = TABS.includes(name) ? name : "write";
  for (const tab of TABS) {
    $(`panel-${tab}`).hidden = tab !== open;
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === open));
  }
  if (location.hash !== `#${open}`) history.replaceState(null, "", `#${open}`);
  if (open === "hand") redrawHand();
  if (open === "read") redrawRead();
  showTraining(open === "training");
}

// A model select lists the served models of one kind; false when there is none.
function fillModels(select, kind, models) {
  const listed = models.filter(kind);
  select.replaceChildren(...listed.map((m) => {
    const option = new Option(m.step == null ? m.name : `${m.name} (step ${m.step})`, m.name);
    if (m.parameters != null) option.title = `${m.task}, ${m.parameters.toLocaleString("en")} parameters`;
    return option;
  }));
  return listed.length > 0;
}

// A panel without a model of its kind shows how to serve one instead of its controls.
function offerPanel(name, available) {
  $(`${name}-empty`).hidden = available;
  $(`${name}-body`).hidden = !available;
}

async function start() {
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
  const served = { models: [], limits: {} }; // what the server serves; empty where it could not say
  try {
    Object.assign(served, await getJson("/api/models"));
  } catch (e) {
    showError($("load-error"), `could not list the models: ${failure(e)}`);
  }
  const writes = (m) => m.kind === "handwriting";
  offerPanel("write", fillModels($("write-model"), writes, served.models));
  offerPanel("hand", fillModels($("hand-model"), writes, served.models));
  offerPanel("read", fillModels($("read-model"), (m) => m.kind === "reads", served.models));
  offerPanel("text", fillModels($("sample-model"), (m) => m.kind === "text", served.models));
  offerPanel("training", fillModels($("training-model"), (m) => m.metrics, served.models));
  const writers = [setUpWrite(served), setUpHand(served)];
  onPenChange(() => { for (const writer of writers) writer.restyle(); }); // one pen for both panels
  setUpRead(served);
  setUpText(served);
  setUpTraining();
  document.body.dataset.ready = "true"; // for tests: the models are listed and the controls wired
  showTab(location.hash.slice(1));
}

start();
