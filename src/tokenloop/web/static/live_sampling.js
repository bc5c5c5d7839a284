// Lesson 6's live reveals: the draw. Each asks the app to compute, on the connected server or on
// the model in this process (web/draws.py), draws the numbers that came back, scores the guess
// against them, and names where they came from (r.on, kinds.source). Steps 3 and 5 on a server
// first show their plan and send nothing until Start is pressed (consent). Same shape as
// live_kv.js, whose measuredReveal it uses.
import { el } from "./dom.js";
import { api } from "./api.js";
import { kinds as K } from "./kinds.js";
import { PAGE, measuredReveal } from "./live_kv.js";

const pct = (p) => `${(100 * p).toFixed(p > 0 && p < 0.001 ? 4 : 1)}%`;
const tok = (t) => JSON.stringify(t);
const says = (box, text) => box.append(el("p", { class: "live", text }));
const chartBox = (box, name) => { const c = el("div", { class: `chart-box live-chart chart-${name}` }); box.append(c); return c; };
const post = (path) => (query) => api(path + query, {});
// What a number was computed over: the whole vocabulary in this process, or a server's top logprobs.
const over = (r) => r.vocab_size ? `all ${r.vocab_size.toLocaleString("en")} logits` : `the top ${r.compared ?? r.returned} logprobs the server returned`;
// Which engine made the numbers, and why a server did not where it could not.
const made = (r) => `Computed on ${r.on}.` + (r.why ? ` Why not on the server: ${r.why}.` : "") + (r.note ? ` (${r.note}.)` : "");

// Steps that send several requests to a server: the plan, then a click (and, for a server that is
// not on this machine, "I run this server") before anything is sent; then the result drawn.
export function withConsent(path, key, ctx, draw) {
  return (out, r) => {
    if (!r.needs_consent) return draw(out, r);
    const remote = el("input", { type: "checkbox", class: "consent-remote" });
    const start = el("button", { class: "consent-start", text: "Start" });
    const said = el("p", { class: "status" });
    out.append(el("div", { class: "consent card-inner" },
      el("p", { class: "consent-plan", text: `On ${r.on}, this step ${r.plan.text}.` }),
      ...(r.loopback ? [] : [el("label", { class: "choice" }, remote, " I run this server")]), start, said));
    start.addEventListener("click", async () => {
      start.disabled = true;
      said.textContent = "Running the plan…";
      try {
        const done = await api(`${path}?lesson=${encodeURIComponent(ctx.lesson.id)}&page=${PAGE}`, { consent: true, remote: remote.checked });
        ctx.keep(key, done);
        out.replaceChildren();
        draw(out, done);
      } catch (error) {
        said.textContent = error.message;
        start.disabled = false;
      }
    });
  };
}

// A probability guess (0–100 %) against a measured share: close within 2× or 5 points.
function probabilityVerdict(guess, measured, what) {
  const g = (guess ?? 0) / 100;
  const close = Math.abs(g - measured) <= 0.05 || (g > 0 && measured > 0 && Math.max(g / measured, measured / g) <= 2);
  return el("div", { class: "verdict " + (close ? "right" : "wrong") },
    el("div", { class: "yours" }, el("strong", { text: "Your guess: " }), `${guess ?? "–"}%`),
    el("div", { class: "answer" }, el("strong", { text: "Measured: " }), `${pct(measured)} ${what}`, close ? " (close: within 2× or 5 points)" : " (more than 2× off)"));
}

// Step 4 when top_p kept every candidate the server returned: the count is only a floor (raised by
// the mass argument, r.floor), so a guess at or above it can't be scored; one below half of it is wrong.
function floorVerdict(guess, r) {
  const below = guess != null && guess < r.floor / 2;
  return el("div", { class: "verdict " + (below ? "wrong" : "unscored") },
    el("div", { class: "yours" }, el("strong", { text: "Your estimate: " }), `${guess ?? "–"} tokens`),
    el("div", { class: "answer" }, el("strong", { text: "Measured: " }), `at least ${r.floor} tokens`,
      below ? " (your estimate is below even that)" : " (not scored: the server shows only its top few, so the true count can be higher)"));
}

