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

// A tick as the learner reads it: grouped digits, never scientific notation ("9.48e+3"), in the
// axis's unit: ms (or s once the axis passes 10 s), bytes as B/KiB/MiB/GiB, a plain number else.
// `top` is the axis's largest value, so every tick of one axis shares its unit and decimals.
export function tick(value, unit, top = value) {
  const group = (x, digits) => x.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  const digitsFor = (t) => (t >= 100 ? 0 : t >= 10 ? 1 : t >= 1 ? 2 : Math.min(12, 2 - Math.floor(Math.log10(t || 1))));
  if (unit === "ms") return top >= 10_000 ? `${group(value / 1000, digitsFor(top / 1000))} s` : `${group(value, digitsFor(top))} ms`;
  if (unit === "s") return `${group(value, digitsFor(top))} s`;
  if (unit === "bytes") {
    const [name, size] = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]].find(([, size]) => top >= size) || ["B", 1];
    return `${group(value / size, digitsFor(top / size))} ${name}`;
  }
  return group(value, digitsFor(top));
}

// The unit a chart's y label names ("ms per step" → ms), for its ticks.
const unitOf = (label = "") => (/^ms\b/.test(label) ? "ms" : /^s\b|seconds/.test(label) ? "s" : /bytes/.test(label) ? "bytes" : "");

// A small line chart: series = [{name, points: [[x, y], ...], cls}], axes labelled. A point may
// carry its range as [x, y, low, high] (the median and the fastest and slowest repeat): whiskers.
// A chart whose every value is exactly zero is not drawn on a meaningless scale: it is a badge saying so.
export function lineChart(container, series, { xLabel, yLabel, yUnit, width = 520, height = 240, zero = "no change: 0 exactly" } = {}) {
  const all = series.flatMap((s) => s.points);
  if (all.length && all.every((p) => p[1] === 0)) {
    const badge = el("p", { class: "zero-badge", text: `${zero}${yLabel ? ` (${yLabel}, every point)` : ""}` });
    container.replaceChildren(badge);
    return badge;
  }
  const unit = yUnit ?? unitOf(yLabel);
  const xMax = Math.max(...all.map((p) => p[0]), 1), yTop = Math.max(...all.map((p) => p[3] ?? p[1]), 1e-9);
  const yMax = yTop * 1.08;
  const ticks = [0, 0.5, 1].map((f) => [f * yTop, tick(f * yTop, unit, yTop)]);
  // Room on the left for the longest tick (11 px text, about 6.5 px a character): nothing clipped.
  const pad = { l: Math.max(52, 12 + 6.5 * Math.max(...ticks.map(([, t]) => t.length))), r: 12, t: 12, b: 36 };
  const x = (v) => pad.l + (v / xMax) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / yMax) * (height - pad.t - pad.b);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  chart.append(svg("line", { x1: pad.l, y1: y(0), x2: width - pad.r, y2: y(0), class: "axis" }));
  chart.append(svg("line", { x1: pad.l, y1: y(0), x2: pad.l, y2: pad.t, class: "axis" }));
  for (const [value, text] of ticks) chart.append(svg("text", { x: pad.l - 6, y: y(value) + 4, class: "tick end", text }));
  for (const f of [0, 0.5, 1]) {
    chart.append(svg("text", { x: x(f * xMax), y: height - pad.b + 16, class: "tick mid", text: tick(Math.round(f * xMax), "", 100) }));
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
