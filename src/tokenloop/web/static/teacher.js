// The teacher panel. A question first gets the lesson's own passages that answer it best, cited
// with where they are on the page, or, outside the lesson, "that's outside this lesson" and the
// lesson's map (no model is asked). Then the live thing it asks for, if any (the next-token bars
// for a text, or the training demo), also offered as buttons. Then the connected model's own
// answer, streamed and labelled with the model's name: by itself for a large model, on a button
// for a small one (or one of unknown size), cut where the server says it was cut. Model text goes
// in as text, never HTML.
import { el, status } from "./dom.js";
import { api, stream } from "./api.js";
import { bars } from "./charts.js";

export const teacher = (panel, { info, lesson, drawTraining }) => {
  const teach = lesson.teacher;
  const size = info.teacher; // the teacher's model and its size (web/teacher.about), or null
  const fill = (text) => text.replaceAll("{model}", size.model).replaceAll("{size}", size.size).replaceAll("{large}", size.large_size);
  const who = el("p", { class: "note", id: "teacher-model",
    text: info.can_chat ? `Answers come from ${size.model}, through its own chat template, with today's lesson as its instructions.`
      : "The connected model has no chat template, so only the lesson's own passages answer." });
  const small = size && size.small ? el("p", { class: "note", id: "teacher-small", text: fill(teach.small_model) }) : null;
  const question = el("textarea", { id: "teacher-question", rows: 2, maxlength: 2000, placeholder: "Ask a question about the lesson" });
  const askButton = el("button", { id: "teacher-ask", text: "Ask" });
  const nextButton = el("button", { class: "copy", id: "teacher-next", text: teach.actions.next });
  // The training demo, only in a lesson that has it (Lesson 1): its teacher's actions name it.
  const trainButton = teach.actions.training ? el("button", { class: "copy", id: "teacher-training", text: teach.actions.training }) : null;
  const answers = el("div", { id: "teacher-answers" });
  const teacherStatus = el("p", { class: "status" });
  const history = [];
  const buttons = [askButton, nextButton, trainButton].filter(Boolean);

  // Each action goes into its own turn; an error there is a message in that turn, not a dead panel.
  async function attempt(turn, work) {
    try {
      await work();
    } catch (error) {
      turn.append(el("p", { class: "status error", text: error.message }));
    }
  }

  async function showNext(turn, text) {
    const chart = el("div", { class: "bars teacher-bars" });
    turn.append(chart);
    const r = await api("/api/next", { prompt: text, top_k: 8 });
    bars(chart, r.top, { other: r.other, label: `What comes after ${JSON.stringify(text)}: the raw distribution from ${r.model}, computed now` });
  }

  async function showTraining(turn) {
    const out = el("div", { class: "demo teacher-training" }, el("p", { class: "status busy", text: "Training the model on one sentence…" }));
    turn.append(out);
    const r = (await api("/api/training", { steps: info.demo.steps })).result;
    out.replaceChildren();
    drawTraining(out, r);
  }

  // Where each passage is on the page, in the words of the page's own headings.
  const PLACE = { recall: "Recall: ", quiz: "Check yourself: " };
  const place = (p) => (p.source === "colleague" ? "Explain it to a colleague" : (PLACE[p.source] || "") + p.title);

  // Outside the lesson: our words, then the lesson's map, each step a link to its place on the page.
  function away(turn, outside) {
    const map = el("ol", { class: "teacher-map" });
    for (const s of outside.map) map.append(el("li", {}, el("a", { href: s.anchor, text: s.title })));
    const other = outside.elsewhere.length ? el("p", { class: "teacher-elsewhere" }, `${teach.elsewhere} `,
      ...outside.elsewhere.flatMap((o, i) => [i ? ", " : "", el("a", { href: o.href, text: o.title })])) : null;
    turn.append(el("div", { class: "teacher-outside" }, el("p", { text: outside.text }), map, other));
  }

  function cite(turn, passages) {
    if (!passages.length) return;
    const list = el("div", { class: "teacher-cited" }, el("h3", { text: teach.cited }));
    for (const p of passages) {
      list.append(el("blockquote", { class: "cited", dataset: { source: p.source, step: p.step || "" } },
        el("p", { text: p.text }), el("cite", { text: place(p) })));
    }
    turn.append(list);
  }

  async function answer(turn, text) {
    const label = el("p", { class: "teacher-says", text: `${size.model} says:` });
    const reply = el("p", { class: "teacher-answer" });
    turn.append(label, reply);
    await stream("/api/teacher", { question: text, history: history.slice(-4), max_new: info.demo.teacher_max_new, lesson: lesson.id }, (event, data) => {
      if (event === "model") {
        reply.dataset.model = data.model;
        label.textContent = `${data.model} (${data.backend}) says:`;
      }
      if (event === "text" && typeof data.text === "string") reply.append(data.text);
      if (event === "cut") {
        reply.textContent = reply.textContent.slice(0, data.keep); // what came before the repeat
        reply.dataset.cut = data.why;
        turn.append(el("p", { class: "note teacher-cut", dataset: { why: data.why }, text: data.text }));
      }
      if (event === "outside") away(turn, data);
    });
    if (!reply.textContent.trim() && !reply.dataset.cut) reply.textContent = "(the model wrote nothing)";
    history.push({ role: "user", content: text }, { role: "assistant", content: reply.textContent });
  }

  // A small model answers on a button in its turn; a large one by itself.
  async function offer(turn, text) {
    if (!size.small) return answer(turn, text);
    const ask = el("button", { class: "copy teacher-ask-model", text: fill(teach.ask_model) });
    ask.addEventListener("click", () => busy(async () => {
      ask.remove();
      await attempt(turn, () => answer(turn, text));
    }));
    buttons.push(ask); // disabled, as the others, while the panel is busy
    turn.append(ask);
  }

  async function busy(work) {
    buttons.forEach((b) => { b.disabled = true; });
    status(teacherStatus, "");
    try {
      await work();
    } catch (error) {
      status(teacherStatus, error.message);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  askButton.addEventListener("click", () => busy(async () => {
    const text = question.value.trim();
    if (!text) return status(teacherStatus, "Type a question first.");
    const turn = el("div", { class: "teacher-turn" }, el("p", { class: "teacher-question", text }));
    answers.append(turn);
    const cited = await api("/api/teacher/cite", { question: text, lesson: lesson.id });
    question.value = "";
    if (cited.outside) return away(turn, cited.outside); // no passage, no model: the lesson's map
    cite(turn, cited.passages);
    const act = cited.action;
    if (act && act.kind === "next") await attempt(turn, () => showNext(turn, act.text));
    if (act && act.kind === "training") await attempt(turn, () => showTraining(turn));
    if (info.can_chat) await offer(turn, text);
  }));

  nextButton.addEventListener("click", () => busy(async () => {
    const text = question.value.trim() || lesson.prompt;
    const turn = el("div", { class: "teacher-turn" }, el("p", { class: "teacher-question", text: `${teach.actions.next} ${JSON.stringify(text)}` }));
    answers.append(turn);
    await attempt(turn, () => showNext(turn, text));
  }));

  trainButton?.addEventListener("click", () => busy(async () => {
    const turn = el("div", { class: "teacher-turn" }, el("p", { class: "teacher-question", text: teach.actions.training }));
    answers.append(turn);
    await attempt(turn, () => showTraining(turn));
  }));

  panel.append(el("h2", { text: teach.title }), el("p", { text: teach.greeting }), ...[who, small].filter(Boolean), question,
    el("div", { class: "actions" }, ...buttons),
    el("p", { class: "note", text: teach.actions.next_help }), teacherStatus, answers);
};