// Why step 4's count is a floor, in words: the cap, and what the kept mass proves beyond it.
function floorWhy(r) {
  const capped = r.cap ? `its cap (vLLM's --max-logprobs) is ${r.cap}` : `it returned ${r.returned}`;
  const smallest = Math.min(...r.kept.map((c) => c.raw));
  const more = r.floor > r.eligible
    ? ` They hold ${pct(r.kept_raw_mass)} of the probability, and no token below them has more than ${pct(smallest)}, so top_p ${r.top_p} needs at least ${r.floor - r.eligible} more to reach ${pct(r.top_p)}: at least ${r.floor} in all.`
    : "";
  return ` The server returns only its top ${r.returned} logprobs (${capped}), and top_p kept every one of them.${more}`;
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
        const same = r.mode === "processed"
          ? `The numbers above are after temperature (processed logprobs), so they differ by up to ${r.max_abs_diff.toFixed(3)} in logprob: that is the sampler's work, not the model's.`
          : `The top ${a.top.length} above are the model's own probabilities, the same in both runs.`;
        says(out, `The same prompt ${tok(r.prompt)} at each temperature: the largest difference over ${over(r)} was ${r.max_abs_diff}. ${same} ` +
          `The draw (seed ${r.seed}): T ${a.temperature} drew ${tok(a.drawn.token)} (${pct(a.drawn.prob)}), ` +
          `T ${b.temperature} drew ${tok(b.drawn.token)} (${pct(b.drawn.prob)}). ${made(r)}`);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 2: the favourite's probability as softmax(logits / T), at T 0.5, 1 and 2.
  sampling_temperature(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "sampling_temperature", label: "Computing softmax(logits / T) over the vocabulary",
      call: post("/api/live/sampling_temperature"), draw: (out, r) => {
        const hot = r.points.find((p) => p.temperature === 2);
        out.append(probabilityVerdict(ctx.guess, hot.prob ?? 0, `for ${tok(r.token)} at T 2`));
        K.barChart(chartBox(out, "temperature"), r.points.map((p) => ({ label: `T ${p.temperature}`, value: 100 * (p.prob ?? 0), measured: p.temperature === 2 })), "%");
        const whole = r.vocab_size ? `, over all ${r.vocab_size.toLocaleString("en")} tokens` : ", from the server's post-temperature logprobs";
        says(out, `${tok(r.token)}: ` + r.points.map((p) => `${p.prob == null ? "below the top returned" : pct(p.prob)} at T ${p.temperature} (top 5 together ${pct(p.top_mass)})`).join(", ") +
          `${whole}. ${made(r)}`);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 3: seeded draws at T 1, counted outside the top 5, beside 1 − the top 5's mass.
  sampling_outside_top(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "sampling_outside_top", label: "Drawing seeded tokens at T 1",
      call: post("/api/live/sampling_outside_top"), draw: withConsent("/api/live/sampling_outside_top", "sampling_outside_top", ctx, (out, r) => {
        out.append(probabilityVerdict(ctx.guess, r.outside_share, `of ${r.draws} draws outside the top ${r.k}`));
        says(out, `${r.outside} of ${r.draws} draws (seeds ${r.seeds}, T ${r.temperature}) landed outside the top ${r.k}, whose ` +
          `probabilities add up to ${pct(r.top_mass)}: 1 − that is ${pct(r.expected_outside)}, what the count should come near. ` +
          `The rarest draw was ${tok(r.rarest.token)} at ${pct(r.rarest.prob)}. ${made(r)}` +
          (r.stopped ? ` ${r.stopped}.` : ""));
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      }) });
  },

  // Step 4: what top_p keeps, and each survivor's probability before and after renormalising.
  sampling_top_p(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "sampling_top_p", label: "Applying top_p to the distribution",
      call: post("/api/live/sampling_top_p"), draw: (out, r) => {
        out.append(r.at_least ? floorVerdict(ctx.guess, r) : K.estimate.verdict(step, ctx.guess, r.eligible, r.reveal));
        K.barChart(chartBox(out, "top-p"), r.kept.map((c) => ({ label: `${tok(c.token)} (raw ${pct(c.raw)})`, value: 100 * c.prob })), "%");
        const of = r.vocab_size ? `${r.vocab_size.toLocaleString("en")} tokens` : `the ${r.returned} candidates the server returned`;
        const kept = r.at_least ? `all ${r.eligible} candidates the server returned` : `${r.eligible} of ${of}`;
        says(out, `top_p ${r.top_p} kept ${kept} (their raw probabilities add up to ` +
          `${pct(r.kept_raw_mass)}); renormalised, ${tok(r.kept[0].token)} goes from ${pct(r.kept[0].raw)} to ${pct(r.kept[0].prob)}.` +
          (r.at_least ? floorWhy(r) : "") + ` ${made(r)}`);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 5: greedy alone against the same prompt inside a padded batch; graded by the measurement
  // (bit-identical logits make the first choice right on this machine).
  sampling_batch(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "sampling_batch", label: "Running the prompt alone and in a batch of 8",
      call: post("/api/live/sampling_batch"), draw: withConsent("/api/live/sampling_batch", "sampling_batch", ctx, (out, r) => {
        out.append(K.choiceVerdict({ ...step, answer: r.max_abs_diff > 0 || r.distinct > 1 ? 1 : 0 }, ctx.guess));
        const path = r.same_path
          ? `the greedy path was the same for all ${r.steps} tokens`
          : `the greedy paths parted at token ${r.first_divergence + 1}`;
        const how = r.distinct != null
          ? `Alone, then ${r.batch} identical greedy requests at once: ${r.distinct} distinct text${r.distinct === 1 ? "" : "s"}; the chosen tokens' logprobs differed by at most ${r.max_abs_diff}, `
          : `Alone and as one row of a padded batch of ${r.batch}: the first step's logits differed by at most ${r.max_abs_diff}, `;
        says(out, how + `${path}. Alone: ${tok(r.alone_text)}; in the batch: ${tok(r.batched_text)}. ${made(r)} ` +
          `Engines offer batch-invariant kernels for this (vLLM: VLLM_BATCH_INVARIANT=1).`);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      }) });
  },
};
