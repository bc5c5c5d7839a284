// "See it raw": the exact call behind the lesson's bars (info.curl, web/info.py), the metrics a
// lesson reads from a vLLM server (the YAML's raw.metrics), and the reply's logprobs turned into the
// bars' % (e to the logprob), on the learner's click: nothing is called before it.
import { copy, el, status } from "./dom.js";
import { api } from "./api.js";
import { shown } from "./charts.js";

const block = (id, text) => {
  const button = el("button", { class: "copy", text: "Copy" });
  button.addEventListener("click", () => copy(text, button));
  return [el("pre", { id, class: "code", text }), button];
};

export function raw(section, { info, lesson }) {
  const r = lesson.raw;
  section.append(el("h2", { text: r.title }), el("p", { text: r.text }));
  if (r.metrics?.length) {
    const root = (info.server_url || "http://localhost:8000").replace(/\/+$/, "");
    const names = r.metrics.map((m) => m.replace(/^vllm:/, "")).join("|");
    section.append(...block("metrics-curl", `curl -s ${root}/metrics | grep -E '^vllm:(${names})'`));
    if (!info.server_url) section.append(el("p", { class: "note", text: "On your vLLM server: this app, on the embedded model, serves no /metrics." }));
  }
  section.append(...block("curl", info.curl));
  if (!r.logprobs) return;
  const out = el("div", { class: "logprobs" });
  const note = el("p", { class: "status" });
  const run = el("button", { class: "run-raw", text: "Make this call here: logprob → %" });
  run.addEventListener("click", async () => {
    run.disabled = true;
    status(note, "");
    try {
      const result = await api("/api/next", { prompt: lesson.prompt, top_k: 8 });
      out.replaceChildren(el("table", { class: "logprob-table" },
        el("thead", {}, el("tr", {}, el("th", { text: "token" }), el("th", { text: "logprob" }), el("th", { text: "e to the logprob = the bar" }))),
        el("tbody", {}, ...result.top.map((c) => {
          const logprob = c.logprob ?? Math.log(c.prob);
          return el("tr", {}, el("td", { text: shown(c.token) }), el("td", { text: logprob.toFixed(2) }),
            el("td", { text: `exp(${logprob.toFixed(2)}) = ${(100 * Math.exp(logprob)).toFixed(1)}%` }));
        }))));
    } catch (error) {
      status(note, error.message);
    } finally {
      run.disabled = false;
    }
  });
  section.append(el("p", { class: "note", text: r.logprobs }), el("div", { class: "actions" }, run), note, out);
}
