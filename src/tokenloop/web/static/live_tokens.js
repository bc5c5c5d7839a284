// Lesson 2's live reveals: tokens. Each asks the app to count (web/live_tokens.py) with the
// connected tokenizer (the server's /tokenize, or the embedded model's), draws the pieces as chips
// with their ids, scores the guess against the count, and names where it came from (kinds.source).
// The measuring and keeping is live_kv.js's measuredReveal.
import { el } from "./dom.js";
import { api } from "./api.js";
import { kinds as K } from "./kinds.js";
import { measuredReveal } from "./live_kv.js";

const says = (box, text) => box.append(el("p", { class: "live", text }));
const post = (path) => (query) => api(path + query, {});
const q = (t) => JSON.stringify(t);
const n = (x) => x.toLocaleString("en");
const chartBox = (box, name) => { const c = el("div", { class: `chart-box live-chart chart-${name}` }); box.append(c); return c; };
const made = (r) => `Counted on ${r.on}.` + (r.why ? ` Why not on the server: ${r.why}.` : "");

// The pieces as chips: the piece's text (quoted, so a leading space shows) over its id.
function chips(out, tokens, cls = () => "") {
  const row = el("div", { class: "token-chips" });
  for (const t of tokens) row.append(el("span", { class: `token-chip ${cls(t)}`, title: `id ${t.id}` },
    el("span", { class: "chip-piece", text: q(t.piece) }), el("span", { class: "chip-id", text: String(t.id) })));
  out.append(row);
  return row;
}

// "See it raw": the request(s) the reveal sent, as curl, to the server or to this app's own endpoint.
function raw(out, requests, info) {
  const base = (info.server_url || location.origin).replace(/\/+$/, "");
  const lines = requests.filter(Boolean).map((r) =>
    `curl -s ${base}${r.path} -H 'Content-Type: application/json' -d '${JSON.stringify(r.body).replaceAll("'", "'\\''")}'`);
  if (!lines.length) return;
  out.append(el("details", { class: "raw-request" }, el("summary", { text: "See it raw: the request this reveal sent" }),
    el("pre", { class: "code", text: lines.join("\n") })));
}

// A choice graded by what was measured: the measured answer's index stands in for the YAML's.
const measuredChoice = (step, guess, answer) => K.choiceVerdict({ ...step, answer }, guess);

// Rank colours: 1, 2–10, 11–100, 101–1,000, above.
const rankClass = (rank) => rank == null ? "rank-none" : rank === 1 ? "rank-1" : rank <= 10 ? "rank-10" : rank <= 100 ? "rank-100" : rank <= 1000 ? "rank-1000" : "rank-more";

