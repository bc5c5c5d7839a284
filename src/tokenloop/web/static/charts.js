// Drawing what the model gave, shared by the lesson and the lab: numbers as the learner reads
// them (probabilities, milliseconds, tokens quoted), probability bars and line charts.
import { el, svg } from "./dom.js";

export const pct = (p) => (p === null || p === undefined ? "–" : (100 * p).toFixed(1) + "%");
export const ms = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1)) + " ms";
// A token as the learner should see it: quoted, so a leading space or a newline is visible.
export const shown = (token) => JSON.stringify(token);

// Horizontal bars: one row per candidate, the token as text, the probability as width and number.
export function bars(container, candidates, { onPick, chosen, other, label } = {}) {
  container.replaceChildren();
  if (label) container.append(el("div", { class: "bars-label", text: label }));
  for (const c of candidates) {
    const row = el("div", {
      class: "bar-row" + (c.id === chosen ? " chosen" : "") + (onPick ? " pickable" : ""),
      dataset: { id: c.id, prob: c.prob }, role: onPick ? "button" : null, tabindex: onPick ? 0 : null,
      title: onPick ? "append this token instead and continue from here" : null,
    },
      el("span", { class: "bar-token", text: shown(c.token) }),
      el("span", { class: "bar-track" }, el("span", { class: "bar-fill", style: { width: `${Math.max(0.5, 100 * c.prob)}%` } })),
      el("span", { class: "bar-prob", text: pct(c.prob) }));
    if (onPick) {
      row.addEventListener("click", () => onPick(c));
      row.addEventListener("keydown", (e) => { if (e.key === "Enter") onPick(c); });
    }
    container.append(row);
  }
  if (other !== undefined) container.append(el("div", { class: "bar-other", text: `everything else: ${pct(other)}` }));
}

// A small line chart: series = [{name, points: [[x, y], ...], cls}], axes labelled. A point may
// carry its range as [x, y, low, high] (the median and the fastest and slowest repeat): whiskers.
export function lineChart(container, series, { xLabel, yLabel, width = 520, height = 240 } = {}) {
  const pad = { l: 52, r: 12, t: 12, b: 36 };
  const all = series.flatMap((s) => s.points);
  const xMax = Math.max(...all.map((p) => p[0]), 1), yMax = Math.max(...all.map((p) => p[3] ?? p[1]), 1e-9) * 1.08;
  const x = (v) => pad.l + (v / xMax) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / yMax) * (height - pad.t - pad.b);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  chart.append(svg("line", { x1: pad.l, y1: y(0), x2: width - pad.r, y2: y(0), class: "axis" }));
  chart.append(svg("line", { x1: pad.l, y1: y(0), x2: pad.l, y2: pad.t, class: "axis" }));
  for (const f of [0, 0.5, 1]) {
    chart.append(svg("text", { x: pad.l - 6, y: y(f * yMax / 1.08) + 4, class: "tick end", text: (f * yMax / 1.08).toPrecision(3) }));
    chart.append(svg("text", { x: x(f * xMax), y: height - pad.b + 16, class: "tick mid", text: Math.round(f * xMax) }));
  }
  if (xLabel) chart.append(svg("text", { x: (pad.l + width) / 2, y: height - 4, class: "tick mid", text: xLabel }));
  if (yLabel) chart.append(svg("text", { x: 4, y: pad.t + 2, class: "tick", text: yLabel }));
  series.forEach((s, i) => {
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    chart.append(svg("path", { d, class: `series s${i}` }));
    for (const p of s.points) chart.append(svg("circle", { cx: x(p[0]), cy: y(p[1]), r: 3, class: `dot s${i}` }));
    spread(chart, s.points, x, y, i);
    chart.append(svg("text", { x: pad.l + 12, y: pad.t + 14 + 16 * i, class: `legend s${i}`, text: s.name }));
  });
  container.replaceChildren(chart);
  return chart;
}

// Whiskers from each point's low to its high (the spread of its repeats), with short caps.
function spread(chart, points, x, y, i) {
  for (const [px, , low, high] of points) {
    if (low === undefined || high === undefined || high <= low) continue;
    const cx = x(px);
    chart.append(svg("path", { d: `M${cx - 4},${y(low)} H${cx + 4} M${cx},${y(low)} V${y(high)} M${cx - 4},${y(high)} H${cx + 4}`, class: `whisker s${i}` }));
  }
}

// [x, median, fastest, slowest] of repeated timings, for lineChart's whiskers.
export function withSpread(x, samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  return [x, mid, sorted[0], sorted[sorted.length - 1]];
}
