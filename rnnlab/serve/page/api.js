// Talking to rnnlab serve's HTTP API: requests and their seeds, the bodies that stream back (plain text
// from /api/sample, ndjson from /api/write), and the one line a panel shows when a request fails. Every
// error the server gives is {"error": "one line"} and is shown as it is; the page never rewords it.

export class ApiError extends Error {} // the server's {"error": "one line"}, shown as it is

// The server's line from a failed response's body, or its status where the body is not the server's JSON.
async function errorLine(response) {
  const text = await response.text();
  try {
    const { error } = JSON.parse(text);
    if (typeof error === "string") return error;
  } catch { /* not the server's JSON (a proxy's page?): fall back to the status below */ }
  return `${response.status} ${response.statusText}`.trim();
}

// A POST of `body` as JSON; the response, whose body is still to read (it may stream).
export async function post(path, body, signal) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal,
  });
  if (!response.ok) throw new ApiError(await errorLine(response));
  return response;
}

// A GET whose answer is one JSON document (/api/models, a run's metrics).
export async function getJson(path) {
  const response = await fetch(path);
  if (!response.ok) throw new ApiError(await errorLine(response));
  return response.json();
}

// A response's body as text, chunk by chunk as it arrives (a chunk may end in the middle of a line).
export async function* textChunks(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    yield value;
  }
}

// The lines of an application/x-ndjson body as they arrive: chunks split anywhere, so a partial last
// line waits in `pending` for the rest.
export async function* ndjson(response) {
  let pending = "";
  for await (const chunk of textChunks(response)) {
    const lines = (pending + chunk).split("\n");
    pending = lines.pop();
    for (const line of lines) if (line.trim()) yield JSON.parse(line);
  }
  if (pending.trim()) yield JSON.parse(pending);
}

// A fresh seed for a request body (the server takes 0 to 2**63 - 1): below 2**31, so it reads easily in a
// number field and is exact in any JSON reader.
export function randomSeed() {
  return Math.floor(Math.random() * 2 ** 31);
}

// The message for a failed request; null for one we aborted ourselves (a newer request replaced it).
export function failure(error) {
  if (error.name === "AbortError") return null;
  if (error instanceof ApiError) return error.message;
  if (error instanceof TypeError) return "the server did not answer: is rnnlab serve still running?";
  return String(error.message || error);
}
