// The attention heat map under the Write panel's writing: where the soft window looked in the text at
// each of the pen's points, one canvas per line, the screen's copy of draw.plot_attention.

const LABEL_PX = 18; // the column of characters at the left
const ROW_PX = 11; // one character's row: fits the 10 px label font
const WIDE_PX = 900; // about the writing's width: the points share it, at 1 to 4 pixels each
const PAPER = "#fff";
const LABEL_INK = "#333";

// Per line a canvas: its characters down (and "past the end" as the last row, whose rise ends the line),
// the pen's points across. Each column is divided by its largest weight, as draw.plot_attention does,
// so the peak shows at every point whatever the window's scale.
export function drawAttention(parent, text, weights) {
  const rows = text.length + 1, columns = weights.length;
  const width = Math.max(1, Math.min(4, Math.floor(WIDE_PX / Math.max(columns, 1))));
  const canvas = document.createElement("canvas");
  canvas.className = "heatmap";
  canvas.width = LABEL_PX + columns * width;
  canvas.height = rows * ROW_PX;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  weights.forEach((column, x) => {
    const peak = Math.max(...column) || 1;
    column.forEach((w, y) => {
      ctx.fillStyle = heat(w / peak);
      ctx.fillRect(LABEL_PX + x * width, y * ROW_PX, width, ROW_PX);
    });
  });
  ctx.fillStyle = LABEL_INK;
  ctx.font = "10px ui-monospace, monospace";
  ctx.textBaseline = "middle";
  [...text, "·"].forEach((char, y) => ctx.fillText(char, 4, (y + 0.5) * ROW_PX));
  canvas.title = `attention over "${text}": characters down, points across`;
  parent.append(canvas);
}

// 0 -> paper, 1 -> ink: a light-to-dark blue ramp, readable beside the writing
function heat(v) {
  const t = Math.max(0, Math.min(1, v));
  const mix = (a, b) => Math.round(a + (b - a) * t);
  return `rgb(${mix(247, 16)}, ${mix(249, 42)}, ${mix(252, 120)})`;
}
