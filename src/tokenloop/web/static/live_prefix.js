// Lesson 8's live reveals (pages and prefix caching): each asks the app to measure (web/live_prefix.py)
// on the connected vLLM (its block size, cached_tokens, prefix counters) or, without one, on a
// prefix cache kept in blocks in this process; draws what came back, scores the guess, and names
// where the number came from (kinds.source). Step 5 on a server shows its plan first and sends
// nothing until Start is pressed (withConsent, live_sampling.js).
import { el } from "./dom.js";
import { api } from "./api.js";
import { lineChart, ms } from "./charts.js";
import { kinds as K } from "./kinds.js";
import { measuredReveal } from "./live_kv.js";
import { raw } from "./live_prefill.js";
import { withConsent } from "./live_sampling.js";

const chartBox = (box, name) => { const c = el("div", { class: `chart-box live-chart chart-${name}` }); box.append(c); return c; };
const says = (box, text, cls = "live") => box.append(el("p", { class: cls, text }));
const post = (path, body = {}) => (query) => api(path + query, body);
const n = (x) => Number(x).toLocaleString("en");
const where = (r) => (r.on === "server"
  ? "on the server (its own counts, from usage.prompt_tokens_details.cached_tokens)"
  : "in this process, on a prefix cache kept in blocks of the embedded model's keys and values");
// One request's numbers, as every step's table shows them.
const cachedOf = (s) => `${n(s.cached_tokens)} of ${n(s.prompt_tokens)}`;
const row = (cells, cls = "") => el("tr", { class: cls }, ...cells.map((c) => el("td", { text: String(c) })));
const table = (cls, heads, rows) => el("table", { class: cls }, el("tr", {}, ...heads.map((h) => el("th", { text: h }))), ...rows);

