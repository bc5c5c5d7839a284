// The lesson page: renders the lesson's content (from /api/lesson) and fills its live parts
// (bars, training numbers, the staircase) from the connected model.
import { afterStep, copy, el, status, store } from "./dom.js";
import { api, header } from "./api.js";
import { bars, lineChart, ms, pct, shown, withSpread } from "./charts.js";
import { kinds } from "./kinds.js";
import { GRADED_LIVE, PAGE, live as kvSteps, measuredReveal, progressLine } from "./live_kv.js";
import { live as prefillSteps } from "./live_prefill.js";
import { prefix as prefixSteps } from "./live_prefix.js";
import { sampling as samplingSteps } from "./live_sampling.js";
import { tokens as tokenSteps } from "./live_tokens.js";
import { cluster, serverStaircase } from "./cluster.js";
import { lessonSwitch } from "./lessons.js";
import { forYourAI } from "./export.js";
import { courseMap } from "./map.js";
import { readNext } from "./readnext.js";
import { tryIt } from "./tryit.js";
import { teacher } from "./teacher.js";
import { recall } from "./recall.js";
import { loopCode } from "./loopcode.js";
import { raw } from "./raw.js";
const liveSteps = { ...kvSteps, ...prefillSteps, ...tokenSteps, ...prefixSteps }; // the live reveals, by live key

lessonSwitch(); // the header's lesson switcher, filled while the lesson loads

