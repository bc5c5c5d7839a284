"""Every route of the app, one `APIRouter` module per area, each route a few lines that take what
they need from `deps` (the backend, the session, `app.state`) and call the logic beside this
package (`web/<area>.py`, named for what it holds). `create_app` includes `ROUTERS` in order.

- `pages`: the two HTML pages (/, /lab); the static files are mounted by `create_app`;
- `lesson`: /api/info, the lessons (/api/lessons, /api/lesson), the Markdown copy, /api/next;
- `lab`: the lab's session (/api/lab/…) and the side-by-side /api/compare;
- `score`: /api/score; `teacher`: /api/teacher and its citations /api/teacher/cite;
- `demos`: the on-demand training and staircase (/api/training, /api/staircase);
- `live`: the lessons' live measurements (/api/live/…); `lesson02`: Lesson 2's (tokens); `lesson03`: Lesson 3's (prefill and decode);
  `lesson06`: Lesson 6's (/api/live/sampling_…); `lesson08`: Lesson 8's (/api/live/prefix_…);
- `connected`: the --url server (/api/cluster, /api/server-staircase);
- `openai`: the OpenAI-compatible /v1/models, /v1/completions, /v1/chat/completions, /tokenize, /detokenize.
"""

from . import connected, demos, lab, lesson, lesson02, lesson03, lesson06, lesson08, live, openai, pages, score, teacher

ROUTERS = [
    pages.router,
    lesson.router,
    lab.router,
    score.router,
    teacher.router,
    demos.router,
    live.router,
    lesson06.router,
    lesson02.router,
    lesson03.router,
    lesson08.router,
    connected.router,
    openai.router,
]
