// The Text panel: a char or word language model samples text (POST /api/sample), which streams in as
// plain text, token by token, until it is done or stopped.

import { failure, post, textChunks } from "./api.js";
import { $, showError } from "./elements.js";

// the sample being streamed: aborting it is the stop button, and a new sample aborts the old one
const text = { controller: null };

// A number field's value, or `fallback` where it is empty (the server's default for that field).
function numberOr(id, fallback) {
  const value = $(id).value;
  return value === "" ? fallback : Number(value);
}

async function sampleText() {
  text.controller?.abort();
  const controller = (text.controller = new AbortController());
  const output = $("sample-output");
  const body = {
    model: $("sample-model").value, prime: $("sample-prime").value, length: numberOr("length", 300),
    temperature: numberOr("temperature", 1), top_k: numberOr("top-k", 0), top_p: numberOr("top-p", 1),
    seed: numberOr("sample-seed", null),
  };
  showError($("sample-error"), "");
  output.replaceChildren();
  output.dataset.state = "sampling";
  $("sample-stop").disabled = false;
  try {
    const response = await post("/api/sample", body, controller.signal);
    const sampled = output.appendChild(document.createTextNode("")); // appendData: no re-layout of the whole text
    for await (const chunk of textChunks(response)) sampled.appendData(chunk);
    output.dataset.state = "done";
  } catch (e) {
    const message = failure(e);
    output.dataset.state = message === null ? "stopped" : "error";
    if (message !== null && text.controller === controller) showError($("sample-error"), message);
  } finally {
    if (text.controller === controller) $("sample-stop").disabled = true;
  }
}

// Wires the panel to `served` (GET /api/models), for the longest sample the server takes.
export function setUpText(served) {
  $("length").max = served.limits.length || "";
  $("sample-go").addEventListener("click", sampleText);
  $("sample-stop").addEventListener("click", () => text.controller?.abort());
  $("sample-prime").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sampleText(); }
  });
}
