"""The lab's routes: this browser's session on the learner's own prompt (start, step, run as a
stream, stop, branch, export; the logic in `web/lab.py`) and the side-by-side /api/compare."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ...errors import UsageError
from .. import compare as side_by_side
from .. import events, lab
from ..deps import Backend, LabSession, State, remember
from ..errors import ERRORS, STREAM
from ..schemas import BranchIn, CompareIn, LabOut, RunIn, StartIn, StepIn, StepOut
from ..sessions import COOKIE

router = APIRouter()


@router.get("/api/lab", response_model=LabOut)
def lab_state(backend: Backend, session: LabSession):
    return lab.state(backend, session)


@router.post("/api/lab/start", response_model=LabOut, responses=ERRORS)
def lab_start(body: StartIn, backend: Backend, session: LabSession):
    return lab.start(backend, session, body.prompt, body.chat, body.resume, body.cache)


@router.post("/api/lab/step", response_model=StepOut | None, responses=ERRORS)
def lab_step(body: StepIn, backend: Backend, session: LabSession):
    record = lab.step(backend, session, body.sampler, body.show)
    return None if record is None else record.to_json()


@router.post("/api/lab/run", responses={**STREAM, **ERRORS})
def lab_run(body: RunIn, backend: Backend, session: LabSession):
    if not session.started:
        raise UsageError("the lab has no prompt yet: type one and press Start")
    response = events.response(lab.run(backend, session, body.sampler, body.show, body.max_new))
    remember(response, session)
    return response


@router.post("/api/lab/stop")
def lab_stop(state: State, request: Request) -> dict:
    session = state.sessions.find(request.cookies.get(COOKIE))  # no cookie, no session: nothing to stop
    if session is None:
        return {"stopping": False}
    session.stop.set()
    return {"stopping": True}


@router.post("/api/lab/branch", response_model=LabOut, responses=ERRORS)
def lab_branch(body: BranchIn, backend: Backend, session: LabSession):
    return lab.branch(backend, session, body.step, body.token_id)


@router.get("/api/lab/export", responses={200: {"content": {"application/x-ndjson": {}}}})
def lab_export(session: LabSession):
    headers = {"Content-Disposition": 'attachment; filename="tokenloop-run.jsonl"'}
    return StreamingResponse(lab.export(session), media_type="application/x-ndjson", headers=headers)


@router.post("/api/compare", responses=ERRORS)
def compare(body: CompareIn, backend: Backend, state: State) -> dict:
    return side_by_side.compare(backend, state.compare, body)
