// Lesson 3's live reveals (prefill and decode): each asks the app to measure (web/live_prefill.py),
// draws what came back, scores the guess against it where the measurement beats its noise, and
// names where the number came from (kinds.source). The measuring and keeping is live_kv.js's.
import { el } from "./dom.js";
import { api } from "./api.js";
import { lineChart, ms } from "./charts.js";
import { kinds as K } from "./kinds.js";
import { measuredReveal } from "./live_kv.js";

// "See it raw": the request a server-side reveal made, as a curl to the connected server.
export const raw = (out, r, info) => {
  if (!r.request || !info.server_url) return;
  const url = info.server_url.replace(/\/+$/, "") + r.request.path;
  const body = JSON.stringify(r.request.body).replaceAll("'", "'\\''");
  out.append(el("details", { class: "raw-request" }, el("summary", { text: "See it raw: the request this reveal sent" }),
    el("pre", { class: "code", text: `curl -s ${url} -H 'Content-Type: application/json' -d '${body}'` })));
};

export const live = (() => {
  const chartBox = (box, name) => { const c = el("div", { class: `chart-box live-chart chart-${name}` }); box.append(c); return c; };
  const says = (box, text) => box.append(el("p", { class: "live", text }));
  const post = (path, body = {}) => (query) => api(path + query, body);
  const x = (v, d = 1) => `${v.toFixed(d)}×`;
  const where = (r) => (r.on === "server" ? "on the server, every prompt new to its cache (a fresh cache_salt)" : "in this process: a forward over the whole prompt, and one cached step");

  return {
    // Step 1: TTFT and ITL against the prompt's length; graded only when TTFT's growth beats the noise.
    prefill_phases(box, step, ctx) {
      measuredReveal(box, step, ctx, { key: "prefill_phases", label: "Timing fresh prompts of several lengths",
        call: post("/api/live/prefill_phases"), draw: (out, r) => {
          const e = r.effect.ttft;
          out.append(e.verdict === "higher" ? K.curve.verdict(step, ctx.guess)
            : K.unclear(step.curves.map((c, i) => `${c.label}: ${ctx.guess?.[i] ?? "–"}`).join("; "), e));
          lineChart(chartBox(out, "phases"), [
            { name: "time to first token (the prefill)", points: r.series.map((p) => [p.n, p.ttft_ms, p.ttft_low_ms, p.ttft_high_ms]) },
            { name: "time between later tokens (one decode step)", points: r.series.filter((p) => p.itl_ms !== null).map((p) => [p.n, p.itl_ms, p.itl_low_ms, p.itl_high_ms]) },
          ], { xLabel: "prompt tokens", yLabel: "ms" });
          const a = r.series[0], b = r.series.at(-1);
          says(out, `From ${a.n} to ${b.n} prompt tokens (${x(r.length_ratio)}), the time to first token went from ${ms(a.ttft_ms)} to ${ms(b.ttft_ms)} ` +
            `(${x(r.ttft_ratio)}); the time between later tokens from ${ms(a.itl_ms)} to ${ms(b.itl_ms)}` +
            (r.itl_ratio ? ` (${x(r.itl_ratio, 2)})` : "") + `. The line through the first-token times: ${r.fit.formula} ` +
            `(R² ${r.fit.r2.toFixed(3)}). Medians of ${r.repeats} runs, measured ${where(r)}.`);
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },

    // Step 2: the decode step ÷ the prefill's slope, from step 1's measurements.
    token_cost(box, step, ctx) {
      measuredReveal(box, step, ctx, { key: "token_cost", label: "Reading step 1's measurements (measuring them if needed)",
        call: post("/api/live/token_cost"), draw: (out, r) => {
          if (r.ratio === null) {
            says(out, `The first-token line did not rise here (slope ${r.slope_ms_per_token.toFixed(4)} ms per token), so there is no ratio to show: measure step 1 again.`);
          } else out.append(K.estimate.verdict(step, ctx.guess, r.ratio, r.reveal));
          K.barChart(chartBox(out, "cost"), [
            { label: "one more prompt token (the prefill's slope)", value: r.slope_ms_per_token },
            { label: "one output token (a decode step)", value: r.itl_ms, measured: true },
          ], "ms");
          if (r.ratio !== null) says(out, `One decode step took ${ms(r.itl_ms)} (median); each extra prompt token added ${r.slope_ms_per_token.toFixed(3)} ms ` +
            `to the first token (the slope of step 1's line, ${r.shortest}–${r.longest} tokens). So an output token cost ${r.ratio.toFixed(0)}× a prompt token here.`);
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },

    // Step 3: a long answer against a long prompt, both timed (the answer's untimed steps projected).
    answer_vs_prompt(box, step, ctx) {
      measuredReveal(box, step, ctx, { key: "answer_vs_prompt", label: "Timing a long prompt and a long answer",
        call: post("/api/live/answer_vs_prompt"), draw: (out, r) => {
          const a = r.long_answer, p = r.long_prompt;
          K.barChart(chartBox(out, "answer-vs-prompt"), [
            { label: `${r.tokens}-token prompt, 1-token answer`, value: p.ms / 1000, measured: true },
            { label: `${r.short_prompt_tokens}-token prompt, ${r.tokens}-token answer`, value: a.ms / 1000, measured: !a.projected_steps },
          ], "s");
          const proj = a.projected_steps ? ` (${a.timed_steps} steps timed at a median of ${ms(a.step_ms)}, the other ${a.projected_steps} projected at that median)` : "";
          says(out, `The ${r.tokens}-token prompt with a one-token answer took ${ms(p.ms)} (median of ${p.samples_ms.length}). ` +
            `The ${r.tokens}-token answer took ${(a.ms / 1000).toFixed(1)} s: first token after ${ms(a.first_ms)}, then ${r.tokens - 1} passes${proj}. ` +
            `The long answer took ${x(r.ratio)} as long as the long prompt.`);
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },

    // Step 4: the prefill's top-1 at every prompt position, beside the token that really came next.
    prompt_positions(box, step, ctx) {
      measuredReveal(box, step, ctx, { key: "prompt_positions", label: "Running the prompt through the model once",
        call: post("/api/live/prompt_positions"), draw: (out, r) => {
          const q = (t) => JSON.stringify(t);
          const table = el("table", { class: "positions" },
            el("tr", {}, ...["position", "prompt token", "model's top-1 for the next", "next in the prompt"].map((h) => el("th", { text: h }))));
          for (const row of r.rows) {
            table.append(el("tr", { class: row.hit ? "hit" : "" },
              el("td", { text: String(row.position) }), el("td", { text: q(row.token) }),
              el("td", { text: `${q(row.top1)} ${(100 * row.top1_prob).toFixed(1)}%` }),
              el("td", { text: row.next === null ? "(the answer starts here)" : q(row.next) + (row.next_rank ? ` (rank ${row.next_rank.toLocaleString("en")})` : "") })));
          }
          out.append(table);
          if (r.on === "server") {
            says(out, `The server's own prefill of the ${r.tokens} prompt tokens, read back with prompt_logprobs in one request (${ms(r.ms)}): ` +
              `a top-1 at every position (${r.hits} of ${r.tokens - 1} were the prompt's own next token). ` +
              "The last row is the answer's first token, the only one a plain completion returns.");
          } else {
            says(out, `One forward pass over the ${r.tokens} prompt tokens gave logits of shape ${r.shape[0]} × ${r.shape[1].toLocaleString("en")}: ` +
              `a prediction at every position (${r.hits} of ${r.tokens - 1} guessed the prompt's own next token), in ${ms(r.ms)}. ` +
              "Only the last row becomes the first answer token. Computed in this process on the embedded model.");
            if (r.why_not_server) says(out, r.why_not_server + ".");
          }
          raw(out, r, ctx.info);
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },

    // Step 5: one attention layer, naive against fused: peak memory and time; 8,192 projected.
    attention_memory(box, step, ctx) {
      measuredReveal(box, step, ctx, { key: "attention_memory", label: "Running one attention layer two ways",
        call: post("/api/live/attention_memory"), draw: (out, r) => {
          const t = r.projected;
          out.append(K.estimate.verdict(step, ctx.guess, t.naive_peak_bytes, r.reveal));
          lineChart(chartBox(out, "attention"), [
            { name: "naive: scores held whole (peak MB)", points: r.points.map((p) => [p.tokens, p.naive_peak_bytes / 1e6]) },
            { name: "fused scaled_dot_product_attention (peak MB)", points: r.points.map((p) => [p.tokens, p.fused_peak_bytes / 1e6]) },
          ], { xLabel: "prompt tokens", yLabel: "MB" });
          const last = r.points.at(-1);
          const diff = Math.max(...r.points.map((p) => p.max_abs_diff));
          says(out, `One layer, ${r.heads} heads of ${r.head_dim}, ${r.dtype}. At ${last.tokens} tokens the naive attention held ` +
            `${K.format(last.naive_peak_bytes, "bytes")} at its peak in ${ms(last.naive_ms)} (one score matrix is ${K.format(last.score_bytes, "bytes")}); ` +
            `the fused one ${K.format(last.fused_peak_bytes, "bytes")} in ${ms(last.fused_ms)}; largest difference between their outputs ${diff.toExponential(1)}. ` +
            (t.measured ? "" : `At ${t.tokens.toLocaleString("en")} tokens, projected from the growth between ${t.from.join(" and ")} tokens (∝ n^${t.exponent.toFixed(2)}): ` +
              `${K.format(t.naive_peak_bytes, "bytes")} and ${(t.naive_ms / 1000).toFixed(1)} s naive, ${(t.fused_ms / 1000).toFixed(2)} s fused; not run, so this machine never swaps.`) +
            ` Peak memory is this process's high-water mark above what it held before.`);
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },

    // Step 6: where the time to first token went: the server's own account of each request
    // (queue, scheduled to first token, the rest), or in this process tokenize, forward, the rest.
    // The choice is graded against the largest part measured (GRADED_LIVE).
    ttft_account(box, step, ctx) {
      const CHOICE = { queue_ms: 0, server_ttft_ms: 1, rest_ms: 2 };
      measuredReveal(box, step, ctx, { key: "ttft_account", label: "Timing this page's prompt, new to the cache",
        call: post("/api/live/ttft_account"), draw: (out, r) => {
          if (r.largest) out.append(K.choiceVerdict({ ...step, answer: CHOICE[r.largest] }, ctx.guess));
          else says(out, "The server gave no account of its own, so there is nothing to split and your guess is not scored.");
          const a = r.account, s = r.split;
          if (r.on === "embedded") {
            K.barChart(chartBox(out, "ttft-split"), [
              { label: "tokenize the prompt", value: s.tokenize_ms, measured: true },
              { label: "the forward over it (the prefill)", value: s.forward_ms, measured: true },
              { label: "the rest: pick the token, turn it into text", value: s.rest_ms, measured: true },
            ], "ms");
            says(out, `In this process, for the ${r.prompt_tokens}-token prompt (medians of ${r.runs.length} runs): the first token took ${ms(s.client_ttft_ms)}: ` +
              `${ms(s.tokenize_ms)} tokenizing, ${ms(s.forward_ms)} in the forward, ${ms(s.rest_ms)} for the rest. No queue and no network here: ` +
              "connect a server (--url) to see its own account of each request.");
          } else if (a) {
            const m = (k) => a.stats[k]?.median;
            K.barChart(chartBox(out, "ttft-split"), [
              { label: "queue: waiting to be scheduled", value: m("queue_ms") ?? 0, measured: true },
              { label: "server TTFT: scheduled to first token (the prefill)", value: m("server_ttft_ms"), measured: true },
              { label: "the rest: HTTP, API server, tokenizing, the trip", value: m("rest_ms"), measured: true },
            ], "ms");
            const table = el("table", { class: "ttft-account" },
              el("tr", {}, ...["request", "client TTFT", "queue", "server TTFT", "the rest"].map((h) => el("th", { text: h }))));
            a.per_request.forEach((p, i) => table.append(el("tr", {}, ...[String(i + 1), ms(p.client_ttft_ms),
              p.queue_ms === null ? "–" : ms(p.queue_ms), ms(p.server_ttft_ms), ms(p.rest_ms)].map((t) => el("td", { text: t })))));
            out.append(table);
            says(out, `${a.requests} requests of the ${r.prompt_tokens}-token prompt, each with a fresh cache_salt (${r.warmth.headline}). ` +
              `Medians: the client waited ${ms(m("client_ttft_ms"))} for the first token; the server's own account (${a.source}) says ` +
              `${m("queue_ms") === null ? "no queue reported" : ms(m("queue_ms")) + " queued"} and ${ms(m("server_ttft_ms"))} from scheduling to the first token; ` +
              `the other ${ms(m("rest_ms"))} is what the engine never saw.`);
          } else if (s) {
            says(out, `This server sent no per-request account; from ${s.source === "/metrics" ? "its /metrics histograms around each request" : "its own timings"}, ` +
              `the means: client ${ms(s.client_ttft_ms)}, queue ${ms(s.queue_ms)}, prefill ${ms(s.prefill_ms ?? s.server_ttft_ms)}, the rest ${ms(s.overhead_ms)}` +
              (s.server_wide ? ". Other requests ran meanwhile, so these are server-wide numbers, not only yours." : "."));
          } else {
            says(out, `The client waited ${r.client_ttft_ms.map((v) => ms(v)).join(", ")}; start vLLM with --enable-per-request-metrics to see its own split.`);
          }
          raw(out, r, ctx.info);
          out.append(K.source(r.source, step, ctx.lesson, r.reveal));
        } });
    },
  };
})();
