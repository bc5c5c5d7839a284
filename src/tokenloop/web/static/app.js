// Shared by the lesson and the lab: building elements, calling the API, drawing bars and charts.
// Every piece of model or prompt text goes in through textContent (via el() or append()),
// never as HTML: a model can emit "<script>" and it must show as text.
"use strict";

const TL = (() => {
  // el("div", {class: "x", text: "hi", onclick: f}, child, ...): a DOM node, text always as text.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "style") Object.assign(node.style, value); // CSSOM, allowed by the page's CSP
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  const pct = (p) => (p === null || p === undefined ? "–" : (100 * p).toFixed(1) + "%");
  const ms = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1)) + " ms";
  // A token as the learner should see it: quoted, so a leading space or a newline is visible.
  const shown = (token) => JSON.stringify(token);

  class ApiError extends Error {}

  async function api(path, body, options = {}) {
    const init = body === undefined ? { method: options.method || "GET" } : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    let response;
    try {
      response = await fetch(path, { ...init, credentials: "same-origin", signal: options.signal });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError("the tokenloop app did not answer: is `tokenloop lesson` still running?");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(data.error || `${response.status} ${response.statusText}`);
    return data;
  }

  // POST that answers server-sent events; onEvent(name, data) per event. Resolves at the end.
  async function stream(path, body, onEvent, signal) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        credentials: "same-origin", signal,
      });
    } catch (error) {
      if (error.name === "AbortError") return;
      throw new ApiError("the tokenloop app did not answer: is `tokenloop lesson` still running?");
    }
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new ApiError(data.error || `${response.status} ${response.statusText}`);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      let chunk;
      try { chunk = await reader.read(); } catch (error) { if (error.name === "AbortError") return; throw error; }
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        const parsed = JSON.parse(data);
        if (name === "error") throw new ApiError(parsed.error);
        onEvent(name, parsed);
      }
    }
  }

  // Horizontal bars: one row per candidate, the token as text, the probability as width and number.
  function bars(container, candidates, { onPick, chosen, other, label } = {}) {
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

  // A small line chart: series = [{name, points: [[x, y], ...], cls}], axes labelled.
  function lineChart(container, series, { xLabel, yLabel, width = 520, height = 240 } = {}) {
    const pad = { l: 52, r: 12, t: 12, b: 36 };
    const all = series.flatMap((s) => s.points);
    const xMax = Math.max(...all.map((p) => p[0]), 1), yMax = Math.max(...all.map((p) => p[1]), 1e-9) * 1.08;
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
      chart.append(svg("text", { x: pad.l + 12, y: pad.t + 14 + 16 * i, class: `legend s${i}`, text: s.name }));
    });
    container.replaceChildren(chart);
    return chart;
  }

  async function copy(text, button) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = el("textarea", { class: "offscreen" });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    const before = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = before; }, 1200);
  }

  // Progress kept in this browser, so a reload keeps guesses, quiz answers and the lab's run.
  const store = {
    load(key) { try { return JSON.parse(localStorage.getItem(key)) || {}; } catch { return {}; } },
    save(key, value) { localStorage.setItem(key, JSON.stringify(value)); },
  };

  function status(node, message, kind = "error") {
    node.textContent = message || "";
    node.className = "status " + (message ? kind : "");
  }

  async function header() {
    const info = await api("/api/info");
    const badge = document.getElementById("model-badge");
    if (badge) badge.textContent = `connected: ${info.model} (${info.backend})`;
    return info;
  }

  return { el, svg, pct, ms, shown, api, stream, bars, lineChart, copy, store, status, header, ApiError };
})();
