"""The live run's preemption input over HTTP: a dispatch system places, refreshes and ends preemption calls.

`POST /api/v1/live/preempt` takes one call (`runtime.live.preempt.PreemptRequest`)
and needs the `preempt` scope (a key that places calls and does nothing else;
`operate` and `admin` hold it too). `GET /api/v1/live/preempt` lists the calls in
force and the input's counts (`read`). A call for a signal the run does not have
is 404, for an approach or phase it does not have 422, for a signal whose
preemption is off 409 (as is a call past the bounds on calls in force, and an
`on` or `off` for a call another sender placed: a call is its key's), each
with its reason; a malformed body is 422 with its field path. Every refusal is
counted (`/status` feeds.preempt, `/metrics`) and recorded in the run's
preempt_calls.csv, as every call taken is.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from signalwise.runtime.live.preempt import CALL_LAPSE_S, CallRefused, PreemptRequest

from ..auth import who, writer_key_id
from ..errors import refusal

router = APIRouter(prefix="/api/v1/live/preempt", tags=["live"])

#: a call is a few hundred bytes: a larger body is no call
MAX_BODY_BYTES = 16 * 1024


class CallView(BaseModel):
    intersection_id: str
    call_id: str
    approach: str = Field(description="the approach served (compass name, or the edge id where it has none)")
    phase: int = Field(description="the phase (1-based) the shield serves for it")
    channel: int | None
    distance_m: float
    placed_s: float = Field(description="when the call was placed, run clock (simulated seconds)")
    refreshed_s: float = Field(description="its latest `on`, run clock")
    lapses_in_s: float = Field(description=f"wall-clock seconds until it lapses unless sent again ({CALL_LAPSE_S:g} s "
                                           "after its latest `on`)")
    via: str = Field(description="rest | mqtt")
    by: str = Field(description="the key's name (REST), or `mqtt`")


class CallAnswer(BaseModel):
    state: str = Field(description="on | off")
    placed: bool | None = Field(None, description="with `on`: true when this placed the call, false when it "
                                                  "refreshed one in force; null with `off`")
    call: CallView | None = Field(description="the call (as it was, for `off`); null for an `off` of no call")
    note: str | None = Field(None, description="for an `off` of no call in force: why nothing ended; else null")


class CallsInForce(BaseModel):
    calls: list[CallView]
    lapse_after_s: float = Field(description="a call not sent again within this many seconds of wall-clock time "
                                             "lapses")
    counts: dict = Field(description="accepted, refused, placed, ended, lapsed, in_force, last_refused_reason, "
                                     "by_transport (accepted and refused_by_code per rest / mqtt)")


def _calls(request: Request):
    rt = getattr(request.app.state, "live", None)
    calls = getattr(rt, "preempt", None)
    if calls is None:
        raise HTTPException(503, "no live run is attached to this server (start one with `signalwise live`)")
    return calls


@router.get("", response_model=CallsInForce, summary="The preemption calls in force, and the input's counts")
def calls_in_force(request: Request) -> dict:
    calls = _calls(request)
    return {"calls": calls.active(), "lapse_after_s": CALL_LAPSE_S, "counts": calls.stats()}


@router.post(
    "",
    response_model=CallAnswer,
    summary="Place, refresh or end a preemption call",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": PreemptRequest.model_json_schema()}}}},
    responses={
        404: {"description": "the run has no such signal (named)"},
        409: {"description": "preemption is off at that signal, an `off` sent later already ended the call, the "
                             "call is another sender's, or too many calls are in force (at the signal, or the "
                             "sender's)"},
        413: {"description": f"the body is larger than {MAX_BODY_BYTES} bytes"},
        422: {"description": "a malformed call (field path given), or an approach or phase the signal does not have "
                             "(its approaches or phases named), or a time too old or ahead"},
        503: {"description": "no live run is attached to this server"},
    },
)
async def place_call(request: Request) -> Any:
    """Take one call: `on` places it or, for a call in force, refreshes it (send it every few seconds); `off` ends
    it. The answer says the phase the shield will serve and when the call lapses."""
    calls = _calls(request)
    by = who(request)
    sender = writer_key_id(request)  # the key's id: two keys with one name are two senders
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        calls.refused("invalid", f"a body of {len(raw)} bytes; a call takes at most {MAX_BODY_BYTES}", "rest", by=by)
        raise HTTPException(413, f"the body is {len(raw)} bytes; a preemption call takes at most {MAX_BODY_BYTES}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        calls.refused("invalid", f"body: not JSON: {exc}", "rest", by=by)
        raise RequestValidationError([{"loc": ("body",), "msg": f"not JSON: {exc}", "type": "json_invalid"}]) \
            from None
    try:
        req = PreemptRequest.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": ("body", *err.get("loc", ())), "msg": err.get("msg", "invalid"), "type": err.get("type")}
                  for err in exc.errors(include_url=False)]
        first = errors[0]
        device = data.get("intersection_id") if isinstance(data, dict) else None
        call_id = data.get("call_id") if isinstance(data, dict) else None
        calls.refused("invalid", f"{'.'.join(map(str, first['loc']))}: {first['msg']}", "rest",
                      device if isinstance(device, str) else None, call_id if isinstance(call_id, str) else None, by)
        raise RequestValidationError(errors) from None
    try:
        return calls.take(req, via="rest", by=by, sender=sender)
    except CallRefused as exc:
        if exc.status == 422:
            raise refusal(exc.reason, type=exc.code) from None
        raise HTTPException(exc.status, exc.reason) from None
