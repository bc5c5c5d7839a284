"""The lesson and the lab: a local web app over any backend (`create_app`).

The naming rule: routes live in `routes/`, one `APIRouter` module per area, each route a few
lines; the logic they call lives beside this file, in a module named for what it holds (a route
module and its logic module share the area's name where both exist: `routes/live.py` over
`live.py`). `app.py` builds the app and defines no route. It may import everything here; `routes/`
imports the logic, `deps`, `errors` and `schemas`; the logic never imports `routes/` or `app`.

- `app.py`: `create_app`: state on `app.state`, middleware, error handlers, static files, routers
- `middleware.py`: the guard (other sites refused, body limit, security headers), TrustedHost
- `errors.py`: the one error→status map, the OpenAPI error docs, both error bodies, the handlers
- `deps.py`: which backend a route runs on, the lab session, `app.state`, as FastAPI dependencies
- `schemas.py`: pydantic requests and responses, every input bounded
- `events.py`: server-sent events from a generator of (event, data)
- `info.py`: what /api/info tells the page, and the exact curl behind the lesson's bars
- `lab.py`, `sessions.py`: the lab as plain functions; per-browser lab state (ids, KV cache)
- `compare.py`: the lab's side-by-side view of two backends
- `score.py`: score mode, one teacher-forced pass over a pasted text
- `teacher.py`: the teacher panel: cites the lesson, acts, then the model's chat answer
- `demos.py`: the training and staircase demos (embedded and server), run on demand, one at a time
- `live.py`: the lessons' live measurements (Lesson 1's answer time, Lesson 7's KV cache)
- `connected.py`: the --url server as the page shows it (the probe's facts, its staircase)
- `for_your_ai.py`: "Copy this lesson for your AI": the lesson as Markdown, live numbers in
- `completions.py`: the real call on the model here, /v1/completions in vLLM's shape
- `routes/`: `pages`, `lesson`, `lab`, `score`, `teacher`, `demos`, `live`, `connected`, `openai`
- `static/`: the pages and their ES modules, no build step: `lesson.js` (index.html) and
  `lab.js` (lab.html) are the entries; `dom.js`, `api.js`, `charts.js` are shared; the others
  are parts of the lesson page (`kinds`, `live_kv`, `lessons`, `map`, `tryit`, `export`,
  `readnext`, `teacher`, `cluster`) or of the lab (`lablink`)
"""

from .app import create_app

__all__ = ["create_app"]
