// "Copy this lesson for your AI": the server renders the lesson as one Markdown document with
// the numbers measured on the connected model (lessons/markdown.py); this page adds only the
// learner's guesses, which live in this browser, and names the lesson on screen.
import { copy, el, status } from "./dom.js";
import { api } from "./api.js";

export const forYourAI = (section, lesson, progress) => {
  const words = lesson.for_your_ai;
  if (!section || !words) return;
  const button = el("button", { id: "copy-for-ai", text: words.button });
  const note = el("p", { class: "status" });
  const text = el("pre", { id: "lesson-markdown", class: "code markdown" });
  const shown = el("details", { class: "markdown-box", hidden: true }, el("summary", { text: "What was copied" }), text);
  button.addEventListener("click", async () => {
    button.disabled = true;
    status(note, "Measuring on the connected model…", "busy");
    try {
      const { markdown } = await api("/api/lesson/markdown", { lesson: lesson.id, guesses: progress.guesses || {} });
      text.textContent = markdown;
      shown.hidden = false;
      await copy(markdown, button);
      status(note, `Copied ${markdown.length.toLocaleString("en")} characters: paste them into your assistant.`, "busy");
    } catch (error) {
      status(note, error.message);
    } finally {
      button.disabled = false;
    }
  });
  section.replaceChildren(el("h2", { text: words.title }), el("p", { text: words.intro }),
    el("div", { class: "actions" }, button), note, shown);
};