export const prefix = {
  // Step 1: blocks held by one growing request, a reading every 0.1 s (server) or every token (here).
  prefix_growth(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "prefix_growth", label: "Running one long request alone and counting its blocks",
      call: post("/api/live/prefix_growth"), draw: (out, r) => {
        out.append(K.curve.verdict(step, ctx.guess));
        const points = r.samples.filter((s) => s.blocks).map((s) => [s.tokens, s.blocks]);
        lineChart(chartBox(out, "growth"), [{ name: `blocks of ${r.block_size} tokens held`, points }],
          { xLabel: "tokens so far (prompt + written)", yLabel: "blocks", zero: "no block held yet" });
        const jumps = r.jumps.map((j) => `${j.blocks} at ${n(j.tokens)}`).join(", ") || "none seen";
        const summary = el("p", { class: "live growth-summary", dataset: { lastBlocks: r.last_blocks, blockSize: r.block_size } });
        if (r.on === "server") {
          summary.textContent = `One request of ${r.prompt_tokens} prompt tokens writing ${n(r.generated)} more, alone on the server` +
            `${r.alone ? "" : " (other requests were running, so some blocks may be theirs)"}. Its cache is ${n(r.blocks)} blocks of ` +
            `${r.block_size} tokens (vllm:cache_config_info), so one block is ${(100 * r.one_block).toFixed(2)}% of vllm:kv_cache_usage_perc. ` +
            `It held ${r.first_blocks} block(s) at first and ${r.last_blocks} at the end (⌈${r.prompt_tokens + r.generated} ÷ ${r.block_size}⌉ = ` +
            `${r.expected_blocks}): one block more each time the last filled (blocks at tokens so far: ${jumps}).`;
        } else {
          summary.textContent = `In this process: ${r.prompt_tokens} prompt tokens, then ${n(r.generated)} written one at a time. ` +
            `This process keeps its keys and values in one growing tensor per layer, not in pages, so the blocks are counted from its ` +
            `measured length as a paged cache would hand them out (⌈length ÷ ${r.block_size}⌉): ${r.first_blocks} at first and ` +
            `${r.last_blocks} at the end, one more each time the last filled (${jumps}). A block here is ${K.format(r.bytes_per_block, "bytes")} of keys and values; reserving the whole ` +
            `context up front (${n(r.pool_blocks)} blocks) would have held ${K.format(r.reserved_up_front_bytes, "bytes")} from the first token.`;
        }
        out.append(summary);
        raw(out, r, ctx.info);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 2: the same prompt twice; the speed-up scored, the cached count and the counters beside it.
  prefix_repeat(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "prefix_repeat", label: "Sending the same long prompt twice",
      call: post("/api/live/prefix_repeat"), draw: (out, r) => {
        out.append(K.estimate.verdict(step, ctx.guess, r.speedup, r.reveal));
        K.barChart(chartBox(out, "repeat"), [
          { label: "first send: every prompt token computed", value: r.first.ms },
          { label: `second send: ${n(r.second.cached_tokens)} tokens from the cache`, value: r.second.ms, measured: true },
        ], "ms");
        const counters = r.delta_hits === null || r.delta_hits === undefined ? ""
          : ` Around the second send the server's counters moved by ${n(r.delta_queries)} tokens looked up and ${n(r.delta_hits)} hit ` +
            `(vllm:prefix_cache_queries_total, vllm:prefix_cache_hits_total)${r.alone ? "" : "; other requests ran meanwhile, so those deltas are not only this one's"}.`;
        says(out, `The same ${n(r.first.prompt_tokens)}-token prompt, twice, measured ${where(r)}: time to first token ${ms(r.first.ms)}, then ` +
          `${ms(r.second.ms)} (${r.speedup.toFixed(1)}× faster). The second had ${cachedOf(r.second)} tokens from the cache ` +
          `(blocks of ${r.block_size}).${counters} A warm-up request went first and is not counted.`);
        if (r.max_abs_diff !== undefined) says(out, `Its answer's logits differ from the first's by at most ${r.max_abs_diff}: reuse changes no number.`, "note");
        raw(out, r, ctx.info);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 3: exactly two blocks (and one token more), each sent twice.
  prefix_two_blocks(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "prefix_two_blocks", label: "Sending prompts of two blocks twice",
      call: post("/api/live/prefix_two_blocks"), draw: (out, r) => {
        const [two, more] = r.rows;
        out.append(table("two-blocks", ["prompt tokens", "cached on the second send", `whole blocks of n − 1 (⌊(n − 1) ÷ ${r.block_size}⌋ × ${r.block_size})`],
          r.rows.map((x) => row([n(x.tokens), n(x.cached_tokens), n(x.predicted)]))));
        says(out, `The block size is ${r.block_size} tokens, read from ${r.on === "server" ? "the server's vllm:cache_config_info" : "this process's cache"}. ` +
          `A prompt of exactly two blocks (${n(two.tokens)} tokens) got ${n(two.cached_tokens)} from the cache; one token more ` +
          `(${n(more.tokens)}) got ${n(more.cached_tokens)}. Measured ${where(r)}.`);
        raw(out, r, ctx.info);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 4: one token changed, at the start or near the end.
  prefix_one_word(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "prefix_one_word", label: "Sending the prompt with one token changed",
      call: post("/api/live/prefix_one_word"), draw: (out, r) => {
        out.append(table("one-word", ["token changed", "cached", "time to first token"],
          r.rows.map((x) => row([`${x.change} (token ${n(x.position + 1)} of ${n(r.tokens)})`, cachedOf(x), ms(x.ms)], `change-${x.change.replaceAll(" ", "-")}`))));
        const [first, late] = r.rows;
        says(out, `The ${n(r.tokens)}-token prompt was cached first (${ms(r.base.ms)} to its first token). With its first token changed ` +
          `${n(first.cached_tokens)} tokens were reused (${ms(first.ms)}); with token ${n(late.position + 1)} changed, ${n(late.cached_tokens)} ` +
          `(${ms(late.ms)}): every whole block before the change. Blocks of ${r.block_size}, measured ${where(r)}.`);
        raw(out, r, ctx.info);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 5: the prompt re-sent after growing amounts of other traffic (a plan and consent on a server).
  prefix_survival(box, step, ctx) {
    const draw = (out, r) => {
      const rounds = r.rounds_done || r.rounds;
      lineChart(chartBox(out, "survival"), [{ name: "your prompt's tokens still cached", points: rounds.map((x) => [x.other_tokens, x.cached_tokens]) }],
        { xLabel: "other prompt tokens since it was last sent", yLabel: "tokens cached", zero: "nothing of it cached" });
      out.append(table("survival", ["other traffic since your prompt was last sent", "its tokens still cached", "time to first token"],
        rounds.map((x) => row([`${x.fraction}× the cache: ${x.other_requests} prompts, ${n(x.other_tokens)} tokens`, `${n(x.cached_tokens)} of ${n(r.most)}`, ms(x.ms)]))));
      const size = r.capacity_tokens ?? r.tokens;
      says(out, `Your ${n(r.prompt_tokens)}-token prompt (${n(r.most)} tokens reusable) in a cache of ${n(size)} tokens, measured ${where(r)}. ` +
        "After each amount of other traffic it was sent again, which put it back at the end of the eviction line." +
        (r.stopped ? ` ${r.stopped}.` : "") + (r.healthy_after === undefined ? "" : ` /health after: ${r.healthy_after ? "OK" : "NOT OK"}.`));
      raw(out, r, ctx.info);
      out.append(K.source(r.source, step, ctx.lesson, r.reveal));
    };
    measuredReveal(box, step, ctx, { key: "prefix_survival", label: "Sending your prompt between other traffic",
      call: post("/api/live/prefix_survival"), draw: withConsent("/api/live/prefix_survival", "prefix_survival", ctx, draw) });
  },

  // Step 6 (security): a probe's time for the victim's prompt against another, without and with salts.
  prefix_side_channel(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "prefix_side_channel", label: "Timing another tenant's probe",
      call: post("/api/live/prefix_side_channel"), draw: (out, r) => {
        const s = r.shared, t = r.salted;
        K.barChart(chartBox(out, "side-channel"), [
          { label: "no salts: the probe sends the victim's prompt", value: s.probe_same.ms, measured: true },
          { label: "no salts: the probe sends another prompt", value: s.probe_other.ms },
          { label: "a salt per tenant: the probe sends the victim's prompt", value: t.probe_same.ms, measured: true },
          { label: "a salt per tenant: the victim sends it again", value: t.owner_again.ms },
        ], "ms");
        out.append(table("side-channel", ["request", "cached", "time to first token"], [
          row(["no salts: probe with the victim's prompt", cachedOf(s.probe_same), ms(s.probe_same.ms)], "probe-same"),
          row(["no salts: probe with another prompt", cachedOf(s.probe_other), ms(s.probe_other.ms)], "probe-other"),
          row(["salted: probe with the victim's prompt", cachedOf(t.probe_same), ms(t.probe_same.ms)], "salted-probe"),
          row(["salted: the victim again, own salt", cachedOf(t.owner_again), ms(t.owner_again.ms)], "salted-owner"),
        ]));
        says(out, `A security lesson, measured ${where(r)} with ${n(r.tokens)}-token prompts. Without salts the probe of the victim's prompt ` +
          `started after ${ms(s.probe_same.ms)} and another prompt after ${ms(s.probe_other.ms)}: the gap tells the prober its guess was sent. ` +
          `With a cache_salt per tenant the same probe took ${ms(t.probe_same.ms)} (${n(t.probe_same.cached_tokens)} cached), while the victim's ` +
          `own re-send still took ${ms(t.owner_again.ms)} (${n(t.owner_again.cached_tokens)} cached).`);
        raw(out, r, ctx.info);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },
};
