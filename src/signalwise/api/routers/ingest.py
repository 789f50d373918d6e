"""POST /api/v1/ingest/*: records in, all-or-nothing.

Neither route declares a body parameter: FastAPI reads and parses such a body before any dependency runs, the
app's `authorize` included, so a caller without a key could make the server read a body of any size. These
read theirs after the caller is authorized, bounded while it streams by the app's `BodyLimit` (one record:
its default 1 MiB; a batch: `batch_limit_bytes`), with 413 past the bound.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from signalwise.store import IntersectionRecord, Settings, ingest_records
from signalwise.store.ingest import BatchTooLarge, RecordError, RunNotWritable, ingest_json_array

from ..auth import writer_key_id
from ..deps import EngineDep, SettingsDep
from ..errors import validation_body
from ..middleware import json_body

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"])

#: generous upper bound of one record's JSON size, to refuse absurd bodies before parsing them
MAX_RECORD_BYTES = 16_384


def batch_limit_bytes(settings: Settings) -> int:
    """The largest body `/batch` reads: its most records (`max_batch_records`) of `MAX_RECORD_BYTES` each."""
    return settings.max_batch_records * MAX_RECORD_BYTES


def _inline(schema: dict) -> dict:
    """`schema` with its nested models (`$defs`) written where they are used: no route declares a record as a
    body parameter, so nothing puts them among the OpenAPI schema's components for a `$ref` to name."""
    defs = schema.pop("$defs", {})

    def resolve(node):  # noqa: ANN001, ANN202 - JSON
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            return resolve(defs[ref.rsplit("/", 1)[-1]]) if ref else {k: resolve(v) for k, v in node.items()}
        return [resolve(v) for v in node] if isinstance(node, list) else node
    return resolve(schema)


_RECORD_SCHEMA = _inline(IntersectionRecord.model_json_schema())


def _body_schema(schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _too_large(message: str) -> JSONResponse:
    return JSONResponse({"message": message, "detail": message}, status_code=413)


def _not_writable(exc: RunNotWritable) -> JSONResponse:
    """409: the records name a run that ingestion did not create (a published or live run); nothing is written."""
    return JSONResponse({"message": str(exc), "detail": str(exc), "simulation_id": exc.simulation_id},
                        status_code=409)


_CONFLICT = {409: {"description": "a record names a simulation that ingested records did not create (a run stored "
                                  "by `signalwise run --db`, `compare --db`, `publish` or a live run); nothing is "
                                  "written"}}


@router.post("/simulation", status_code=201, summary="Store one intersection record",
             openapi_extra=_body_schema(_RECORD_SCHEMA),
             responses={**_CONFLICT, 413: {"description": "the body is larger than 1 MiB"},
                        422: {"description": "the record is invalid; the message names its field"}})
async def ingest_one(request: Request, engine: EngineDep) -> dict:
    """Store one record; a record with the same (simulation_id, timestamp, intersection_id) is replaced. Only
    into a simulation that ingested records created; the row keeps the id of the key that sent it."""
    body = await json_body(request)
    try:
        await run_in_threadpool(_store_one, engine, body, writer_key_id(request))
    except RunNotWritable as exc:
        return _not_writable(exc)
    return {"ingested": 1}


def _store_one(engine, body: bytes, sender: str) -> None:  # noqa: ANN001 - an Engine
    try:
        record = IntersectionRecord.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                                     ) from None
    ingest_records(engine, [record], sender=sender)


@router.post(
    "/batch", status_code=201, summary="Store a batch of intersection records (all or nothing)",
    openapi_extra=_body_schema({"type": "array", "minItems": 1, "items": _RECORD_SCHEMA}),
    responses={**_CONFLICT,
               413: {"description": "more records than the configured maximum, or a body larger than that many "
                                    f"records can be ({MAX_RECORD_BYTES} bytes each)"},
               422: {"description": "a record is invalid; the message names its index and field"}},
)
async def ingest_batch(request: Request, engine: EngineDep, settings: SettingsDep):  # noqa: ANN201
    """A JSON array of records. Any invalid record rejects the whole batch and nothing is written.

    The body is cut into its records and each is validated on its own; a
    large batch is validated by the store's worker processes while this one
    writes (`store/pipeline.py`). All of it runs on a worker thread so the
    event loop stays free.
    """
    body = await request.body()  # at most `batch_limit_bytes`, or 413 (`BodyLimit`), read after authorizing
    try:
        count = await run_in_threadpool(ingest_json_array, engine, body, max_records=settings.max_batch_records,
                                        sender=writer_key_id(request))
    except BatchTooLarge as exc:
        return _too_large(str(exc))
    except RunNotWritable as exc:
        return _not_writable(exc)
    except RecordError as exc:
        return validation_body([{**e, "loc": ("body", *e["loc"])} for e in exc.errors])
    return JSONResponse({"ingested": count}, status_code=201)
