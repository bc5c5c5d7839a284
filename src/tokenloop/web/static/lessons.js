// The lesson switcher in the header: every lesson the app has (/api/lessons), the shown one selected.
"use strict";

(async () => {
  const select = document.getElementById("lesson-switch");
  if (!select) return;
  const current = new URLSearchParams(location.search).get("lesson");
  let lessons;
  try {
    lessons = await TL.api("/api/lessons");
  } catch {
    select.hidden = true; // the lesson itself reports the error
    return;
  }
  for (const lesson of lessons) select.append(TL.el("option", { value: lesson.id, text: lesson.title }));
  select.value = current && lessons.some((l) => l.id === current) ? current : lessons[0]?.id;
  select.addEventListener("change", () => { location.search = `?lesson=${encodeURIComponent(select.value)}`; });
})();
