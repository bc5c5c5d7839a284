// The lab: the loop on the learner's own prompt, one step at a time or running, with branching.
// The server keeps this browser's run (token ids, KV cache); this page draws its records.
import { el, status, store } from "./dom.js";
import { api, header, stream } from "./api.js";
import { bars, ms, pct, shown } from "./charts.js";
import { fromLink } from "./lablink.js";
import { loopCode } from "./loopcode.js";

// Why a run stopped, in words (records.Stop): "Stopped (stopped)" said nothing.
const STOPS = {
  eos: "the model emitted its end token",
  max_new: "max new tokens reached",
  context: "the lab's length limit reached",
  stopped: "you pressed Stop",
};

(async () => {
  const $ = (id) => document.getElementById(id);
  const statusLine = $("status");
  const KEY = "tokenloop.lab";
  const saved = store.load(KEY);
  const run = { started: false, prompt: "", chat: false, cache: true, prompt_tokens: [], steps: [], selected: null };
  let running = null; // AbortController of a Run in progress
  let info;
  let lessonId = saved.lesson || null; // the lesson a try-it link came from: the Lesson link goes back to it
  let previous = saved.previous || null; // the last finished run, put beside the next one (cache or not)

  // --- settings that survive a reload -----------------------------------------------------------
  const fields = ["prompt", "temperature", "top-k", "top-p", "seed", "max-new"];
  for (const id of fields) if (saved[id] !== undefined) $(id).value = saved[id];
  if (saved.chat) $("chat").checked = true;
  if (saved.cache === false) $("cache").checked = false;
  const remember = () => {
    const out = Object.fromEntries(fields.map((id) => [id, $(id).value]));
    out.chat = $("chat").checked;
    out.cache = $("cache").checked;
    out.run = run.started ? { prompt: run.prompt, chat: run.chat, cache: run.cache, steps: run.steps } : null;
    out.lesson = lessonId;
    out.previous = previous;
    store.save(KEY, out);
  };
  for (const id of [...fields, "chat", "cache"]) $(id).addEventListener("change", remember);

  const optional = (id, parse) => ($(id).value === "" ? null : parse($(id).value));
  const sampler = () => ({
    temperature: Number($("temperature").value || 0),
    top_k: optional("top-k", (v) => parseInt(v, 10)),
    top_p: optional("top-p", Number),
    seed: optional("seed", (v) => parseInt(v, 10)),
  });

  // --- drawing ------------------------------------------------------------------------------------
  const tint = (p) => (p === null || p === undefined ? "transparent" : `hsl(${Math.round(120 * p)}, 70%, 82%)`);

  function draw() {
    const text = $("text");
    text.replaceChildren();
    for (const t of run.prompt_tokens) text.append(el("span", { class: "tok prompt", text: t.token, title: `prompt token ${t.id}` }));
    run.steps.forEach((s, i) => {
      const span = el("span", {
        class: "tok gen" + (i === run.selected ? " selected" : "") + (s.extra && s.extra.branched ? " branched" : ""),
        text: s.chosen.token, style: { background: tint(s.chosen.prob) }, dataset: { step: s.step, prob: s.chosen.prob ?? "" },
        tabindex: 0,
      });
      span.addEventListener("mouseenter", () => showTip(span, s));
      span.addEventListener("mouseleave", hideTip);
      span.addEventListener("click", () => { run.selected = i; draw(); });
      text.append(span);
    });
    drawDistributions();
    drawTable();
  }

  function drawDistributions() {
    const s = run.steps[run.selected ?? run.steps.length - 1];
    if (!s) {
      $("raw-bars").replaceChildren();
      $("processed-bars").replaceChildren();
      return;
    }
    $("dist-title").textContent = `Distributions at step ${s.step} (position ${s.position})`;
    const pickAt = (c) => branch(s.step, c.id);
    bars($("raw-bars"), s.top, { chosen: s.chosen.id, other: s.other, onPick: s.top.length ? pickAt : null,
      label: s.extra && s.extra.restored ? "restored from this browser: step again to see candidates" : "Raw distribution (softmax of the logits)" });
    if (s.processed) bars($("processed-bars"), s.processed, { chosen: s.chosen.id, onPick: pickAt, label: `After the sampler (${s.sampler})` });
    else {
      $("processed-bars").replaceChildren(el("div", { class: "bars-label", text: `After the sampler (${s.sampler})` }),
        el("p", { class: "note", text: s.sampler === "greedy" ? "Greedy: the sampler does not reshape the distribution; it takes the top raw token." : "This token was not drawn by the sampler." }));
    }
  }

  // The prefill reads the whole prompt in one pass (step 1, or the step after a branch); each decode
  // step reads the one new token. Without a cache every step reads the whole sequence.
  const phase = (s) => (s.extra && s.extra.restored ? "restored" : !s.cache ? "whole sequence" : s.step === 1 || s.tokens_in > 1 ? "prefill" : "decode");

  function drawTable() {
    const body = document.querySelector("#steps-table tbody");
    body.replaceChildren(...run.steps.map((s) => el("tr", {},
      el("td", { text: s.step }), el("td", { text: shown(s.chosen.token) }), el("td", { text: pct(s.chosen.prob) }),
      el("td", { text: ms(s.ms) }), el("td", { text: s.tokens_in }), el("td", { class: `phase-${phase(s)}`, text: phase(s) }),
      el("td", { text: s.sampler }))));
    const prefill = run.steps.filter((s) => phase(s) === "prefill"), decode = run.steps.filter((s) => phase(s) === "decode");
    const mean = (list) => list.reduce((sum, s) => sum + s.ms, 0) / list.length;
    $("phases").textContent = prefill.length && decode.length
      ? `Prefill: ${prefill[0].tokens_in} tokens in one pass, ${ms(prefill[0].ms)}. Decode: ${decode.length} steps of one token, ${ms(mean(decode))} each on average.`
      : "";
    $("cached").textContent = cachedNote(run.steps);
  }

  // On a server that reports it (vLLM's cached_tokens), what the step after a branch (or the last
  // step) got from the server's prefix cache: a branch shares the prompt's blocks (Lesson 8).
  function cachedNote(steps) {
    const known = (s) => s && s.extra && s.extra.cached_tokens !== undefined && s.extra.prompt_tokens !== undefined;
    const at = steps.findLastIndex((s) => s.extra && s.extra.branched);
    const s = known(steps[at + 1]) ? steps[at + 1] : at < 0 ? steps.findLast(known) : null;
    if (!s) return "";
    const which = at >= 0 && s === steps[at + 1] ? `Step ${s.step}, the first after your branch at step ${at + 1}` : `Step ${s.step}`;
    return `${which}: the server took ${s.extra.cached_tokens.toLocaleString("en")} of its ${s.extra.prompt_tokens.toLocaleString("en")} ` +
      "prompt tokens from its prefix cache (cached_tokens), in whole blocks shared with the run before the branch.";
  }

  const tip = $("tip");
  function showTip(span, s) {
    tip.replaceChildren(el("div", { class: "bars-label", text: `step ${s.step}: picked ${shown(s.chosen.token)}, ${ms(s.ms)}` }));
    const list = el("div", { class: "bars" });
    bars(list, s.top.slice(0, 8), { chosen: s.chosen.id });
    tip.append(list);
    const box = span.getBoundingClientRect();
    tip.style.left = `${window.scrollX + box.left}px`;
    tip.style.top = `${window.scrollY + box.bottom + 6}px`;
    tip.hidden = false;
  }
  function hideTip() { tip.hidden = true; }

  function load(state, local) {
    Object.assign(run, { started: state.started, prompt: state.prompt, chat: state.chat, cache: state.cache, prompt_tokens: state.prompt_tokens, steps: state.steps });
    if (local) run.steps = run.steps.map((s, i) => (s.extra && s.extra.restored && local[i] && local[i].chosen.id === s.chosen.id ? local[i] : s));
    run.selected = run.steps.length ? run.steps.length - 1 : null;
    draw();
    remember();
  }

  // --- actions ------------------------------------------------------------------------------------
  async function act(work) {
    status(statusLine, "");
    try { await work(); } catch (error) { if (error.name !== "AbortError") status(statusLine, error.message); }
  }

  async function ensureStarted() {
    const prompt = $("prompt").value;
    if (!run.started || prompt !== run.prompt || $("chat").checked !== run.chat || $("cache").checked !== run.cache) await start();
  }

  async function start() {
    load(await api("/api/lab/start", { prompt: $("prompt").value, chat: $("chat").checked, cache: $("cache").checked }));
    $("summary").textContent = `${run.prompt_tokens.length} prompt tokens. Press Step or Run.`;
  }

  async function step() {
    await ensureStarted();
    const record = await api("/api/lab/step", { sampler: sampler(), show: 8 });
    if (record === null) { $("summary").textContent = "The run is at the lab's length limit."; return; }
    run.steps.push(record);
    run.selected = run.steps.length - 1;
    draw();
    remember();
  }

  function busy(on) {
    for (const id of ["start", "step", "run", "next"]) $(id).disabled = on;
    $("stop").disabled = !on;
  }

  async function runLoop() {
    await ensureStarted();
    running = new AbortController();
    busy(true);
    try {
      await stream("/api/lab/run", { sampler: sampler(), show: 8, max_new: Number($("max-new").value || 16) }, (event, data) => {
        if (event === "step") {
          run.steps.push(data);
          run.selected = run.steps.length - 1;
          draw();
        } else if (event === "done") {
          $("summary").textContent = `Stopped: ${STOPS[data.stop] || data.stop}, after ${data.ids.length} tokens, ${data.tokens_per_s.toFixed(1)} tokens/s.`;
          finished();
        }
      }, running.signal);
    } finally {
      running = null;
      busy(false);
      remember();
    }
  }

  // A finished run beside the one before it: the try-it pair "without the cache, then with it" is
  // compared on the same screen (the last rows' time, and whether the words were the same).
  const lateMs = (steps) => { const late = steps.slice(-5); return late.reduce((sum, s) => sum + s.ms, 0) / late.length; };
  const cacheWords = (cache) => (cache ? "with the KV cache" : "without the KV cache");
  function showPrevious(before) {
    const note = $("previous-run");
    note.hidden = !before;
    if (!before) return;
    const now = run.steps.filter((s) => !(s.extra && s.extra.restored));
    const same = before.prompt === run.prompt && before.ids.join() === now.map((s) => s.chosen.id).slice(0, before.ids.length).join();
    note.textContent = `The run before this one (${cacheWords(before.cache)}, ${before.ids.length} tokens): its last steps took ${ms(before.late_ms)} each. ` +
      `This run (${cacheWords(run.cache)}, ${now.length} tokens): ${now.length ? ms(lateMs(now)) : "–"} each.` +
      (before.prompt === run.prompt ? (same ? " Same prompt, same words." : " Same prompt, other words (another sampler or a branch).") : " (another prompt)");
  }
  function finished() {
    const now = run.steps.filter((s) => !(s.extra && s.extra.restored));
    if (!now.length) return;
    const before = previous;
    showPrevious(before);
    previous = { prompt: run.prompt, cache: run.cache, ids: now.map((s) => s.chosen.id), late_ms: lateMs(now) };
    remember();
  }

  async function stop() {
    await api("/api/lab/stop", {});
    const current = running;
    setTimeout(() => current && current === running && current.abort(), 5000); // a step is never this slow; give up waiting
  }

  async function branch(stepNo, tokenId) {
    if (running) return status(statusLine, "Stop the run before branching.");
    load(await api("/api/lab/branch", { step: stepNo, token_id: tokenId }));
    $("summary").textContent = `Branched at step ${stepNo}: press Step or Run to continue from your pick.`;
  }

  async function nextToken() {
    const result = await api("/api/next", { prompt: $("prompt").value, chat: $("chat").checked, top_k: 8 });
    $("dist-title").textContent = `Next token for the prompt as typed (${ms(result.ms)}, nothing appended)`;
    bars($("raw-bars"), result.top, { other: result.other, label: "Raw distribution (softmax of the logits)" });
    $("processed-bars").replaceChildren(el("p", { class: "note", text: "Press Step to let the sampler pick and append." }));
  }

  async function compare() {
    const result = await api("/api/compare", { prompt: $("prompt").value, chat: $("chat").checked, top_k: 8, max_new: 8 });
    for (const [side, r] of [["compare-a", result.a], ["compare-b", result.b]]) {
      const box = $(side);
      const list = el("div", { class: "bars" });
      bars(list, r.top, { other: r.other, label: `${r.model} (${r.backend}), ${ms(r.ms)}` });
      box.replaceChildren(list, el("p", { class: "note", text: "Greedy continuation:" }), el("p", { class: "quote", text: r.text }));
    }
  }

  async function scoreText() {
    const result = await api("/api/score", { text: $("score-text").value });
    const out = $("score-out");
    out.replaceChildren(...result.tokens.map((t) => el("span", {
      class: "tok" + (t.rank === 1 ? " rank1" : ""), text: t.token, style: { background: tint(t.prob) },
      dataset: { rank: t.rank ?? "", prob: t.prob ?? "" },
      title: t.rank ? `rank ${t.rank} · ${pct(t.prob)} · the model's favourite: ${shown(t.top.token)} ${pct(t.top.prob)}` : "first token: nothing before it",
    })));
    $("score-summary").textContent = `${result.model}: ${result.tokens.length} tokens in one pass (${ms(result.ms)}); ` +
      `mean log-probability ${result.mean_logprob.toFixed(2)}, perplexity ${result.perplexity.toFixed(1)}.`;
  }

  // A link (the lesson's try-it list) fills in the prompt and settings, then starts the run, or,
  // where the learner has a run, asks first.
  async function openedFromLink() {
    const link = fromLink(location.search, $);
    history.replaceState(null, "", location.pathname); // a reload keeps what the learner changed since
    const note = $("link-note");
    const parts = [];
    if (link.lessonId) lessonId = link.lessonId;
    if (link.tryId) {
      const lesson = await api("/api/lesson" + (lessonId ? `?name=${encodeURIComponent(lessonId)}` : ""));
      const item = (lesson.try_it?.items || []).find((i) => i.id === link.tryId);
      if (item) parts.push(`From ${lesson.title.split(" — ")[0]}'s try-it list: ${item.title}. Look for: ${item.look_for}`);
    }
    lessonLink();
    if (link.refused.length) parts.push(`Left out of the link, as not valid here: ${link.refused.join(", ")}.`);
    // A link (from any page, another site's too) never replaces a run the learner made: it asks first.
    const ask = link.filled.length && run.started && run.steps.length;
    if (ask) parts.push("This link would replace your run: press Start to run its prompt (your run stays until then).");
    note.textContent = parts.join(" ");
    note.hidden = !parts.length;
    remember();
    if (link.filled.length && !ask) await start();
  }

  // The header's Lesson link goes back to the lesson the learner came from, not always Lesson 1.
  function lessonLink() {
    if (lessonId) $("lesson-link").href = `/?lesson=${encodeURIComponent(lessonId)}`;
  }

  $("start").addEventListener("click", () => act(start));
  $("step").addEventListener("click", () => act(step));
  $("run").addEventListener("click", () => act(runLoop));
  $("stop").addEventListener("click", () => act(stop));
  $("next").addEventListener("click", () => act(nextToken));
  $("compare-run").addEventListener("click", () => act(compare));
  $("score-run").addEventListener("click", () => act(scoreText));

  // --- start-up: the server's run for this browser, or the one saved here -----------------------
  await act(async () => {
    info = await header();
    if (!$("prompt").value) $("prompt").value = $("prompt").placeholder;
    if (info.compare) {
      $("compare").hidden = false;
      $("compare-note").textContent = `${info.model} (${info.backend}) beside ${info.compare} (embedded), same prompt, greedy.`;
    }
    if (!info.can_score) $("score-run").disabled = true;
    const state = await api("/api/lab");
    if (state.started) load(state);
    else if (saved.run && saved.run.prompt) {
      $("prompt").value = saved.run.prompt;
      $("chat").checked = saved.run.chat;
      const ids = saved.run.steps.map((s) => s.chosen.id);
      load(await api("/api/lab/start", { prompt: saved.run.prompt, chat: saved.run.chat, cache: saved.run.cache !== false, resume: ids }), saved.run.steps);
    }
    if (location.search) await openedFromLink();
    lessonLink();
    const code = (await api("/api/lesson?name=day01")).loop_code; // the lab runs Lesson 1's loop
    if (code) $("loop-code").replaceChildren(loopCode(code));
  });
  document.body.dataset.ready = "1";
})();
