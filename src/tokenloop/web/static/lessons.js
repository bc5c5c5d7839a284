// The lesson switcher in the header: every lesson the app has (/api/lessons), the shown one selected.
import { el } from "./dom.js";
import { api } from "./api.js";

export async function lessonSwitch() {
  const select = document.getElementById("lesson-switch");
  if (!select) return;
  const current = new URLSearchParams(location.search).get("lesson");
  let lessons;
  try {
    lessons = await api("/api/lessons");
  } catch {
    select.hidden = true; // the lesson itself reports the error
    return;
  }
  for (const lesson of lessons) select.append(el("option", { value: lesson.id, text: lesson.title }));
  select.value = current && lessons.some((l) => l.id === current) ? current : lessons[0]?.id;
  select.addEventListener("change", () => { location.search = `?lesson=${encodeURIComponent(select.value)}`; });
}
