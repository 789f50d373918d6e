"""Exchange an API key for a short-lived token; manage keys (admin)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Body, Header, HTTPException, Request, Response
from pydantic import BaseModel, Field

from signalwise.store import get_engine
from signalwise.store.keys import (
    SCOPES,
    ApiKeyError,
    KeyNameInUse,
    create_key,
    list_keys,
    revoke_key,
)

from ..auth import check_key, count_failure, issue_token, jwt_secret, key_memory
from ..deps import Moment

router = APIRouter(tags=["auth"])


class TokenRequest(BaseModel):
    api_key: str | None = Field(None, max_length=200,
                                description="the key to exchange; without it (empty, or no body), the X-API-Key header")


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
    expires_at: dt.datetime
    scopes: list[str]


@router.post("/api/v1/auth/token", response_model=Token,
             summary="Exchange an API key for a short-lived JWT (HS256) with the key's scopes")
def token(request: Request, response: Response, body: Annotated[TokenRequest | None, Body()] = None,
          x_api_key: Annotated[str | None, Header()] = None) -> Token:
    key = (body.api_key if body is not None else None) or x_api_key
    if not key:
        raise HTTPException(401, "send the API key to exchange: X-API-Key header or {\"api_key\": ...}")
    settings = request.app.state.settings
    # as any route checks a key: refused with 401, from memory while the database does not answer
    try:
        info, memory_reason = check_key(request.app, key)
    except HTTPException as exc:
        if exc.status_code == 401:
            count_failure(request, exc)
        raise
    if memory_reason is not None:  # a token outlives the outage by its lifetime: one made from memory would carry a
        # key revoked meanwhile past the database's return; the key itself still works from memory
        raise HTTPException(503, "database unavailable: tokens are issued only while the database answers; send "
                                 "the API key itself (X-API-Key) meanwhile", headers={"Retry-After": "5"})
    value, exp = issue_token(info, jwt_secret(settings), settings.token_ttl_s)
    return Token(access_token=value, expires_in=int((exp - dt.datetime.now(dt.UTC)).total_seconds()),
                 expires_at=exp, scopes=list(info.scopes))


class KeyOut(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    state: str = Field(description="active | expired | revoked")


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, description=f"of {', '.join(SCOPES)}")
    expires_at: Moment | None = Field(None, description="ISO 8601 with a time zone; null = never")


def _out(k) -> KeyOut:
    return KeyOut(id=k.id, name=k.name, scopes=list(k.scopes), created_at=k.created_at, expires_at=k.expires_at,
                  revoked_at=k.revoked_at, last_used_at=k.last_used_at, state=k.state())


@router.get("/api/v1/keys", response_model=list[KeyOut], summary="Every API key (never the keys themselves)")
def keys(request: Request) -> list[KeyOut]:
    return [_out(k) for k in list_keys(get_engine(request.app.state.settings.database_url))]


@router.post("/api/v1/keys", status_code=201, summary="Create a key; the key is in this answer only")
def new_key(request: Request, body: KeyCreate) -> dict:
    if body.expires_at is not None and body.expires_at <= dt.datetime.now(dt.UTC):
        raise HTTPException(422, f"body.expires_at: {body.expires_at.isoformat()} has passed: such a key would "
                                 "never work (null = a key that does not expire)")
    try:
        info, key = create_key(get_engine(request.app.state.settings.database_url), body.name, body.scopes,
                               body.expires_at)
    except ApiKeyError as exc:
        raise HTTPException(409 if isinstance(exc, KeyNameInUse) else 422, str(exc)) from None
    return {**_out(info).model_dump(mode="json"), "key": key}


@router.delete("/api/v1/keys/{id_or_name}", response_model=list[KeyOut], summary="Revoke a key (by id or name)")
def revoke(request: Request, id_or_name: str) -> list[KeyOut]:
    try:
        revoked = revoke_key(get_engine(request.app.state.settings.database_url), id_or_name)
    except ApiKeyError as exc:
        raise HTTPException(404, str(exc)) from None
    memory = key_memory(request.app)
    for k in revoked:  # a revoked key is not taken from memory in a later outage
        memory.forget(k.id)
    return [_out(k) for k in revoked]
