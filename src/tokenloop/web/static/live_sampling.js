// Lesson 6's live reveals: the draw. Each asks the app to compute on the model in this process
// (web/draws.py), draws the numbers that came back, scores the guess against them, and names
// where they came from (kinds.source). Same shape as live_kv.js, whose measuredReveal it uses.
import { el } from "./dom.js";
import { api } from "./api.js";
import { kinds as K } from "./kinds.js";
import { measuredReveal } from "./live_kv.js";

const pct = (p) => `${(100 * p).toFixed(p > 0 && p < 0.001 ? 4 : 1)}%`;
const tok = (t) => JSON.stringify(t);
const says = (box, text) => box.append(el("p", { class: "live", text }));
const chartBox = (box, name) => { const c = el("div", { class: `chart-box live-chart chart-${name}` }); box.append(c); return c; };
const post = (path) => (query) => api(path + query, {});

// A probability guess (0–100 %) against a measured share: close within 2× or 5 points.
function probabilityVerdict(guess, measured, what) {
  const g = (guess ?? 0) / 100;
  const close = Math.abs(g - measured) <= 0.05 || (g > 0 && measured > 0 && Math.max(g / measured, measured / g) <= 2);
  return el("div", { class: "verdict " + (close ? "right" : "wrong") },
    el("div", { class: "yours" }, el("strong", { text: "Your guess: " }), `${guess ?? "–"}%`),
    el("div", { class: "answer" }, el("strong", { text: "Measured: " }), `${pct(measured)} ${what}`, close ? " (close: within 2× or 5 points)" : " (more than 2× off)"));
}

export const sampling = {
  // Step 1: the forward run at two temperatures; every logit compared; one seeded draw at each.
  sampling_same_forward(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "sampling_same_forward", label: "Running the forward pass at two temperatures",
      call: post("/api/live/sampling_same_forward"), draw: (out, r) => {
        const [a, b] = r.runs;
        const table = el("table", { class: "sampling-table" },
          el("tr", {}, el("th", { text: "token" }), el("th", { text: `T ${a.temperature}` }), el("th", { text: `T ${b.temperature}` })),
          ...a.top.map((c, i) => el("tr", {}, el("td", { text: tok(c.token) }), el("td", { text: pct(c.prob) }), el("td", { text: pct(b.top[i].prob) }))));
        out.append(table);
        says(out, `The forward pass ran twice on ${tok(r.prompt)}, once for each temperature: the largest difference over all ` +
          `${r.vocab_size.toLocaleString("en")} logits was ${r.max_abs_diff}. The top ${a.top.length} above are the model's own probabilities, ` +
          `the same in both runs. Only the draw (seed ${r.seed}) differed: T ${a.temperature} drew ${tok(a.drawn.token)} (${pct(a.drawn.prob)}), ` +
          `T ${b.temperature} drew ${tok(b.drawn.token)} (${pct(b.drawn.prob)}). Computed on ${r.on}.`);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 2: the favourite's probability as softmax(logits / T), at T 0.5, 1 and 2.
  sampling_temperature(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "sampling_temperature", label: "Computing softmax(logits / T) over the vocabulary",
      call: post("/api/live/sampling_temperature"), draw: (out, r) => {
        const hot = r.points.find((p) => p.temperature === 2);
        out.append(probabilityVerdict(ctx.guess, hot.prob, `for ${tok(r.token)} at T 2`));
        K.barChart(chartBox(out, "temperature"), r.points.map((p) => ({ label: `T ${p.temperature}`, value: 100 * p.prob, measured: p.temperature === 2 })), "%");
        says(out, `${tok(r.token)}: ` + r.points.map((p) => `${pct(p.prob)} at T ${p.temperature} (top 5 together ${pct(p.top_mass)})`).join(", ") +
          `, over all ${r.vocab_size.toLocaleString("en")} tokens. Computed on ${r.on}.`);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 3: seeded draws at T 1, counted outside the top 5, beside 1 − the top 5's mass.
  sampling_outside_top(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "sampling_outside_top", label: "Drawing seeded tokens at T 1",
      call: post("/api/live/sampling_outside_top"), draw: (out, r) => {
        out.append(probabilityVerdict(ctx.guess, r.outside_share, `of ${r.draws} draws outside the top ${r.k}`));
        says(out, `${r.outside} of ${r.draws} draws (seeds ${r.seeds}, T ${r.temperature}) landed outside the top ${r.k}, whose ` +
          `probabilities add up to ${pct(r.top_mass)}: 1 − that is ${pct(r.expected_outside)}, what the count should come near. ` +
          `The rarest draw was ${tok(r.rarest.token)} at ${pct(r.rarest.prob)}. Computed on ${r.on}.`);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 4: what top_p keeps, and each survivor's probability before and after renormalising.
  sampling_top_p(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "sampling_top_p", label: "Applying top_p to the distribution",
      call: post("/api/live/sampling_top_p"), draw: (out, r) => {
        out.append(K.estimate.verdict(step, ctx.guess, r.eligible, r.reveal));
        K.barChart(chartBox(out, "top-p"), r.kept.map((c) => ({ label: `${tok(c.token)} (raw ${pct(c.raw)})`, value: 100 * c.prob })), "%");
        says(out, `top_p ${r.top_p} kept ${r.eligible} of ${r.vocab_size.toLocaleString("en")} tokens (their raw probabilities add up to ` +
          `${pct(r.kept_raw_mass)}); renormalised, ${tok(r.kept[0].token)} goes from ${pct(r.kept[0].raw)} to ${pct(r.kept[0].prob)}. ` +
          `Computed on ${r.on}.`);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 5: greedy alone against the same prompt inside a padded batch; graded by the measurement
  // (bit-identical logits make the first choice right on this machine).
  sampling_batch(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "sampling_batch", label: "Running the prompt alone and in a batch of 8",
      call: post("/api/live/sampling_batch"), draw: (out, r) => {
        out.append(K.choiceVerdict({ ...step, answer: r.max_abs_diff > 0 ? 1 : 0 }, ctx.guess));
        const path = r.same_path
          ? `the greedy path was the same for all ${r.steps} tokens`
          : `the greedy paths parted at token ${r.first_divergence + 1}`;
        says(out, `Alone and as one row of a padded batch of ${r.batch}: the first step's logits differed by at most ${r.max_abs_diff}, ` +
          `${path}. Alone: ${tok(r.alone_text)}; in the batch: ${tok(r.batched_text)}. Computed on ${r.on}; ` +
          `on a server, engines offer batch-invariant kernels for this (vLLM: VLLM_BATCH_INVARIANT=1).`);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },
};
