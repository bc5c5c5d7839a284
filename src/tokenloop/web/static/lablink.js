// The lab opened from a link, e.g. the lesson's try-it list:
//   /lab?prompt=...&temperature=1.2&seed=1&chat=1&cache=0&max_new=200&try=hot&lesson=day01
// Each value is checked against the lab's own input for it (its min, max and step) before it is
// filled in; a value that doesn't fit is left out and named; an empty one switches an optional
// setting off (top-k, top-p, seed). Nothing else in the URL is read.

export const fromLink = (search, $) => {
  const params = new URLSearchParams(search);
  const NUMBERS = { temperature: "temperature", top_k: "top-k", top_p: "top-p", seed: "seed", max_new: "max-new" };
  const FLAGS = { chat: "chat", cache: "cache" };
  const filled = [], refused = [];
  const fits = (input, value) => {
    const number = Number(value);
    const min = input.min === "" ? -Infinity : Number(input.min), max = input.max === "" ? Infinity : Number(input.max);
    return value.trim() !== "" && Number.isFinite(number) && number >= min && number <= max &&
      (input.step !== "1" || Number.isInteger(number));
  };
  for (const [name, value] of params) {
    if (name === "try" || name === "lesson") continue;
    let ok = false;
    if (name === "prompt") {
      ok = value.trim() !== "" && value.length <= Number($("prompt").maxLength);
      if (ok) $("prompt").value = value;
    } else if (name in FLAGS) {
      ok = value === "1" || value === "0";
      if (ok) $(FLAGS[name]).checked = value === "1";
    } else if (name in NUMBERS) {
      const input = $(NUMBERS[name]);
      if (value === "" && input.placeholder) { // an optional setting, switched off
        input.value = "";
        ok = true;
      } else {
        ok = fits(input, value);
        if (ok) input.value = String(Number(value));
      }
    }
    (ok ? filled : refused).push(name);
  }
  const name = (key) => (/^[a-z0-9_-]{1,40}$/.test(params.get(key) || "") ? params.get(key) : null);
  return { filled, refused, tryId: name("try"), lessonId: name("lesson") };
};