export const tokens = {
  // Step 1: the prompt's pieces and their ids.
  token_pieces(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "token_pieces", label: "Asking the tokenizer",
      call: post("/api/live/token_pieces"), draw: (out, r) => {
        out.append(K.estimate.verdict(step, ctx.guess, r.count, r.reveal));
        chips(out, r.tokens);
        const spelt = r.tokens.some((t) => t.piece.includes("Ġ")) ? " The server shows each piece as its vocabulary spells it: Ġ stands for a leading space." : "";
        says(out, `${q(r.text)}: ${r.words} words, ${r.chars} characters, ${r.count} tokens.${spelt} ${made(r)}`);
        raw(out, [r.request], ctx.info);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 2: the same text as one chat message; the template's tokens coloured apart from yours.
  chat_template(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "chat_template", label: "Rendering the chat template and counting",
      call: post("/api/live/chat_template"), draw: (out, r) => {
        out.append(K.estimate.verdict(step, ctx.guess, r.count, r.reveal));
        chips(out, r.tokens, (t) => (t.yours ? "chip-yours" : "chip-template"));
        out.append(el("p", { class: "chip-legend" }, el("span", { class: "token-chip chip-yours", text: "yours" }), " ",
          el("span", { class: "token-chip chip-template", text: "the template's" })));
        const found = r.found ? "" : " (your pieces were cut differently inside the template, so none are marked as yours)";
        const check = r.usage_prompt_tokens === r.count ? "the same count" : `${r.usage_prompt_tokens}, not the same`;
        says(out, `Your ${r.own} tokens became ${r.count}: the template added ${r.added}${found}. ` +
          `Cross-check, ${r.usage_how}: ${r.usage_prompt_tokens} (${check}). ${made(r)}`);
        raw(out, r.requests, ctx.info);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 3: tokens per 1,000 characters by kind; graded against the dearest measured.
  tokens_per_kchar(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "tokens_per_kchar", label: "Tokenizing six kinds of text",
      call: post("/api/live/tokens_per_kchar"), draw: (out, r) => {
        out.append(measuredChoice(step, ctx.guess, step.choices.indexOf(r.dearest)));
        K.barChart(chartBox(out, "per-kchar"), r.rows.map((x) => ({ label: x.kind, value: x.per_1000, measured: x.kind === r.dearest })), "");
        says(out, r.rows.map((x) => `${x.kind} ${Math.round(x.per_1000)} (${x.tokens} tokens / ${x.chars} characters)`).join(", ") +
          ` tokens per 1,000 characters: ${r.spread.toFixed(1)}× between the cheapest and the dearest. ${made(r)}`);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 4: near the context limit with a large max_tokens, then over it; graded by what came back.
  context_limits(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "context_limits", label: "Sending requests at the context limit",
      call: post("/api/live/context_limits"), draw: (out, r) => {
        out.append(measuredChoice(step, ctx.guess, r.answer));
        const said = (x) => x.status === 200
          ? `HTTP 200, ${x.completion_tokens} tokens back, finish_reason ${q(x.finish_reason)}`
          : `HTTP ${x.status}: ${q(x.error)}`;
        out.append(el("table", { class: "limits-table" },
          el("tr", {}, ...["request", "what came back"].map((h) => el("th", { text: h }))),
          el("tr", { class: "limits-near" }, el("td", { text: `${n(r.near.prompt_tokens)}-token prompt, max_tokens ${r.near.max_tokens}` }), el("td", { text: said(r.near) })),
          el("tr", { class: "limits-over" }, el("td", { text: `${n(r.over.prompt_tokens)}-token prompt, max_tokens ${r.over.max_tokens}` }), el("td", { text: said(r.over) }))));
        says(out, `The context holds ${n(r.context)} tokens. ${made(r)}`);
        raw(out, [r.request], ctx.info);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },

  // Step 5: each prompt piece's rank given the pieces before it, as coloured chips.
  prompt_surprise(box, step, ctx) {
    measuredReveal(box, step, ctx, { key: "prompt_surprise", label: "Scoring the prompt, every position at once",
      call: post("/api/live/prompt_surprise"), draw: (out, r) => {
        const g = (ctx.guess ?? 0) / 100;
        const close = Math.abs(g - r.top1_share) <= 0.05 || (g > 0 && r.top1_share > 0 && Math.max(g / r.top1_share, r.top1_share / g) <= 2);
        out.append(el("div", { class: "verdict " + (close ? "right" : "wrong") },
          el("div", { class: "yours" }, el("strong", { text: "Your guess: " }), `${ctx.guess ?? "–"}%`),
          el("div", { class: "answer" }, el("strong", { text: "Measured: " }), `${(100 * r.top1_share).toFixed(1)}% (${r.top1} of ${r.scored} pieces ranked 1)`)));
        const row = chips(out, r.tokens, (t) => rankClass(t.rank));
        row.querySelectorAll(".token-chip").forEach((c, i) => {
          const t = r.tokens[i];
          c.append(el("span", { class: "chip-rank", text: t.rank == null ? "first" : `rank ${n(t.rank)}` }));
        });
        const w = r.most_surprising;
        says(out, `Of ${r.scored} pieces after the first, ${r.top1} were the model's top guess. The most surprising: ` +
          `${q(w.piece)} at rank ${n(w.rank)} (logprob ${w.logprob.toFixed(1)}). ${made(r)}`);
        raw(out, [r.request], ctx.info);
        out.append(K.source(r.source, step, ctx.lesson, r.reveal));
      } });
  },
};
