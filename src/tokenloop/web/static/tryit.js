// The try-it list: short experiments, each a link that opens the lab with its prompt and settings
// filled in. The links are made by the server from the lesson YAML (content.lab_href), checked there.
import { el } from "./dom.js";

export const tryIt = (section, tryIt) => {
  if (!section || !tryIt) return;
  const settings = (lab) => Object.entries(lab).map(([k, v]) => `${k.replace("_", " ")} ${typeof v === "string" ? JSON.stringify(v) : v}`).join(" · ");
  section.replaceChildren(el("h2", { text: tryIt.title }), el("p", { text: tryIt.intro }),
    el("ol", { class: "try-list" }, ...tryIt.items.map((item) => el("li", { class: "try-item", dataset: { id: item.id } },
      el("a", { class: "try-link", href: item.href, text: item.title }),
      el("span", { class: "note try-settings", text: settings(item.lab) }),
      el("p", { class: "try-look", text: item.look_for })))));
};
