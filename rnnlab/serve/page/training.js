// The Training panel: a run's loss curves, train and valid against step, read from its metrics.jsonl as
// it grows. It polls GET /api/runs/<name>/metrics?since=<records read> while the panel is on screen and
// the page is visible, and stops otherwise.

import { failure, getJson } from "./api.js";
import { $, showError, svgElement } from "./elements.js";

const POLL_MS = 2000; // how often to ask for new metrics
// the chart, in the viewBox's units (index.html's 800 x 360), and its margins for the axes and legend
const W = 800, H = 360, LEFT = 58, RIGHT = 110, TOP = 16, BOTTOM = 40;
const MARK_BELOW = 40; // a curve of fewer points (valid is evaluated now and then) marks each one

// One run at a time: `since` counts the records read, and `token` changes with the run, so an answer
// for the previous run is dropped.
// `asking` holds one request at a time: two would both ask for the records after `since` and add them twice.
// `shown`: the panel is the open tab (app.js says so through showTraining).
const training = { name: null, since: 0, records: [], damaged: 0, timer: null, token: 0, asking: false, shown: false };

function pickRun(name) {
  clearTimeout(training.timer);
  Object.assign(training, { name, since: 0, records: [], damaged: 0, timer: null, token: training.token + 1, asking: false });
  showError($("training-error"), "");
  drawChart($("training-chart"), []);
  poll();
}

function polling() {
  return training.name && !document.hidden && training.shown;
}

async function poll() {
  clearTimeout(training.timer);
  if (!polling() || training.asking) return; // hidden: visibilitychange or the tab calls poll() again
  const token = training.token;
  training.asking = true;
  try {
    const answer = await getJson(`/api/runs/${encodeURIComponent(training.name)}/metrics?since=${training.since}`);
    if (token !== training.token) return;
    training.records.push(...answer.records);
    training.since = answer.next;
    training.damaged = answer.damaged;
    showError($("training-error"), "");
    drawChart($("training-chart"), training.records);
    showTrainingStatus();
  } catch (e) {
    if (token !== training.token) return;
    showError($("training-error"), failure(e));
  }
  if (token !== training.token) return; // another run was picked meanwhile: its own poll goes on
  training.asking = false;
  training.timer = setTimeout(poll, POLL_MS);
}

function showTrainingStatus() {
  const last = (split) => training.records.filter((r) => r.split === split).at(-1);
  const parts = [`${training.records.length} records`];
  for (const split of ["train", "valid"]) {
    const r = last(split);
    if (r) parts.push(`${split} ${r.loss.toFixed(3)} at step ${r.step}`);
  }
  if (training.damaged) parts.push(`${training.damaged} damaged lines skipped`);
  $("training-status").textContent = parts.join(" · ");
}

// "Nice" tick values (1, 2 or 5 times a power of ten) covering [lo, hi].
function ticks(lo, hi, count = 5) {
  const raw = (hi - lo) / count || 1, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const values = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) values.push(Number(v.toPrecision(12)));
  return values;
}

// Loss against step, train and valid, redrawn whole at every poll (a few thousand points at most).
function drawChart(svg, records) {
  svg.replaceChildren();
  const series = { train: [], valid: [] };
  for (const r of records) if (series[r.split] && Number.isFinite(r.loss)) series[r.split].push([r.step, r.loss]);
  const all = [...series.train, ...series.valid];
  if (!all.length) {
    svgElement("text", { x: W / 2, y: H / 2, class: "chart-note", "text-anchor": "middle" }, svg).textContent =
      training.name ? "waiting for the first losses…" : "";
    return;
  }
  const steps = all.map((p) => p[0]), losses = all.map((p) => p[1]);
  let [x0, x1] = [Math.min(...steps), Math.max(...steps)], [y0, y1] = [Math.min(...losses), Math.max(...losses)];
  if (x1 === x0) x1 = x0 + 1;
  const pad = (y1 - y0) * 0.05 || 0.5; // 5% above and below the curves; a flat curve gets ±0.5
  y0 -= pad; y1 += pad;
  const sx = (x) => LEFT + ((x - x0) / (x1 - x0)) * (W - LEFT - RIGHT);
  const sy = (y) => TOP + ((y1 - y) / (y1 - y0)) * (H - TOP - BOTTOM);
  const axes = svgElement("g", { class: "axes" }, svg);
  for (const v of ticks(y0, y1)) {
    svgElement("line", { x1: LEFT, x2: W - RIGHT, y1: sy(v), y2: sy(v), class: "grid" }, axes);
    svgElement("text", { x: LEFT - 6, y: sy(v), "text-anchor": "end", "dominant-baseline": "middle" }, axes).textContent = v;
  }
  for (const v of ticks(x0, x1)) {
    svgElement("line", { x1: sx(v), x2: sx(v), y1: TOP, y2: H - BOTTOM, class: "grid" }, axes);
    svgElement("text", { x: sx(v), y: H - BOTTOM + 16, "text-anchor": "middle" }, axes).textContent = v;
  }
  svgElement("text", { x: (LEFT + W - RIGHT) / 2, y: H - 6, "text-anchor": "middle" }, axes).textContent = "step";
  svgElement("text", { x: 14, y: (TOP + H - BOTTOM) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(TOP + H - BOTTOM) / 2})` }, axes).textContent = "loss";
  Object.entries(series).forEach(([split, points], i) => {
    if (!points.length) return;
    const xy = points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
    svgElement("polyline", { points: xy.join(" "), class: `curve ${split}`, "data-split": split }, svg);
    if (points.length < MARK_BELOW) {
      for (const [x, y] of points) svgElement("circle", { cx: sx(x), cy: sy(y), r: 3, class: `marker ${split}` }, svg);
    }
    const ly = TOP + 10 + i * 20; // the legend: one row per split, right of the plot
    svgElement("line", { x1: W - RIGHT + 14, x2: W - RIGHT + 36, y1: ly, y2: ly, class: `curve ${split}` }, svg);
    svgElement("text", { x: W - RIGHT + 42, y: ly, "dominant-baseline": "middle", class: "legend" }, svg).textContent = split;
  });
}

// The panel is on screen or not: on screen, the first run is picked the first time, and polling resumes.
export function showTraining(shown) {
  training.shown = shown;
  if (!shown) return; // the poll on its timer sees it and stops
  if (training.name === null && $("training-model").value) pickRun($("training-model").value);
  else poll();
}

export function setUpTraining() {
  $("training-model").addEventListener("change", () => pickRun($("training-model").value));
  document.addEventListener("visibilitychange", poll); // hidden: poll() stops; shown: it resumes
}