(async () => {
  const statusLine = document.getElementById("status");
  let info, lesson, kept;
  try {
    const name = new URLSearchParams(location.search).get("lesson"); // /?lesson=day07
    [info, lesson] = await Promise.all([header(), api("/api/lesson" + (name ? `?name=${encodeURIComponent(name)}` : ""))]);
    // what this browser measured for the lesson: a revisit draws it, measuring nothing
    kept = await api(`/api/live/kept?lesson=${encodeURIComponent(lesson.id)}`).catch(() => ({ results: {}, running: {} }));
  } catch (error) {
    status(statusLine, error.message);
    return;
  }
  const KEY = `tokenloop.lesson.${lesson.id}`;
  const progress = Object.assign({ guesses: {}, revealed: {}, quiz: {}, quizChecked: false, colleague: "", compared: false, recall: {}, results: {} }, store.load(KEY));
  const save = () => store.save(KEY, progress);
  // A measured result: the session's (the server keeps it), else the page's own copy of it.
  const keptResult = (key) => kept.results[key] ?? progress.results[key];
  const keep = (key, result) => { kept.results[key] = result; progress.results[key] = result; save(); };
  const $ = (id) => document.getElementById(id);

  document.title = `tokenloop — ${lesson.title}`;
  $("title").textContent = lesson.title;
  $("subtitle").textContent = lesson.subtitle || "";
  $("win").textContent = lesson.win || "";
  $("how-to").textContent = lesson.how_to || "";
  if (lesson.picture) $("picture").append(el("h2", { text: lesson.picture.title }), el("p", { text: lesson.picture.text }));

  // --- the five steps: guess, then reveal ------------------------------------------------------
  // the live distribution for the lesson's prompt: fetched on the first reveal, then kept in the page
  let nextResult = progress.results.next ? Promise.resolve(progress.results.next) : null;
  const fetchNext = () => (nextResult ||= api("/api/next", { prompt: lesson.prompt, top_k: 8 }).then((r) => { keep("next", r); return r; }));

  const DEMOS = new Set(["training", "staircase"]); // Lesson 1's demos: a button, and a source line from their result
  const demoStep = (live) => lesson.steps.find((s) => s.live === live) || { honesty: "shape" };
  const live = {
    ...liveSteps, // the estimate and curve steps' reveals (live_kv.js, live_prefill.js, live_tokens.js, live_prefix.js)
    ...samplingSteps, // Lesson 6's (live_sampling.js)
    vocab(box) {
      box.append(el("p", {
        class: "live", text: info.vocab_size
          ? `Live: ${info.model} has a vocabulary of ${info.vocab_size.toLocaleString("en")} tokens, so every step gives ${info.vocab_size.toLocaleString("en")} probabilities.`
          : `Live: ${info.model} is behind a server, which sends back only its top candidates of the full distribution.`,
      }));
    },
    async next(box, step) {
      const note = el("p", { class: "live", text: "Asking the model…" });
      const chart = el("div", { class: "bars", id: "lesson-bars" });
      box.append(note, chart);
      try {
        const result = await fetchNext();
        const best = result.top[0];
        bars(chart, result.top, { other: result.other, label: `Raw distribution from ${result.model}, top ${result.top.length}` });
        note.textContent = `You guessed ${progress.guesses[step.id]}%. The model's favourite, ${shown(best.token)}, got ${pct(best.prob)} ` +
          `(one forward pass, ${ms(result.ms)}).`;
      } catch (error) {
        note.textContent = error.message;
        note.className = "status error";
      }
    },
    training(box) {
      const where = info.server_url ? " on the embedded model, in this process" : "";
      demo(box, "training", `Run the training demo${where} (${info.demo.steps} steps)`, { steps: info.demo.steps }, drawTraining);
    },
    staircase(box) {
      const { max_len, points, repeats } = info.demo;
      const where = info.server_url ? " on the embedded model, in this process" : "";
      demo(box, "staircase", `Measure the staircase${where} (up to ${max_len} tokens)`, { max_len, points, repeats }, drawStaircase);
      if (info.server_url) serverStaircase(box, { lesson, demo }); // cluster.js: the same, on the server
    },
  };

  function renderStep(step, index) {
    const box = el("section", { class: "step card", id: `step-${step.id}`, dataset: { step: step.id } });
    box.append(el("h2", { text: step.title }), el("p", { class: "question", text: step.question }));
    const reveal = el("button", { class: "reveal", disabled: true, text: "Reveal" });
    const result = el("div", { class: "result" });
    const commit = (value) => {
      progress.guesses[step.id] = value;
      save();
      reveal.disabled = false;
    };
    if (step.kind === "probability") {
      const number = el("input", { type: "number", min: 0, max: 100, step: 1, class: "guess-number", "aria-label": "your guess in percent" });
      const slider = el("input", { type: "range", min: 0, max: 100, step: 1, class: "guess-slider", "aria-label": "your guess" });
      const sync = (source, target) => source.addEventListener("input", () => {
        const value = Math.max(0, Math.min(100, Math.round(Number(source.value))));
        if (Number.isNaN(value) || source.value === "") return;
        target.value = value;
        commit(value);
      });
      sync(number, slider);
      sync(slider, number);
      if (progress.guesses[step.id] !== undefined) number.value = slider.value = progress.guesses[step.id];
      box.append(el("p", { class: "prompt-line" }, "Prompt: ", el("q", { text: lesson.prompt })),
        el("div", { class: "guess" }, el("label", { text: step.guess_label || "The top token's probability: " }), slider, number, "%"));
    } else if (step.kind === "choice") {
      const choices = el("div", { class: "choices", role: "radiogroup" });
      step.choices.forEach((choice, i) => {
        const input = el("input", { type: "radio", name: `choice-${step.id}`, value: i, checked: progress.guesses[step.id] === i });
        input.addEventListener("change", () => commit(i));
        choices.append(el("label", { class: "choice" }, input, el("span", { text: choice })));
      });
      box.append(choices);
    } else if (kinds[step.kind]) {
      kinds[step.kind].guess(box, step, progress.guesses[step.id], commit); // estimate, curve (kinds.js)
    }
    if (progress.guesses[step.id] !== undefined) reveal.disabled = false;
    reveal.addEventListener("click", () => showAnswer(step, box, result, reveal, true));
    box.append(el("div", { class: "actions" }, reveal, el("span", { class: "hint", text: "commit a guess first" })), result);
    if (progress.revealed[step.id]) showAnswer(step, box, result, reveal, false); // a revisit: kept numbers only
    return box;
  }

  // `first`: the learner pressed Reveal (a live step measures if nothing is kept); a revisit
  // redraws the kept result and measures nothing.
  function showAnswer(step, box, result, reveal, first) {
    progress.revealed[step.id] = true;
    save();
    reveal.disabled = true;
    box.classList.add("revealed");
    result.replaceChildren();
    const guess = progress.guesses[step.id];
    if (step.kind === "choice" && !GRADED_LIVE.has(step.live)) result.append(kinds.choiceVerdict(step, guess));
    result.append(el("p", { class: "explain", text: step.explain }));
    const ctx = { guess, info, lesson, first, kept: keptResult, keep };
    if (step.live && live[step.live]) live[step.live](result, step, ctx);
    // the demos' results name what ran them (training runs in this process also beside a server)
    const drawsItsSource = liveSteps[step.live] || DEMOS.has(step.live);
    if (step.honesty && !drawsItsSource) result.append(kinds.source(kinds.connected(info), step, lesson));
  }

  lesson.steps.forEach((step, i) => $("steps").append(renderStep(step, i)));

  // --- the expensive demos: on a button, results kept per browser session --------------------------
  function demo(box, name, label, body, draw) {
    const key = name.replace("-", "_"); // the session keeps server-staircase as server_staircase
    const button = el("button", { class: `run-${name}`, text: label });
    const note = el("p", { class: "status" });
    const out = el("div", { class: `demo demo-${name}` });
    box.append(el("div", { class: "actions" }, button), note, out);
    const show = (result) => { out.replaceChildren(); draw(out, result); };
    const last = keptResult(key);
    if (last) { show(last); button.textContent = "Measure again"; }
    button.addEventListener("click", async () => {
      button.disabled = true;
      const where = name === "server-staircase" ? "on the server" : info.server_url || name === "training" ? "on the embedded model, in this process" : "on the connected model";
      const stop = progressLine(note, key, lesson.id, `Running ${where} (this takes a while)`);
      try {
        const result = (await api(`/api/${name}?lesson=${encodeURIComponent(lesson.id)}&page=${PAGE}`, body)).result;
        stop();
        status(note, "");
        keep(key, result);
        show(result);
        button.textContent = "Measure again";
      } catch (error) {
        stop();
        status(note, error.message);
      } finally {
        button.disabled = false;
      }
    });
  }

  function drawTraining(out, r) {
    const mb = (bytes) => (bytes / 2 ** 20).toFixed(1) + " MiB";
    const fine = (p) => (p > 0 && p < 0.001 ? (100 * p).toPrecision(2) + "%" : pct(p)); // a tiny start is not zero
    out.append(
      el("p", {}, "Training text: ", el("q", { text: r.text })),
      el("p", {}, "Probe: ", el("q", { text: r.probe }), " → target ", el("code", { text: shown(r.target.token) }),
        `: probability ${fine(r.target_prob_before)} before, ${fine(r.target_prob_after)} after ${r.losses.length} training steps.`));
    const chart = el("div", { class: "chart-box" });
    out.append(chart);
    lineChart(chart, [{ name: "loss", points: r.losses.map((loss, i) => [i + 1, loss]) }], { xLabel: "training step", yLabel: "loss" });
    const before = el("div", { class: "bars" }), after = el("div", { class: "bars" });
    out.append(el("div", { class: "side-by-side" }, before, after));
    bars(before, r.before, { label: "Next token before training" });
    bars(after, r.after, { label: "After training: same prompt, new weights" });
    const c = r.cost;
    out.append(el("p", { class: "live cost" , text:
      `One training step took ${ms(c.train_step_ms)}; one inference forward pass took ${ms(c.inference_forward_ms)}: ` +
      `${c.ratio.toFixed(1)}× the time. Memory: ${mb(c.train_bytes.total)} to train versus ${mb(c.inference_bytes.total)} to run.` }));
    if (r.source) out.append(kinds.source(r.source, demoStep("training"), lesson)); // the model that trained: always in this process
  }

  function drawStaircase(out, r) {
    const chart = el("div", { class: "chart-box" });
    out.append(el("p", { class: "chart-title", text: `Measured on ${r.model} by ${r.engine || r.path}: medians of ${r.repeats} runs, whiskers from the fastest to the slowest` }), chart);
    lineChart(chart, [
      { name: "no cache: whole sequence", points: r.series.map((p) => withSpread(p.length, p.uncached_samples_ms || [p.uncached_ms])) },
      { name: "KV cache: one new token", points: r.series.map((p) => withSpread(p.length, p.cached_samples_ms || [p.cached_ms])) },
    ], { xLabel: "tokens in the sequence", yLabel: "ms per step" });
    const first = r.series[0], last = r.series[r.series.length - 1];
    const mid = (p, kind) => withSpread(0, p[`${kind}_samples_ms`] || [p[`${kind}_ms`]])[1];
    const grew = r.effect?.uncached?.verdict;
    const noise = grew && grew !== "higher" ? " The growth without a cache is within the spread of the repeats here: can't tell on this machine now; measure again." : "";
    out.append(el("p", { class: "live", text:
      `${r.model} (${r.engine || r.path}): one step at ${first.length} tokens took ${ms(mid(first, "uncached"))} without a cache; ` +
      `at ${last.length} tokens, ${ms(mid(last, "uncached"))} without and ${ms(mid(last, "cached"))} with one.${noise}` }));
    out.append(el("details", { class: "fit-details" }, el("summary", { text: "Details: the fitted lines" }),
      el("p", { class: "note", text: `Without a cache: ${r.fits.uncached.formula} (R² ${r.fits.uncached.r2.toFixed(2)}); ` +
        `with one: ${r.fits.cached.formula} (R² ${r.fits.cached.r2.toFixed(2)}). Fitted to the fastest run at each length.` })));
    if (r.source) out.append(kinds.source(r.source, demoStep("staircase"), lesson));
  }

  // --- recall cards between the steps, the loop's ten lines beside step 1 (recall.js, loopcode.js) ---
  recall($("steps"), lesson, progress, save);
  if (lesson.loop_code) afterStep($("steps"), lesson.steps[0].id, loopCode(lesson.loop_code));

  // --- the course map: the request pipeline, each box a lesson (map.js) -------------------------
  courseMap($("course-map"), lesson.course_map);

  // --- explain it to a colleague -----------------------------------------------------------------
  const col = lesson.colleague;
  const area = el("textarea", { id: "colleague-text", rows: 4, maxlength: 2000, placeholder: "Finish the sentence in your own words…" });
  area.value = progress.colleague;
  const compare = el("button", { id: "colleague-compare", text: "Compare with a model answer", disabled: area.value.trim().length < 20 });
  const sideBySide = el("div", { class: "side-by-side" });
  const showModel = () => sideBySide.replaceChildren(
    el("div", {}, el("h3", { text: "Yours" }), el("p", { class: "quote", text: `${col.starter} ${area.value}` })),
    el("div", {}, el("h3", { text: "A model answer" }), el("p", { class: "quote", text: `${col.starter} ${col.model_answer}` })));
  area.addEventListener("input", () => { progress.colleague = area.value; save(); compare.disabled = area.value.trim().length < 20; });
  compare.addEventListener("click", () => { progress.compared = true; save(); showModel(); });
  $("colleague").append(el("h2", { text: "Explain it to a colleague" }), el("p", { class: "starter", text: col.starter }), area,
    el("div", { class: "actions" }, compare), sideBySide);
  if (progress.compared) showModel();

  // --- see it raw: the call, the metrics, logprob → % (raw.js) ----------------------------------
  raw($("raw"), { info, lesson });

  // --- check yourself: the quiz, with a score ---------------------------------------------------
  const quiz = $("quiz");
  const score = el("p", { id: "quiz-score", class: "score" });
  quiz.append(el("h2", { text: "Check yourself" }));
  const items = lesson.quiz.map((q, i) => {
    const item = el("div", { class: "quiz-item", dataset: { index: i } }, el("p", { text: `${i + 1}. ${q.question}` }));
    q.choices.forEach((choice, j) => {
      const input = el("input", { type: "radio", name: `quiz-${i}`, value: j, checked: progress.quiz[i] === j });
      input.addEventListener("change", () => { progress.quiz[i] = j; save(); });
      item.append(el("label", { class: "choice" }, input, el("span", { text: choice })));
    });
    quiz.append(item);
    return item;
  });
  const check = el("button", { id: "quiz-check", text: "Check my answers" });
  const grade = () => {
    let right = 0;
    lesson.quiz.forEach((q, i) => {
      const ok = progress.quiz[i] === q.answer;
      right += ok;
      items[i].classList.toggle("right", ok);
      items[i].classList.toggle("wrong", !ok);
      items[i].querySelector(".fix")?.remove();
      if (!ok) items[i].append(el("p", { class: "fix", text: `Answer: ${q.choices[q.answer]}` }));
    });
    score.textContent = `Score: ${right} / ${lesson.quiz.length}`;
  };
  check.addEventListener("click", () => { progress.quizChecked = true; save(); grade(); });
  quiz.append(el("div", { class: "actions" }, check), score);
  if (progress.quizChecked) grade();

  // --- ask your own AI: three prompts, in order -------------------------------------------------
  const ask = lesson.ask_your_ai;
  $("ask-ai").append(el("h2", { text: "Ask your own AI" }), el("p", { text: ask.intro }));
  ask.prompts.forEach((p) => {
    const button = el("button", { class: "copy", text: "Copy" });
    button.addEventListener("click", () => copy(p.text, button));
    $("ask-ai").append(el("div", { class: "ask-prompt" }, el("h3", { text: p.title }), el("p", { class: "quote", text: p.text }), button));
  });

  // --- try it in the lab, the lesson for your own AI, read next (tryit.js, export.js, readnext.js) ---
  tryIt($("try-it"), lesson.try_it);
  forYourAI($("for-your-ai"), lesson, progress);
  readNext($("read-next"), lesson.read_next);

  // --- the teacher: cites the lesson, acts, then the connected model answers (teacher.js) --------
  teacher($("teacher"), { info, lesson, drawTraining });
  if (info.server_url) cluster($("cluster"), { lesson }); // cluster.js: the probe's facts
  document.body.dataset.ready = "1";
})();
