// The page's elements, found and made: every panel looks its controls up by the ids of index.html, draws
// SVG in SVG's namespace (createElement would make inert HTML elements named "path") and shows its errors
// in its own alert line.

const SVG_NS = "http://www.w3.org/2000/svg";

export const $ = (id) => document.getElementById(id);

// A new SVG element with `attributes`, appended to `parent` when one is given.
export function svgElement(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.append(element);
  return element;
}

// An error line shows `message`, or hides when there is none ("" clears it before a new request).
export function showError(element, message) {
  element.textContent = message || "";
  element.hidden = !message;
}
