"""Camera violations: analytics (`read`) and evidence images (`evidence`, every read logged).

- `GET /api/v1/analytics/violations`: a page of violations, newest first.
- `GET /api/v1/analytics/violations/trends`: per UTC hour or day and kind, over the asked range taken to whole
  hours (the counts' resolution), which the answer gives as `start` and `end`.
- `GET /api/v1/analytics/violations/hotspots`: per camera and approach, most first.
- `GET /api/v1/analytics/violations/summary`: totals.
- `GET /api/v1/evidence/violations/{id}`: the annotated JPEG, only while its
  bytes have the SHA-256 stored with the violation (409 and `tampered` in the
  log when not), the digest in `X-Evidence-SHA256`; who, when and which is
  logged, served or not: a key without `evidence` refused there (403) is
  logged as `refused`.
- `GET /api/v1/evidence/access`: that log (`admin`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response

from signalwise.store import get_engine
from signalwise.store import violations as store
from signalwise.store.timefmt import utc_text

from ..auth import Principal, record_refusals, who
from ..deps import CacheDep, EngineDep, Identifier, Moment, PageDep, cache_key, paged, time_range
from ..errors import field_error

router = APIRouter(tags=["violations"])

Kind = Annotated[Literal["red_light", "speeding"] | None, Query(description="only this kind")]
Camera = Annotated[Identifier | None, Query(description="only this camera")]
Start = Annotated[Moment | None, Query(description="from this instant (inclusive, ISO 8601 with zone)")]
End = Annotated[Moment | None, Query(description="until this instant (exclusive, ISO 8601 with zone)")]


@router.get("/api/v1/analytics/violations", summary="Camera violations, newest first")
def list_violations(engine: EngineDep, p: PageDep, start: Start = None, end: End = None, camera_id: Camera = None,
                    kind: Kind = None) -> dict:
    time_range(start, end)
    total, items = store.list_violations(engine, start, end, camera_id, kind, p.limit, p.offset)
    return paged(total, items, p)


@router.get("/api/v1/analytics/violations/trends", summary="Violations per hour or day (UTC) and kind")
def trends(engine: EngineDep, cache: CacheDep, request: Request,
           bucket: Annotated[Literal["hour", "day"], Query(description="hour or day (UTC)")] = "hour",
           start: Start = None, end: End = None, camera_id: Camera = None,
           approach: Annotated[Identifier | None, Query(description="only this approach (with camera_id)")] = None,
           kind: Kind = None) -> dict:
    time_range(start, end)
    if approach is not None and camera_id is None:
        raise field_error(("query", "approach"), "give camera_id too (approaches are named per camera)")
    items = cache.get_or_compute(cache_key(request), lambda: store.trends(engine, bucket, start, end, camera_id,
                                                                          approach, kind))
    # the range the counts answer for (`counted_range`: whole hours), so a caller comparing the totals with
    # `GET /api/v1/analytics/violations` knows which range to ask there
    lo, hi = store.counted_range(start, end)
    return {"bucket": bucket, "start": None if lo is None else utc_text(lo),
            "end": None if hi is None else utc_text(hi), "items": items}


@router.get("/api/v1/analytics/violations/hotspots", summary="Violations per camera and approach, most first")
def hotspots(engine: EngineDep, cache: CacheDep, request: Request, start: Start = None, end: End = None,
             kind: Kind = None, camera_id: Camera = None,
             limit: Annotated[int, Query(ge=1, le=1000, description="how many hotspots")] = 20) -> dict:
    time_range(start, end)
    items = cache.get_or_compute(cache_key(request), lambda: store.hotspots(engine, start, end, kind, camera_id, limit))
    return {"items": items}


@router.get("/api/v1/analytics/violations/summary", summary="Violation totals per kind")
def summary(engine: EngineDep, cache: CacheDep, request: Request, start: Start = None, end: End = None,
            camera_id: Camera = None) -> dict:
    time_range(start, end)
    return cache.get_or_compute(cache_key(request), lambda: store.summary(engine, start, end, camera_id))


EVIDENCE_PATH = "/api/v1/evidence/violations/{violation_id}"
#: the largest id the route takes (as its `Path` declares): a refusal of another names no violation, and is not
#: logged
MAX_VIOLATION_ID = 2**62


def _client(request) -> str | None:  # noqa: ANN001 - a Request or HTTPConnection
    return request.client.host if request.client else None


def _record_refused(conn, principal: Principal) -> None:  # noqa: ANN001 - the refused HTTPConnection
    """A key without `evidence` asked for an image (403, from `authorize`): logged with who, when, which and from
    where, as a served read is; an administrator trying to read evidence is what the log's reader looks for."""
    raw = str(conn.path_params.get("violation_id", ""))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and 1 <= int(raw) <= MAX_VIOLATION_ID):
        return
    store.log_refused_read(get_engine(conn.app.state.settings.database_url), int(raw), principal.name,
                           principal.key_id, _client(conn))


record_refusals(EVIDENCE_PATH, _record_refused)


#: the response header that carries the digest stored with the image ("unrecorded" for a row stored before the
#: store kept one), for whoever receives a copy to check it by
DIGEST_HEADER = "X-Evidence-SHA256"


@router.get(EVIDENCE_PATH, summary="A violation's evidence image (logged; served only while its SHA-256 matches)",
            response_class=Response, responses={
                200: {"content": {"image/jpeg": {}}},
                409: {"description": "the image on disk is not the one stored with the violation (its SHA-256 "
                                     "differs): not served, logged as tampered"},
                410: {"description": "retention removed the image, or its file is missing"}})
def evidence(violation_id: Annotated[int, Path(ge=1, le=MAX_VIOLATION_ID)], engine: EngineDep, request: Request):
    principal = getattr(request.state, "principal", None)
    result, image, digest = store.evidence_of(engine, violation_id, who(request), getattr(principal, "key_id", None),
                                              _client(request))
    if result == "unknown":
        raise HTTPException(404, f"no violation {violation_id}")
    if result == "gone":
        raise HTTPException(410, f"violation {violation_id} has no evidence image any more (retention, or the file "
                                 "was removed)")
    if result == "tampered":
        raise HTTPException(409, f"violation {violation_id}'s evidence image is not the one stored with it: its "
                                 f"SHA-256 is no longer {digest}; not served (logged as tampered)")
    return Response(image, media_type="image/jpeg",
                    headers={"Cache-Control": "no-store", DIGEST_HEADER: digest or "unrecorded"})


@router.get("/api/v1/evidence/access", summary="Who read which evidence image, when (admin)")
def evidence_access(engine: EngineDep, p: PageDep,
                    violation_id: Annotated[int | None, Query(ge=1, le=2**62)] = None) -> dict:
    total, items = store.evidence_access_log(engine, violation_id, p.limit, p.offset)
    return paged(total, items, p)
