// The course map: the path every request follows (lesson YAML `course_map`), each box naming the
// lesson that opens it. A box links to `/?lesson=<id>` only when that lesson exists here, as
// GET /api/lessons lists them; where the app has no such list (404) every name stays plain text.
// The box of the lesson on screen (`here`) is marked, when it is one of the loop's parts.
import { el } from "./dom.js";
import { api } from "./api.js";

export const lessonIds = async () => {
  try {
    const list = await api("/api/lessons");
    return new Set(list.map((l) => l.id));
  } catch {
    return new Set(); // no list of lessons yet: nothing to link to
  }
};

export const courseMap = async (section, map) => {
  if (!section || !map) return;
  const known = await lessonIds();
  const tag = (lesson) => {
    if (!lesson) return null;
    const text = `Lesson ${lesson.number}`;
    return known.has(lesson.id)
      ? el("a", { class: "map-lesson", href: `/?lesson=${encodeURIComponent(lesson.id)}`, text })
      : el("span", { class: "map-lesson", text });
  };
  const box = (b, cls = "map-box") => el("li", { class: b.lesson?.id === map.here.id ? `${cls} map-box-here` : cls }, el("strong", { text: b.name }), el("span", { text: b.what }), tag(b.lesson));
  const loop = map.loop;
  const decode = el("li", { class: "map-box map-loop", id: "map-loop" },
    el("strong", { text: loop.name }), el("span", { text: loop.what }),
    el("ul", { class: "map-parts" }, ...loop.parts.map((p) => el("li", { class: p.lesson?.id === map.here.id ? "map-part-here" : "" },
      el("span", { text: p.what }), " ", tag(p.lesson)))),
    el("p", { class: "map-back", text: loop.back }),
    el("p", { class: "map-here" }, known.has(map.here.id)
      ? el("a", { href: `/?lesson=${encodeURIComponent(map.here.id)}`, text: map.you_are_here })
      : el("span", { text: map.you_are_here })));
  section.replaceChildren(el("h2", { text: map.title }),
    el("ol", { class: "map-path" }, ...map.pipeline.map((b) => box(b)), decode, ...(map.after || []).map((b) => box(b))),
    map.beside ? el("p", { class: "map-beside-label", text: map.beside_label || "" }) : null,
    el("ul", { class: "map-beside" }, ...(map.beside || []).map((b) => box(b, "map-box map-side"))),
    el("p", { class: "note", text: map.note }));
  section.dataset.ready = "1";
};
