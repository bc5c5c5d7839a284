// Read next: the primary source and any further reading (`also`), plain links: nothing is loaded from
// them; and the companion notebook.
import { copy, el } from "./dom.js";

export const readNext = (section, next) => {
  if (!section || !next) return;
  const items = [];
  if (next.source) {
    items.push(el("li", { id: "read-source" }, el("strong", { text: `${next.source.label}: ` }),
      el("a", { href: next.source.url, rel: "noopener noreferrer", target: "_blank", text: next.source.title }),
      el("p", { class: "note", text: next.source.why })));
  }
  for (const more of next.also || []) { // further reading, plain links like the source
    items.push(el("li", { class: "read-also" }, el("strong", { text: `${more.label}: ` }),
      el("a", { href: more.url, rel: "noopener noreferrer", target: "_blank", text: more.title }),
      el("p", { class: "note", text: more.why })));
  }
  if (next.notebook) {
    const command = el("code", { id: "notebook-command", text: next.notebook.command });
    const button = el("button", { class: "copy", text: "Copy" });
    button.addEventListener("click", () => copy(next.notebook.command, button));
    items.push(el("li", { id: "read-notebook" }, el("strong", { text: `${next.notebook.label}: ` }), el("span", { text: next.notebook.title }),
      el("p", { class: "note", text: next.notebook.why }), el("p", {}, "Open it: ", command, " ", button)));
  }
  section.replaceChildren(el("h2", { text: next.title }), el("ul", { class: "read-next" }, ...items));
};
