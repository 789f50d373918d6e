"""POST /api/v1/ingest/*: records in, all-or-nothing."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from signalwise.store import IntersectionRecord, ingest_records
from signalwise.store.ingest import BatchTooLarge, RecordError, ingest_json_array

from ..deps import EngineDep, SettingsDep
from ..errors import validation_body

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"])

#: generous upper bound of one record's JSON size, to refuse absurd bodies before parsing them
MAX_RECORD_BYTES = 16_384


@router.post("/simulation", status_code=201, summary="Store one intersection record")
def ingest_one(record: IntersectionRecord, engine: EngineDep) -> dict:
    """Store one record; a record with the same (simulation_id, timestamp, intersection_id) is replaced."""
    ingest_records(engine, [record])
    return {"ingested": 1}


def _too_large(message: str) -> JSONResponse:
    return JSONResponse({"message": message, "detail": message}, status_code=413)


@router.post(
    "/batch", status_code=201, summary="Store a batch of intersection records (all or nothing)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/IntersectionRecord"}}}}}},
    responses={413: {"description": "more records than the configured maximum"},
               422: {"description": "a record is invalid; the message names its index and field"}},
)
async def ingest_batch(request: Request, engine: EngineDep, settings: SettingsDep):  # noqa: ANN201
    """A JSON array of records. Any invalid record rejects the whole batch and nothing is written.

    The body is cut into its records and each is validated on its own; a
    large batch is validated by the store's worker processes while this one
    writes (`store/pipeline.py`). All of it runs on a worker thread so the
    event loop stays free.
    """
    limit = settings.max_batch_records
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit * MAX_RECORD_BYTES:
        return _too_large(f"body of {declared} bytes is larger than a batch of {limit} records can be")
    body = await request.body()
    try:
        count = await run_in_threadpool(ingest_json_array, engine, body, max_records=limit)
    except BatchTooLarge as exc:
        return _too_large(str(exc))
    except RecordError as exc:
        return validation_body([{**e, "loc": ("body", *e["loc"])} for e in exc.errors])
    return JSONResponse({"ingested": count}, status_code=201)
