"""The live run's external detector feed over HTTP: POST one message or a list.

The messages are the same as on MQTT (`signalwise.runtime.live.feeds.DetectorMessage`).
A batch is taken whole or not at all: a malformed message gets 422 with its
field path (`body[1].occupancy`), a message for a device or channel the run
does not have gets 404 naming it, an implausible value gets 422 with its
reason; nothing of a refused batch is applied, and its faulty messages count
against the feed's health like any refusal: a message the schema refuses too,
against the device it names, as the MQTT feed counts it. 503 when no live run
is attached. A body over `MAX_BODY_BYTES` is refused with 413 before it is read
whole: at once when its Content-Length says so, else (chunked) as soon as the
bytes received pass the limit; it, and a body that is not JSON or not messages,
counts as one refused payload, as on MQTT.

A batch taken answers `{"accepted": n}`, and `late` when some of its messages
were stamped more than the shield's `max_observation_age_s` behind the run's
clock (`feeds.FeedResult.late`): stored and logged, but too old to steer a
decision, so a sender whose gateway buffers hears it in the answer.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Discriminator, Field, Tag, TypeAdapter, ValidationError

from signalwise.runtime.live.feeds import DetectorMessage

from ..errors import validation_body

router = APIRouter(prefix="/api/v1/live/feeds", tags=["live"])

#: one message or a list of them; the tag only picks the branch (it is taken out of error paths below)
_Body = Annotated[
    Annotated[DetectorMessage, Tag("one")] | Annotated[list[DetectorMessage], Tag("many")],
    Discriminator(lambda v: "many" if isinstance(v, list) else "one"),
]
_BODY = TypeAdapter(_Body)
#: a batch larger than this is refused as a whole (a feed sends one interval's messages at a time)
MAX_BATCH = 10_000
#: a request body larger than this is refused (413) without being read whole: 10,000 messages of the usual
#: size (~150 bytes) are 1.5 MB, so the limit leaves room for long device ids and pretty-printed JSON
MAX_BODY_BYTES = 4 * 1024 * 1024
_MESSAGE_SCHEMA = DetectorMessage.model_json_schema()
_BODY_SCHEMA = {"oneOf": [_MESSAGE_SCHEMA,
                          {"type": "array", "items": _MESSAGE_SCHEMA, "minItems": 1, "maxItems": MAX_BATCH}]}


class FeedLate(BaseModel):
    """An accepted message that came late (`feeds.Late`)."""

    index: int = Field(description="its position in the request's list (0 for a single message)")
    device_id: str
    channel: int
    behind_s: float = Field(description="seconds its time was behind the run's clock when it arrived")
    note: str = Field(description="how late, and what was done with it (stored and logged at its own time, too "
                                  "old to steer a decision)")


class FeedAccepted(BaseModel):
    accepted: int = Field(description="messages stored for the live run's next observations")
    late: list[FeedLate] = Field(default_factory=list, description=(
        "the accepted messages whose time was more than the run's shield `max_observation_age_s` (default 10 s) "
        "behind its clock when they arrived; left out when none was"))


@router.post(
    "/detectors",
    response_model=FeedAccepted,
    response_model_exclude_defaults=True,  # `late` only when a message was: an on-time batch is {"accepted": n}
    summary="Send detector on/off events or interval counts to the live run",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
    responses={
        404: {"description": "a message addresses a device or detector channel the run does not have (named)"},
        413: {"description": f"the body is larger than {MAX_BODY_BYTES} bytes (4 MiB)"},
        422: {"description": "a message is malformed (field path given) or holds a value that cannot be true"},
        503: {"description": "no live run with a detector feed is attached to this server"},
    },
)
async def post_detectors(request: Request) -> Any:
    """Take one message or a list; every message is checked before any is applied."""
    feed = getattr(request.app.state, "live_feed", None)
    if feed is None:
        raise HTTPException(503, "no live run with a detector feed is attached to this server "
                                 "(start one with `signalwise live`)")
    try:
        messages = _parse(await _body(request))
    except _Refused as exc:
        for device, reason in exc.refusals:
            feed.reject(reason, device)
        raise
    except HTTPException as exc:  # 413: one refused payload; its size is the reason
        feed.reject(str(exc.detail))
        raise
    result = feed.accept(messages, all_or_none=True)
    if result.ok:
        return FeedAccepted(accepted=result.accepted, late=[FeedLate(**dataclasses.asdict(x)) for x in result.late])
    single = not isinstance(messages, list)
    errors = [{"loc": ["body", *([] if single else [r.index]), *([r.field] if r.field else [])],
               "msg": r.reason, "type": r.code} for r in result.rejected]
    unknown = all(r.code in ("unknown_device", "unknown_channel") for r in result.rejected)
    return validation_body(errors, 404 if unknown else 422)


class _Refused(RequestValidationError):
    """A body refused before it became messages: its 422, and what the feed counts for it.

    `refusals`: (device the message names, or None; reason) for each faulty
    message, or one for a body that is no messages. Counted, an HTTP sender's
    malformed messages weigh on the feed's health and metrics as MQTT's do.
    """

    def __init__(self, errors: list[dict], refusals: list[tuple[str | None, str]]):
        super().__init__(errors)
        self.refusals = refusals


def _body_refused(msg: str, kind: str) -> _Refused:
    return _Refused([{"loc": ("body",), "msg": msg, "type": kind}], [(None, f"body: {msg}")])


def _too_large(what: str) -> HTTPException:
    return HTTPException(413, f"{what}; a detector feed request takes at most {MAX_BODY_BYTES} bytes (4 MiB): "
                              f"send the messages in several requests")


async def _body(request: Request) -> bytes:
    """The body, or 413 as soon as it is known to be over `MAX_BODY_BYTES` (never read whole to find out)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(f"the body is {int(declared)} bytes (Content-Length)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:  # chunked, or a Content-Length that understated it
            raise _too_large(f"the body is more than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> DetectorMessage | list[DetectorMessage]:
    """The body as messages, or 422 with each problem's path (`body[1].occupancy`, `body.channel`)."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _body_refused(f"not JSON: {exc}", "json_invalid") from None
    except RecursionError:  # `[[[[…]]]]` deeper than the parser goes: a bad body, not a server error
        raise _body_refused("not JSON a feed sends: nested too deeply", "json_invalid") from None
    except ValueError as exc:  # a number of more than 4300 digits: Python will not read it, nor a feed send it
        raise _body_refused(f"not JSON a feed sends: {exc}", "json_invalid") from None
    if isinstance(data, list) and len(data) > MAX_BATCH:
        raise _body_refused(f"{len(data)} messages in one request; at most {MAX_BATCH}", "too_long")
    if isinstance(data, list) and not data:
        raise _body_refused("an empty list: send at least one message", "too_short")
    try:
        return _BODY.validate_python(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = tuple(err.get("loc", ()))
            if loc and loc[0] in ("one", "many"):
                loc = loc[1:]
            errors.append({"loc": ("body", *loc), "msg": err.get("msg", "invalid"), "type": err.get("type")})
        raise _Refused(errors, _refusals(errors, data)) from None


def _refusals(errors: list[dict], data: Any) -> list[tuple[str | None, str]]:
    """(device, reason) for each message the schema refused, worded as the feed words its own refusals
    (`occupancy: Input should be … (and 1 more)`); one for a body that is neither a message nor a list."""
    by_message: dict[int | None, list[tuple]] = {}
    for err in errors:
        loc = err["loc"][1:]  # after "body"
        if isinstance(data, list) and loc and isinstance(loc[0], int):
            by_message.setdefault(loc[0], []).append((loc[1:], err["msg"]))
        else:
            by_message.setdefault(None, []).append((loc, err["msg"]))
    refusals = []
    for index, problems in by_message.items():
        message = data[index] if index is not None else data
        device = message.get("device_id") if isinstance(message, dict) else None
        (loc, msg), more = problems[0], len(problems) - 1
        where = ".".join(str(p) for p in loc) or ("message" if isinstance(message, dict) else "body")
        refusals.append((device if isinstance(device, str) else None,
                         f"{where}: {msg}" + (f" (and {more} more)" if more else "")))
    return refusals
