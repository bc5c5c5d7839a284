// The page's building blocks, shared by the lesson and the lab: elements, status lines, copying,
// progress kept in this browser. Every piece of model or prompt text goes in through textContent
// (via el() or append()), never as HTML: a model can emit "<script>" and it must show as text.

// el("div", {class: "x", text: "hi", onclick: f}, child, ...): a DOM node, text always as text.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value); // CSSOM, allowed by the page's CSP
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

export async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el("textarea", { class: "offscreen" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const before = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = before; }, 1200);
}

// Progress kept in this browser, so a reload keeps guesses, quiz answers and the lab's run.
export const store = {
  load(key) { try { return JSON.parse(localStorage.getItem(key)) || {}; } catch { return {}; } },
  save(key, value) { localStorage.setItem(key, JSON.stringify(value)); },
};

export function status(node, message, kind = "error") {
  node.textContent = message || "";
  node.className = "status " + (message ? kind : "");
}

// Puts `node` after the step box `#step-<id>` in `steps`, after anything already placed there
// (recall cards, the loop's code), so what the YAML places after one step keeps its order.
export function afterStep(steps, id, node) {
  let at = steps.querySelector(`#step-${CSS.escape(id)}`);
  if (!at) return steps.append(node);
  while (at.nextElementSibling && at.nextElementSibling.classList.contains("aside")) at = at.nextElementSibling;
  at.after(node);
}
