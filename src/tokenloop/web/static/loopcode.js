// The loop in ten lines (the lesson YAML's `loop_code`): our own bare loop, the one
// src/tokenloop/model/from_scratch.py runs as generate_uncached, shown beside the live loop.
import { el } from "./dom.js";

export const loopCode = (code) => el("details", { class: "card loop-code aside", open: true },
  el("summary", { text: code.title }),
  el("p", { class: "note", text: code.note }),
  el("pre", { class: "code loop-code-text", text: code.code }));
