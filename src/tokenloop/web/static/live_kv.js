// The live reveals of the estimate and curve steps (Lesson 7, and Lesson 1's 500-token answer).
// Each one asks the app to measure on the connected backend (on the first reveal, or on "Measure
// again"), draws what came back, scores the learner's guess against it only when it is a
// measurement beyond the noise, and names where the number came from (kinds.source). A revisit
// draws the kept result (the session's, /api/live/kept, or the page's own copy): nothing measured.
import { el, status } from "./dom.js";
import { api, stream } from "./api.js";
import { lineChart, ms, withSpread } from "./charts.js";
import { kinds as K } from "./kinds.js";

// This page's id: a measurement stops when no page waits for it (web/jobs.py), and a page that
// goes away says so, so nothing keeps measuring behind the learner's back.
export const PAGE = Math.random().toString(36).slice(2, 12);
addEventListener("pagehide", () => {
  fetch("/api/live/stop", { method: "POST", keepalive: true, credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ page: PAGE }) }).catch(() => {});
});

// "step 3 of 8, about 12 s left", read every second from the session's running jobs while `key` runs.
export function progressLine(note, key, lessonId, label) {
  status(note, `${label}…`, "busy");
  let done = false;
  const tick = async () => {
    if (done) return;
    try {
      const { running } = await api(`/api/live/kept?lesson=${encodeURIComponent(lessonId)}`);
      const p = running[key];
      if (!done && p && p.total) {
        const left = p.left_s === null ? "" : `, about ${Math.max(1, Math.round(p.left_s))} s left`;
        status(note, `${label}: step ${p.done} of ${p.total}${left}`, "busy");
      }
    } catch { /* the measurement's own answer reports errors */ }
    if (!done) setTimeout(tick, 1000);
  };
  setTimeout(tick, 700);
  return () => { done = true; };
}

