// Calling the app's API, shared by the lesson and the lab: JSON requests, server-sent event
// streams, and the header's model badge. An error answer becomes an ApiError with its message.

export class ApiError extends Error {}

export async function api(path, body, options = {}) {
  const init = body === undefined ? { method: options.method || "GET" } : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, { ...init, credentials: "same-origin", signal: options.signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("the tokenloop app did not answer: is `tokenloop lesson` still running?");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(data.error || `${response.status} ${response.statusText}`);
  return data;
}

// POST that answers server-sent events; onEvent(name, data) per event. Resolves at the end.
export async function stream(path, body, onEvent, signal) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      credentials: "same-origin", signal,
    });
  } catch (error) {
    if (error.name === "AbortError") return;
    throw new ApiError("the tokenloop app did not answer: is `tokenloop lesson` still running?");
  }
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new ApiError(data.error || `${response.status} ${response.statusText}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    let chunk;
    try { chunk = await reader.read(); } catch (error) { if (error.name === "AbortError") return; throw error; }
    if (chunk.done) break;
    buffer += decoder.decode(chunk.value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      const parsed = JSON.parse(data);
      if (name === "error") throw new ApiError(parsed.error);
      onEvent(name, parsed);
    }
  }
}

export async function header() {
  const info = await api("/api/info");
  const badge = document.getElementById("model-badge");
  if (badge) badge.textContent = `connected: ${info.model} (${info.backend})`;
  return info;
}
