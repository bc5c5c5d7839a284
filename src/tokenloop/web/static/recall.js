// Recall cards, spaced between the steps (each card's `after:` in the lesson YAML names the step it
// follows): the question shows, the answer stays hidden until the learner presses the button (a
// click, Enter or Space), never on hover or focus, which gave it away. Kept open across reloads.
import { afterStep, el } from "./dom.js";

export function recall(steps, lesson, progress, save) {
  (lesson.recall || []).forEach((card, i) => {
    const answer = el("p", { class: "recall-answer", id: `recall-answer-${i}`, text: card.answer, hidden: !progress.recall[i] });
    const button = el("button", { class: "recall-show copy", "aria-controls": answer.id });
    const show = (open) => {
      answer.hidden = !open;
      button.textContent = open ? "Hide the answer" : "Show the answer";
      button.setAttribute("aria-expanded", String(open));
    };
    show(Boolean(progress.recall[i]));
    button.addEventListener("click", () => {
      progress.recall[i] = answer.hidden;
      save();
      show(progress.recall[i]);
    });
    afterStep(steps, card.after, el("aside", { class: "card recall-card aside", dataset: { index: i, after: card.after } },
      el("p", { class: "recall-title", text: "Recall: cover the page and answer, then check" }),
      el("p", { class: "recall-prompt", text: card.prompt }), button, answer));
  });
}
