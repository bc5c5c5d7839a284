// The guess kinds beyond choice and probability, and what every measured reveal carries:
// - estimate: a number on a log slider with a unit, scored by ratio (within 2× = close);
// - curve: pick the shape of one or more curves (flat / line / staircase / knee), drawn as icons;
// - source(): the line under a chart naming engine, version, model, hardware and honesty tag,
//   with the tag's sentence when the numbers were made on a CPU (or the server doesn't say).
// All text goes in through textContent (el, dom.js), never as HTML.
import { el, svg } from "./dom.js";

export const kinds = (() => {
  // --- numbers with units ----------------------------------------------------------------------
  const group = (x, digits = 0) => x.toLocaleString("en", { maximumFractionDigits: digits });
  const sig = (x) => (x >= 100 ? group(x) : x >= 10 ? group(x, 1) : group(x, 2));
  function format(value, unit) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (unit === "bytes") {
      const steps = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]];
      const [name, size] = steps.find(([, size]) => value >= size) || ["B", 1];
      return size === 1 ? `${group(value)} B` : `${sig(value / size)} ${name} (${group(value)} B)`;
    }
    const names = { s: "s", ms: "ms", tokens: "tokens", users: "users", conversations: "conversations" };
    return `${sig(value)} ${names[unit] || unit}`;
  }

  // --- estimate: a log slider ------------------------------------------------------------------
  const SLIDER = 1000; // slider positions between min and max, evenly spaced on a log scale
  function estimateGuess(box, step, value, commit) {
    const toValue = (pos) => step.min * (step.max / step.min) ** (pos / SLIDER);
    const toPos = (v) => Math.round((SLIDER * Math.log(v / step.min)) / Math.log(step.max / step.min));
    const slider = el("input", { type: "range", min: 0, max: SLIDER, step: 1, class: "guess-slider estimate-slider", "aria-label": `your estimate in ${step.unit}` });
    const number = el("input", { type: "number", min: step.min, max: step.max, step: "any", class: "guess-number estimate-number", "aria-label": `your estimate in ${step.unit}` });
    const shown = el("span", { class: "estimate-shown" });
    const set = (v, from) => {
      if (!(v > 0)) return;
      v = Math.min(step.max, Math.max(step.min, v));
      const rounded = Number(v.toPrecision(3));
      if (from !== slider) slider.value = toPos(rounded);
      if (from !== number) number.value = rounded;
      shown.textContent = format(rounded, step.unit);
      commit(rounded);
    };
    slider.addEventListener("input", () => set(toValue(Number(slider.value)), slider));
    number.addEventListener("input", () => number.value !== "" && set(Number(number.value), number));
    if (value !== undefined) { slider.value = toPos(value); number.value = value; shown.textContent = format(value, step.unit); }
    else slider.value = SLIDER / 2;
    box.append(el("div", { class: "guess estimate" },
      el("span", { class: "estimate-end", text: format(step.min, step.unit) }), slider,
      el("span", { class: "estimate-end", text: format(step.max, step.unit) }), number, el("span", { text: step.unit }), shown));
  }

  // Within 2× = close; the ratio is what counts, not the difference (docs/course.md §3).
  function score(guess, measured) {
    const ratio = Math.max(guess / measured, measured / guess);
    return { ratio, close: ratio <= 2, word: ratio <= 2 ? "close: within 2×" : ratio <= 10 ? `off by ${sig(ratio)}×` : `off by ${group(ratio)}×` };
  }

  // What kind of number a reveal is (the answer's `reveal`, web/live.py), in the words beside it:
  // measured just now, projected from measured steps, or a what-if that no guess is scored against.
  function revealLabel(reveal) {
    if (reveal?.kind === "projected") return `Projected from ${reveal.from_steps} measured steps: `;
    if (reveal?.kind === "what_if") return "What-if, not measured: ";
    return "Measured: ";
  }

  function estimateVerdict(step, guess, measured, reveal) {
    const label = revealLabel(reveal);
    if (!(measured > 0)) return el("div", { class: "verdict" }, el("strong", { text: label }), "nothing to compare with (see below)");
    const yours = el("div", { class: "yours" }, el("strong", { text: "Your estimate: " }), format(guess, step.unit));
    if (reveal && reveal.scored === false) {
      return el("div", { class: "verdict unscored" }, yours,
        el("div", { class: "answer" }, el("strong", { text: label }), format(measured, step.unit), " (not scored: nothing was measured to score against)"));
    }
    const s = score(guess, measured);
    return el("div", { class: "verdict " + (s.close ? "right" : "wrong") }, yours,
      el("div", { class: "answer" }, el("strong", { text: label }), format(measured, step.unit), ` (${s.word})`));
  }

  // An effect inside the noise of its repeats (the answer's `effect`, measure/noise.py): said
  // plainly, and the guess is not scored.
  function unclear(yours, effect) {
    const runs = effect ? ` (${effect.before.runs} and ${effect.after.runs} runs; ${effect.why})` : "";
    return el("div", { class: "verdict unclear" },
      el("div", { class: "yours" }, el("strong", { text: "Your guess: " }), yours ?? "–"),
      el("div", { class: "answer" }, el("strong", { text: "Can't tell on this machine now: " }),
        `the difference is within the spread of the repeated runs${runs}, so your guess is not scored. Measure again when the machine is quieter.`));
  }

  // A choice's verdict: the learner's pick beside the answer.
  function choiceVerdict(step, guess) {
    const right = guess === step.answer;
    return el("div", { class: "verdict " + (right ? "right" : "wrong") },
      el("div", { class: "yours" }, el("strong", { text: "Your guess: " }), step.choices[guess] ?? "–"),
      el("div", { class: "answer" }, el("strong", { text: right ? "Right: " : "The answer: " }), step.choices[step.answer]));
  }

  // --- curve: pick a shape -----------------------------------------------------------------------
  const SHAPES = {
    flat: [[2, 20], [38, 19]],
    line: [[2, 28], [38, 4]],
    staircase: [[2, 28], [10, 28], [10, 22], [18, 22], [18, 16], [26, 16], [26, 10], [34, 10], [34, 4], [38, 4]],
    knee: [[2, 27], [22, 25], [28, 18], [32, 6], [34, 2]],
  };
  function icon(shape) {
    const d = SHAPES[shape].map(([x, y], i) => `${i ? "L" : "M"}${x},${y}`).join(" ");
    return svg("svg", { viewBox: "0 0 40 30", class: "curve-icon", role: "img", "aria-label": shape },
      svg("path", { d: "M1,1 L1,29 L39,29", class: "curve-axes" }), svg("path", { d, class: "curve-line" }));
  }

  function curveGuess(box, step, value, commit) {
    const picks = Array.isArray(value) ? [...value] : step.curves.map(() => undefined);
    step.curves.forEach((curve, i) => {
      const row = el("div", { class: "curve-pick", role: "radiogroup", dataset: { curve: i } }, el("span", { class: "curve-label", text: curve.label }));
      Object.keys(SHAPES).forEach((shape) => {
        const input = el("input", { type: "radio", name: `curve-${step.id}-${i}`, value: shape, checked: picks[i] === shape });
        input.addEventListener("change", () => {
          picks[i] = shape;
          if (picks.every((p) => p !== undefined)) commit([...picks]);
        });
        row.append(el("label", { class: "curve-choice" }, input, icon(shape), el("span", { text: shape })));
      });
      box.append(row);
    });
  }

  // A curve's answer and the words the course also accepts for it (`also` in the YAML: the
  // staircase of Lesson 1 is, drawn per step, a line), so no lesson grades another's word wrong.
  const accepted = (c) => [c.answer, ...(c.also || [])];
  function curveVerdict(step, guess) {
    const right = step.curves.every((c, i) => accepted(c).includes(guess?.[i]));
    const out = el("div", { class: "verdict " + (right ? "right" : "wrong") });
    step.curves.forEach((c, i) => out.append(el("div", {},
      el("strong", { text: `${c.label}: ` }), `you picked ${guess?.[i] ?? "–"}; it is ${accepted(c).join(" (or ")}${c.also?.length ? ")" : ""}`,
      accepted(c).includes(guess?.[i]) ? " ✓" : "")));
    return out;
  }

  // --- where a number came from, and what it means elsewhere ------------------------------------
  const TAGS = { exact: "exact", shape: "shape", cause_differs: "cause differs" };
  function source(src, step, lesson, reveal) {
    const whatIf = reveal?.kind === "what_if";
    const tag = whatIf ? "what_if" : step.honesty;
    const out = el("div", { class: "source", dataset: { honesty: tag || "", reveal: reveal?.kind || "" } },
      el("span", { class: `honesty-tag tag-${tag}`, text: whatIf ? "what-if" : `honesty: ${TAGS[tag] || "–"}` }),
      el("span", { class: "source-line", text:
        `${src.engine} · ${src.version} · model ${src.model} · hardware: ${src.hardware}${src.where && src.where !== "in this process" ? ` · ${src.where}` : " · in this process"}` }));
    if (whatIf) {
      out.append(el("p", { class: "honesty-note", text: `A what-if, ${reveal.why}: not a measurement, and not scored.` }));
      return out;
    }
    const sentence = step.cpu_note || lesson.honesty?.[tag];
    if (sentence && src.cpu !== false) {
      const when = src.cpu ? "Measured on a CPU: " : "If this server runs on a CPU: ";
      out.append(el("p", { class: "honesty-note", text: when + sentence }));
    }
    return out;
  }

  // A few labelled horizontal bars (bytes, conversations): the longest fills the track.
  function barChart(container, rows, unit) {
    const top = Math.max(...rows.map((r) => r.value || 0), 1e-12);
    const chart = el("div", { class: "bars value-bars" });
    for (const r of rows) {
      chart.append(el("div", { class: "bar-row" + (r.measured ? " chosen" : "") },
        el("span", { class: "bar-token value-label", text: r.label }),
        el("span", { class: "bar-track" }, el("span", { class: "bar-fill", style: { width: `${Math.max(0.5, (100 * (r.value || 0)) / top)}%` } })),
        el("span", { class: "bar-prob value-number", text: format(r.value, unit).replace(/ \(.*\)$/, "") })));
    }
    container.append(chart);
    return chart;
  }

  // The connected backend's source, for reveals drawn without a measurement call of their own.
  const connected = (info) => info.source;

  return {
    format, score, source, connected, barChart, icon, unclear, revealLabel, choiceVerdict,
    estimate: { guess: estimateGuess, verdict: estimateVerdict },
    curve: { guess: curveGuess, verdict: curveVerdict },
  };
})();