const ago = (t) => {
  const s = Math.max(0, Date.now() / 1000 - t);
  return s < 90 ? `${Math.round(s)} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : new Date(t * 1000).toLocaleString("en");
};

// One measured reveal: the kept result if there is one, else measured now on a first reveal (a
// revisit measures nothing without a click); a "Measure again" button; progress while it runs;
// an error line that goes away when a later try succeeds.
export function measuredReveal(box, step, ctx, { key, label, call, draw }) {
  const area = el("div", { class: "measured" });
  const note = el("p", { class: "status" });
  const again = el("button", { class: "measure-again", text: "Measure again" });
  box.append(area, note, el("div", { class: "actions" }, again));
  const show = (r) => {
    area.replaceChildren();
    draw(area, r);
    if (r.measured_at) area.append(el("p", { class: "note measured-at", text: `Measured ${ago(r.measured_at)}; press Measure again for a new run.` }));
  };
  const run = async () => {
    again.disabled = true;
    const stop = progressLine(note, key, ctx.lesson.id, label);
    try {
      const r = await call(`?lesson=${encodeURIComponent(ctx.lesson.id)}&page=${PAGE}`);
      stop();
      status(note, "");
      ctx.keep(key, r);
      show(r);
    } catch (error) {
      stop();
      status(note, error.message);
    } finally {
      again.disabled = false;
    }
  };
  again.addEventListener("click", run);
  const kept = ctx.kept(key);
  if (kept) show(kept);
  else if (ctx.first) run();
  else status(note, "Not measured on this visit (the last measurement was stopped when its page closed): press Measure again.", "busy");
}

// Steps whose choice is graded by the measurement (its noise verdict), not on the reveal click.
export const GRADED_LIVE = new Set(["context_cost", "sampling_batch", "ttft_account", "tokens_per_kchar", "context_limits"]);

export const live = (() => {
  // Why the fill ended, in words (cost/kv_fill.py's `stopped`).
  const STOPPED = {
    preempted: "Stopped at the first preemption",
    "time cap": "Stopped at the time cap",
    "a request failed": "Stopped: a request failed",
    "all requests finished": "Every request finished",
  };

  const pct = (x) => `${(100 * x).toFixed(x < 0.01 ? 2 : 1)}%`;
  const chartBox = (box, name) => { const c = el("div", { class: `chart-box live-chart chart-${name}` }); box.append(c); return c; };
  const says = (box, text) => box.append(el("p", { class: "live", text }));
  const post = (path, body = {}) => (query) => api(path + query, body);

  return {
    // Lesson 1: how long does a 500-token answer take here? TTFT + 499 × time per token, projected
    // from the steps timed (and said to be a projection), the quartiles of those steps as its range.
    answer_time(box, step, ctx) {
      measuredReveal(box, step, ctx, { key: "answer_time", label: "Timing the first token and the next ones",
        call: post("/api/live/answer_time"), draw: (out, r) => {
          out.append(K.estimate.verdict(step, ctx.guess, r.total_s, r.reveal));
          K.barChart(chartBox(out, "answer"), [
            { label: "prefill: the prompt, one pass (TTFT)", value: r.ttft_ms / 1000 },
            { label: `decode: ${r.tokens - 1} steps × ${ms(r.itl_ms)}`, value: (r.total_ms - r.ttft_ms) / 1000, measured: true },
          ], "s");
          const range = r.low_s !== undefined ? ` The middle half of the timed steps gives ${r.low_s.toFixed(1)}–${r.high_s.toFixed(1)} s: the noise of this machine now.` : "";
          says(out, `Timed just now (${r.how}): first token after ${ms(r.ttft_ms)}, then ${r.projected_from ?? r.measured_tokens - 1} steps, ` +
            `median ${ms(r.itl_ms)} each. Projected to a ${r.tokens}-token answer: ${ms(r.ttft_ms)} + ${r.tokens - 1} × ${ms(r.itl_ms)} = ` +
            `${(r.total_ms / 1000).toFixed(1)} s, of which the prefill is ${pct(r.prefill_share)}: one forward pass per output token is what you wait for.${range}`);
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },

    // Lesson 7, step 1: do earlier K and V change when a token is appended?
    kv_causal(box, step, ctx) {
      measuredReveal(box, step, ctx, { key: "kv_causal", label: "Running the model twice, on n and n + 1 tokens",
        call: post("/api/live/kv_causal"), draw: (out, r) => {
          lineChart(chartBox(out, "causal"), [
            { name: "max |ΔK| per layer", points: r.per_layer.map((p, i) => [i + 1, p.k]) },
            { name: "max |ΔV| per layer", points: r.per_layer.map((p, i) => [i + 1, p.v]) },
          ], { xLabel: "layer", yLabel: "largest difference" });
          says(out, `Keys and values of the first ${r.tokens} tokens, computed with ${r.tokens} and with ${r.tokens + 1} tokens, ` +
            `in all ${r.layers} layers: largest difference ${r.max_abs_diff_k} (K) and ${r.max_abs_diff_v} (V). ` +
            `Computed in this process on the embedded model, also when a server is connected: ` +
            `a server cannot be asked to run a prompt twice and hand back its tensors.`);
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },

    // Lesson 7, step 2: step time against length, without and with the cache: medians of the
    // repeats with their range as whiskers; graded only when the no-cache growth beats the noise.
    kv_staircase(box, step, ctx) {
      const { max_len, points, repeats } = ctx.info.demo;
      measuredReveal(box, step, ctx, { key: "kv_staircase", label: `Timing one step at lengths up to ${max_len} tokens`,
        call: post("/api/live/staircase", { max_len, points, repeats }), draw: (out, r) => {
          // The same two curves either way: in process (a forward without and with the cache), or on
          // the server (a fresh prompt's time to first token, and the streamed gap after it).
          const server = r.on === "server";
          const effect = server ? r.result.effect?.fresh : r.result.effect?.uncached;
          out.append(effect && effect.verdict !== "higher"
            ? K.unclear(step.curves.map((c, i) => `${c.label}: ${ctx.guess?.[i] ?? "–"}`).join("; "), effect)
            : K.curve.verdict(step, ctx.guess));
          const pts = r.result.series.map((p) => server
            ? { n: p.n, without: p.fresh_samples_ms, with: p.itl_samples_ms }
            : { n: p.length, without: p.uncached_samples_ms, with: p.cached_samples_ms });
          lineChart(chartBox(out, "staircase"), [
            { name: server ? "no cache: time to first token, fresh prompt" : "no cache: the whole sequence", points: pts.map((p) => withSpread(p.n, p.without)) },
            { name: server ? "KV cache: time per streamed token" : "KV cache: one new token", points: pts.filter((p) => p.with?.length).map((p) => withSpread(p.n, p.with)) },
          ], { xLabel: "tokens in the sequence", yLabel: "ms per step" });
          const first = pts[0], last = pts[pts.length - 1];
          const mid = (xs) => (xs?.length ? withSpread(0, xs)[1] : null);
          says(out, `From ${first.n} to ${last.n} tokens one step went from ${ms(mid(first.without))} to ${ms(mid(last.without))} ` +
            `without a cache, and from ${ms(mid(first.with))} to ${ms(mid(last.with))} with one (medians of ${r.result.repeats} runs; ` +
            `the whiskers span the fastest to the slowest)` +
            (server ? ", measured on the server: every prompt new to its prefix cache." : ", in this process."));
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },

    // Lesson 7, step 3: with the cache, is a late token as cheap as an early one? The choice is
    // graded here, and only when the change beats the spread of the repeats (measure/noise.py).
    context_cost(box, step, ctx) {
      measuredReveal(box, step, ctx, { key: "context_cost", label: "Timing one cached step at several context lengths",
        call: post("/api/live/context_cost"), draw: (out, r) => {
          const yours = step.choices[ctx.guess];
          if (r.effect?.verdict === "higher") out.append(K.choiceVerdict(step, ctx.guess));
          else if (r.effect?.verdict === "lower") {
            out.append(el("div", { class: "verdict unclear" },
              el("div", { class: "yours" }, el("strong", { text: "Your guess: " }), yours ?? "–"),
              el("div", { class: "answer" }, el("strong", { text: "Not scored: " }),
                "this run measured the long context faster, beyond its spread: the machine was busier during the short ones. Measure again.")));
          } else out.append(K.unclear(yours, r.effect));
          lineChart(chartBox(out, "context"), [{ name: "one cached step (median, fastest–slowest)",
            points: r.points.map((p) => (p.low_ms !== undefined ? [p.context, p.ms, p.low_ms, p.high_ms] : [p.context, p.ms])) }],
          { xLabel: "tokens already in the cache", yLabel: "ms per step" });
          const change = r.ratio - 1;
          says(out, `One step with ${r.longest} tokens in the cache took ${ms(r.points.at(-1).ms)}; with ${r.shortest}, ${ms(r.points[0].ms)}: ` +
            `${change >= 0 ? "+" : ""}${(100 * change).toFixed(0)}% (medians of ${r.repeats} runs each).`);
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },

    // Lesson 7, step 4: bytes per cached token.
    kv_bytes(box, step, ctx) {
      measuredReveal(box, step, ctx, { key: "kv_bytes", label: "Reading the cache's size",
        call: post("/api/live/kv_bytes"), draw: (out, r) => {
          const server = Boolean(r.allocation);
          const measured = server ? r.allocation.bytes_per_token : r.measured.bytes_per_token;
          if (measured === null || measured === undefined) {
            says(out, "The server reports its cache in blocks but not in bytes, so bytes per token can't be read off it.");
          } else out.append(K.estimate.verdict(step, ctx.guess, measured, r.reveal));
          const rows = r.predicted ? Object.entries(r.predicted.bytes_per_token).map(([dtype, bytes]) => ({ label: `config × ${dtype}`, value: bytes })) : [];
          rows.push({ label: server ? "the server allocated" : "the cache's tensors hold", value: measured, measured: true });
          K.barChart(chartBox(out, "bytes"), rows, "bytes");
          if (server) {
            const a = r.allocation;
            says(out, `The server's own figures: ${K.format(a.memory_bytes, "bytes")} of KV cache for ${a.tokens?.toLocaleString("en")} tokens ` +
              `(${a.blocks} blocks × ${a.block_size}) = ${K.format(measured, "bytes")} per token. The config (${r.predicted?.formula}) ` +
              `gives ${r.predicted?.values_per_token.toLocaleString("en")} numbers per token, so the server keeps ` +
              `${r.bytes_per_number?.toFixed(2)} bytes per number; a little over a whole number because only whole blocks are allocated.`);
          } else {
            says(out, `The cache's own tensors after ${r.measured.tokens} tokens: ${K.format(r.measured.bytes, "bytes")}, ` +
              `${K.format(measured, "bytes")} per token; the config says ${r.measured.formula} = ${K.format(r.measured.predicted_bytes_per_token, "bytes")}.`);
          }
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },

    // Lesson 7, step 5: how many full-length conversations fit; then, with consent, fill it.
    // Without a server there is no allocation: the number is a what-if, shown and not scored.
    kv_capacity(box, step, ctx) {
      measuredReveal(box, step, ctx, { key: "kv_capacity", label: "Reading the cache's capacity",
        call: post("/api/live/kv_capacity"), draw: (out, r) => {
          if (!r.allocation) {
            const f = r.in_process;
            out.append(K.estimate.verdict(step, ctx.guess, f.conversations, r.reveal ?? { kind: "what_if", scored: false }));
            says(out, `In this process the embedded model keeps one conversation at a time. If all of this machine's free memory ` +
              `(${K.format(f.free_bytes, "bytes")}) held cache at ${K.format(r.bytes_per_token, "bytes")} per token (measured), it would fit ` +
              `${f.conversations.toFixed(1)} conversations of ${f.context_length.toLocaleString("en")} tokens ` +
              `(${K.format(f.bytes_per_conversation, "bytes")} each). Connect a vLLM server (--url) to read a real allocation and fill it.`);
            out.append(K.source(r.source, step, ctx.lesson, r.reveal ?? { kind: "what_if", why: "if all free memory held cache" }));
            return;
          }
          const a = r.allocation;
          out.append(K.estimate.verdict(step, ctx.guess, a.conversations, r.reveal));
          says(out, `The server's own figure: ${a.tokens.toLocaleString("en")} tokens of cache ÷ ${a.max_model_len.toLocaleString("en")} ` +
            `tokens per full conversation = ${a.conversations.toFixed(2)} conversations at once.`);
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
          fillPanel(out, step, r, ctx.lesson);
        } });
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
        await stream(`/api/live/kv_fill?lesson=${encodeURIComponent(lesson.id)}&page=${PAGE}`, { consent: true, remote: remote.checked }, (event, data) => {
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
            summary.textContent = `${STOPPED[data.stopped] || "Stopped"} after ${data.seconds.toFixed(1)} s: KV usage peaked at ${pct(data.max_kv_usage)}, ` +
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
