// The live reveals of the estimate and curve steps (Lesson 7, and Lesson 1's 500-token answer).
// Each one asks the app to measure on the connected backend, draws what came back, scores the
// learner's guess against it, and names where the number came from (kinds.source).
import { el, status } from "./dom.js";
import { api, stream } from "./api.js";
import { lineChart, ms } from "./charts.js";
import { kinds as K } from "./kinds.js";

export const live = (() => {
  const pct = (x) => `${(100 * x).toFixed(x < 0.01 ? 2 : 1)}%`;

  // Runs a measurement with a visible "measuring" line; the line becomes the error if it fails.
  async function measuring(box, label, call) {
    const note = el("p", { class: "status busy", text: `${label}… (measuring on the connected model)` });
    box.append(note);
    try {
      const result = await call();
      note.remove();
      return result;
    } catch (error) {
      status(note, error.message);
      return null;
    }
  }

  const chartBox = (box, name) => { const c = el("div", { class: `chart-box live-chart chart-${name}` }); box.append(c); return c; };
  const says = (box, text) => box.append(el("p", { class: "live", text }));

  return {
    // Lesson 1: how long does a 500-token answer take here? TTFT + 499 × time per token.
    async answer_time(box, step, { guess, lesson }) {
      const r = await measuring(box, "Timing the first token and the next ones", () => api("/api/live/answer_time", {}));
      if (!r) return;
      box.append(K.estimate.verdict(step, guess, r.total_s));
      const chart = chartBox(box, "answer");
      K.barChart(chart, [
        { label: "prefill: the prompt, one pass (TTFT)", value: r.ttft_ms / 1000 },
        { label: `decode: ${r.tokens - 1} steps × ${ms(r.itl_ms)}`, value: (r.total_ms - r.ttft_ms) / 1000, measured: true },
      ], "s");
      says(box, `Measured just now (${r.how}): first token after ${ms(r.ttft_ms)}, then one token every ${ms(r.itl_ms)}. ` +
        `A ${r.tokens}-token answer: ${ms(r.ttft_ms)} + ${r.tokens - 1} × ${ms(r.itl_ms)} = ${(r.total_ms / 1000).toFixed(1)} s, ` +
        `of which the prefill is ${pct(r.prefill_share)}: one forward pass per output token is what you wait for.`);
      box.append(K.source(r.source, step, lesson));
    },

    // Lesson 7, step 1: do earlier K and V change when a token is appended?
    async kv_causal(box, step, { lesson }) {
      const r = await measuring(box, "Running the model twice, on n and n + 1 tokens", () => api("/api/live/kv_causal", {}));
      if (!r) return;
      const chart = chartBox(box, "causal");
      lineChart(chart, [
        { name: "max |ΔK| per layer", points: r.per_layer.map((p, i) => [i + 1, p.k]) },
        { name: "max |ΔV| per layer", points: r.per_layer.map((p, i) => [i + 1, p.v]) },
      ], { xLabel: "layer", yLabel: "largest difference" });
      says(box, `Keys and values of the first ${r.tokens} tokens, computed with ${r.tokens} and with ${r.tokens + 1} tokens, ` +
        `in all ${r.layers} layers: largest difference ${r.max_abs_diff_k} (K) and ${r.max_abs_diff_v} (V). ` +
        `Computed in this process on the embedded model, also when a server is connected: ` +
        `a server cannot be asked to run a prompt twice and hand back its tensors.`);
      box.append(K.source(r.source, step, lesson));
    },

    // Lesson 7, step 2: step time against length, without and with the cache.
    async kv_staircase(box, step, { guess, info, lesson }) {
      const { max_len, points, repeats } = info.demo;
      const r = await measuring(box, `Timing one step at lengths up to ${max_len} tokens`, () => api("/api/live/staircase", { max_len, points, repeats }));
      if (!r) return;
      box.append(K.curve.verdict(step, guess));
      // The same two curves either way: in process (a forward without and with the cache), or on
      // the server (a fresh prompt's time to first token, and the streamed gap after it).
      const server = r.on === "server";
      const pts = r.result.series.map((p) => server ? { n: p.n, without: p.fresh_ms, with: p.itl_ms } : { n: p.length, without: p.uncached_ms, with: p.cached_ms });
      lineChart(chartBox(box, "staircase"), [
        { name: server ? "no cache: time to first token, fresh prompt" : "no cache: the whole sequence", points: pts.map((p) => [p.n, p.without]) },
        { name: server ? "KV cache: time per streamed token" : "KV cache: one new token", points: pts.filter((p) => p.with !== null).map((p) => [p.n, p.with]) },
      ], { xLabel: "tokens in the sequence", yLabel: "ms per step" });
      const first = pts[0], last = pts[pts.length - 1];
      says(box, `From ${first.n} to ${last.n} tokens one step went from ${ms(first.without)} to ${ms(last.without)} ` +
        `without a cache, and from ${ms(first.with)} to ${ms(last.with)} with one` +
        (server ? " (measured on the server: every prompt new to its prefix cache)." : " (in this process)."));
      box.append(K.source(r.source, step, lesson));
    },

    // Lesson 7, step 3: with the cache, is a late token as cheap as an early one?
    async context_cost(box, step, { lesson }) {
      const r = await measuring(box, "Timing one cached step at several context lengths", () => api("/api/live/context_cost", {}));
      if (!r) return;
      lineChart(chartBox(box, "context"), [{ name: "one cached step", points: r.points.map((p) => [p.context, p.ms]) }],
        { xLabel: "tokens already in the cache", yLabel: "ms per step" });
      const change = r.ratio - 1;
      says(box, `One step with ${r.longest} tokens in the cache took ${ms(r.points.at(-1).ms)}; with ${r.shortest}, ${ms(r.points[0].ms)}: ` +
        `${change >= 0 ? "+" : ""}${(100 * change).toFixed(0)}% (fastest of ${r.repeats} runs each).`);
      box.append(K.source(r.source, step, lesson));
    },

    // Lesson 7, step 4: bytes per cached token.
    async kv_bytes(box, step, { guess, lesson }) {
      const r = await measuring(box, "Reading the cache's size", () => api("/api/live/kv_bytes"));
      if (!r) return;
      const server = Boolean(r.allocation);
      const measured = server ? r.allocation.bytes_per_token : r.measured.bytes_per_token;
      if (measured === null || measured === undefined) {
        says(box, "The server reports its cache in blocks but not in bytes, so bytes per token can't be read off it.");
      } else box.append(K.estimate.verdict(step, guess, measured));
      const rows = r.predicted ? Object.entries(r.predicted.bytes_per_token).map(([dtype, bytes]) => ({ label: `config × ${dtype}`, value: bytes })) : [];
      rows.push({ label: server ? "the server allocated" : "the cache's tensors hold", value: measured, measured: true });
      K.barChart(chartBox(box, "bytes"), rows, "bytes");
      if (server) {
        const a = r.allocation;
        says(box, `The server's own figures: ${K.format(a.memory_bytes, "bytes")} of KV cache for ${a.tokens?.toLocaleString("en")} tokens ` +
          `(${a.blocks} blocks × ${a.block_size}) = ${K.format(measured, "bytes")} per token. The config (${r.predicted?.formula}) ` +
          `gives ${r.predicted?.values_per_token.toLocaleString("en")} numbers per token, so the server keeps ` +
          `${r.bytes_per_number?.toFixed(2)} bytes per number; a little over a whole number because only whole blocks are allocated.`);
      } else {
        says(box, `The cache's own tensors after ${r.measured.tokens} tokens: ${K.format(r.measured.bytes, "bytes")}, ` +
          `${K.format(measured, "bytes")} per token; the config says ${r.measured.formula} = ${K.format(r.measured.predicted_bytes_per_token, "bytes")}.`);
      }
      box.append(K.source(r.source, step, lesson));
    },

    // Lesson 7, step 5: how many full-length conversations fit; then, with consent, fill it.
    async kv_capacity(box, step, { guess, lesson }) {
      const r = await measuring(box, "Reading the cache's capacity", () => api("/api/live/kv_capacity"));
      if (!r) return;
      if (!r.allocation) {
        const f = r.in_process;
        box.append(K.estimate.verdict(step, guess, f.conversations));
        says(box, `In this process the embedded model keeps one conversation at a time. If all of this machine's free memory ` +
          `(${K.format(f.free_bytes, "bytes")}) held cache at ${K.format(r.bytes_per_token, "bytes")} per token, it would fit ` +
          `${f.conversations.toFixed(1)} conversations of ${f.context_length.toLocaleString("en")} tokens ` +
          `(${K.format(f.bytes_per_conversation, "bytes")} each). Connect a vLLM server (--url) to read a real allocation and fill it.`);
        box.append(K.source(r.source, step, lesson));
        return;
      }
      const a = r.allocation;
      box.append(K.estimate.verdict(step, guess, a.conversations));
      says(box, `The server's own figure: ${a.tokens.toLocaleString("en")} tokens of cache ÷ ${a.max_model_len.toLocaleString("en")} ` +
        `tokens per full conversation = ${a.conversations.toFixed(2)} conversations at once.`);
      box.append(K.source(r.source, step, lesson));
      fillPanel(box, step, r, lesson);
    },
  };

  // The consented fill: the plan stated first, a click to start, the timeline drawn as it runs.
  function fillPanel(box, step, r, lesson) {
    const panel = el("div", { class: "fill card-inner" },
      el("h3", { text: "Fill it and watch" }),
      el("p", { class: "fill-plan", text: `This ${r.plan.text}, watching the server's /metrics every 0.5 s, and stops at the first preemption.` }));
    const remote = el("input", { type: "checkbox", class: "fill-remote" });
    if (!r.loopback) panel.append(el("label", { class: "choice" }, remote,
      el("span", { text: "This server is not on this machine. I run it and accept this load on it." })));
    const start = el("button", { class: "fill-start", text: "Start the fill" });
    const note = el("p", { class: "status" });
    if (r.plan.why_not) panel.append(el("p", { class: "note fill-why-not", text: r.plan.why_not }));
    // Usage (0 to 1) and the counts on their own axes: on one, usage was a hairline under the counts.
    const chart = el("div", { class: "chart-box live-chart chart-fill" });
    const counts = el("div", { class: "chart-box live-chart chart-fill-counts" });
    const summary = el("p", { class: "live fill-summary" });
    panel.append(el("div", { class: "actions" }, start), note, chart, counts, summary);
    box.append(panel);
    start.addEventListener("click", async () => {
      start.disabled = true;
      status(note, "Filling… (at most " + r.plan.seconds + " s)", "busy");
      const samples = [];
      let source = null;
      try {
        await stream("/api/live/kv_fill", { consent: true, remote: remote.checked }, (event, data) => {
          if (event === "source") source = data;
          if (event === "sample") {
            samples.push(data);
            lineChart(chart, [{ name: "KV cache usage (1 = full)", points: samples.map((s) => [s.t_s, s.kv_usage ?? 0]) }],
              { xLabel: "seconds", yLabel: "usage (0 to 1)", zero: "KV cache usage: 0 so far" });
            lineChart(counts, [
              { name: "requests running", points: samples.map((s) => [s.t_s, s.running ?? 0]) },
              { name: "requests waiting", points: samples.map((s) => [s.t_s, s.waiting ?? 0]) },
              { name: "preemptions", points: samples.map((s) => [s.t_s, s.preemptions ?? 0]) },
            ], { xLabel: "seconds", yLabel: "requests", zero: "no request running or waiting yet, no preemption" });
          }
          if (event === "done") {
            summary.dataset.preemptions = data.preemptions;
            summary.textContent = `Stopped (${data.stopped}) after ${data.seconds.toFixed(1)} s: KV usage peaked at ${pct(data.max_kv_usage)}, ` +
              `${data.max_waiting} requests waited, ${data.preemptions} preemption${data.preemptions === 1 ? "" : "s"}. ` +
              `/health after: ${data.healthy_after ? "OK" : "NOT OK"}.` + (data.errors.length ? ` Errors: ${data.errors.join("; ")}` : "");
          }
        });
        status(note, "");
        if (source) panel.append(K.source(source, step, lesson));
      } catch (error) {
        status(note, error.message);
      } finally {
        start.disabled = false;
      }
    });
  }
})();
