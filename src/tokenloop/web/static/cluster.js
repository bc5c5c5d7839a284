// With --url: the connected server as tokenloop's probe found it (engine and version, model,
// context, logprob cap, raw or processed logprobs), and step 5's staircase measured on that
// server itself. Everything rendered as text.
import { el, status } from "./dom.js";
import { api } from "./api.js";
import { lineChart, ms, withSpread } from "./charts.js";
import { kinds } from "./kinds.js";

export const cluster = async (section, { lesson }) => {
  const words = lesson.cluster;
  const note = el("p", { class: "status busy", text: "Asking the server…" });
  section.hidden = false;
  section.append(el("h2", { text: words.title }), el("p", { text: words.intro }), note);
  try {
    const { cluster: c } = await api("/api/cluster");
    if (!c) return section.remove();
    const caching = c.prefix_caching === null ? "not reported"
      : c.prefix_caching ? `on${c.block_size ? `, in blocks of ${c.block_size} tokens` : ""}` : "off";
    const rows = [
      ["Engine", [c.engine, c.version].filter(Boolean).join(" ")],
      ["Model", c.model],
      ["Context", c.context_length ? `${c.context_length.toLocaleString("en")} tokens` : "not reported"],
      ["Logprobs per token", c.max_logprobs ? `at most ${c.max_logprobs}` : `no cap met (${c.logprobs_returned} returned)`],
      ["Its logprobs are", c.distribution_detail],
      ["Prompt sent as", c.prompt_ids ? `token ids (its tokenizer: ${c.tokenizer})` : "text"],
      ["Prefix caching", caching],
      ["Address", c.url],
    ];
    const table = el("table", { id: "cluster-facts" });
    for (const [name, value] of rows) table.append(el("tr", { dataset: { fact: name } }, el("th", { text: name }), el("td", { text: value ?? "–" })));
    note.replaceWith(table);
  } catch (error) {
    status(note, error.message);
  }
};

// Step 5 on the server: `demo` is the lesson's own button-and-last-result helper.
export const serverStaircase = (box, { lesson, demo }) => {
  box.append(el("p", { class: "note", text: lesson.cluster.staircase }));
  demo(box, "server-staircase", "Measure it on the server", {}, (out, r) => {
    const first = r.series[0], last = r.series[r.series.length - 1];
    const chart = el("div", { class: "chart-box" });
    out.append(el("p", { class: "chart-title", text: `Measured on ${r.model} by ${r.engine} at ${r.url}: medians of ${r.repeats} runs, whiskers from the fastest to the slowest` }), chart);
    lineChart(chart, [
      { name: "no cache: a fresh prompt of n tokens", points: r.series.map((p) => withSpread(p.n, p.fresh_samples_ms || [p.fresh_ms])) },
      { name: "KV cache: one new token", points: r.series.filter((p) => p.itl_ms !== null).map((p) => withSpread(p.n, p.itl_samples_ms || [p.itl_ms])) },
    ], { xLabel: "tokens in the sequence", yLabel: "ms per step" });
    const mid = (p, kind) => (p[`${kind}_ms`] === null ? null : withSpread(0, p[`${kind}_samples_ms`] || [p[`${kind}_ms`]])[1]);
    const grew = r.effect?.fresh?.verdict;
    const noise = grew && grew !== "higher" ? " The growth is within the spread of the repeats here: can't tell on this machine now; measure again." : "";
    out.append(el("p", { class: "live", text:
      `${r.engine}, ${r.model}: reading the whole sequence took ${ms(mid(first, "fresh"))} at ${first.n} tokens and ${ms(mid(last, "fresh"))} at ${last.n}; ` +
      `with the cache one step took ${last.itl_ms === null ? "–" : ms(mid(last, "itl"))}.${noise}` }));
    if (r.fits.itl) {
      out.append(el("details", { class: "fit-details" }, el("summary", { text: "Details: the fitted lines" }),
        el("p", { class: "note", text: `Without a cache: ${r.fits.fresh.formula} (R² ${r.fits.fresh.r2.toFixed(2)}); with one: ${r.fits.itl.formula}.` })));
    }
    const table = el("table", { class: "hits" }, el("tr", {}, el("th", { text: "send" }), el("th", { text: "time to first token" }),
      el("th", { text: "prompt tokens found in the cache" })));
    for (const h of r.hits) {
      const found = h.hit_tokens === null ? "not reported" : `${h.hit_tokens} of ${h.prompt_tokens}`;
      table.append(el("tr", { dataset: { send: h.label } }, el("td", { text: h.label }), el("td", { text: ms(h.ttft_ms) }), el("td", { text: found })));
    }
    out.append(el("p", { class: "note", text: lesson.cluster.hits }), table);
    const step = lesson.steps.find((s) => s.live === "staircase") || { honesty: "shape" };
    if (r.source) out.append(kinds.source(r.source, step, lesson)); // the server that measured it
  });
};
