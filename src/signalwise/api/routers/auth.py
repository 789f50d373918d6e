"""Exchange an API key for a short-lived token; manage keys (admin), each creation and revocation recorded
(who, in the key's row) and logged (one WARNING line on `signalwise.api.keys`, so the default level keeps it).
A key creates only keys whose scopes it holds: `admin` alone cannot make an `evidence` key (403); it revokes only
such keys, that expire no later than it does (403 otherwise), and itself."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Body, Header, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from signalwise.store import get_engine
from signalwise.store.keys import (
    SCOPES,
    ApiKeyError,
    ExpiryRefused,
    KeyNameInUse,
    RevocationRefused,
    ScopeNotHeld,
    check_name,
    check_scopes,
    create_key,
    grant_refusal,
    list_keys,
    revoke_key,
)
from signalwise.store.timefmt import utc_text

from ..auth import check_key, count_failure, issue_token, jwt_secret, key_memory, who
from ..deps import Moment
from ..errors import field_error, refusal

router = APIRouter(tags=["auth"])
log = logging.getLogger("signalwise.api.keys")


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
             responses={401: {"description": "no API key sent, or one the database refuses (unknown, revoked, "
                                             "expired)"}},
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
    created_by: str | None = Field(description="the name of the key that created it (`insecure` without one), or "
                                               "`cli:<user>`; null for a key stored before this was recorded")
    created_by_key_id: str | None = Field(description="the id of the key that created it")
    revoked_by: str | None = Field(description="who revoked it, as `created_by`")
    revoked_by_key_id: str | None = Field(description="the id of the key that revoked it")
    name_reserved: bool = Field(description="its name is one change logs give a meaning to (`restart`, `local`, …), "
                                            "or reads as one (an invisible character, a look-alike letter): "
                                            "stored before such names were refused; it works, but what it does "
                                            "cannot be told from what that name stands for: replace it")


class KeyCreate(BaseModel):
    # a key the body has no field for is refused (422 naming it), never ignored: `{"admin": true}` beside the
    # scopes made a key without admin, and answered 201 as if it had been taken
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, description=f"of {', '.join(SCOPES)}")
    expires_at: Moment | None = Field(None, description="ISO 8601 with a time zone; null = never")


class KeyCreated(KeyOut):
    key: str = Field(description="the key itself, `sw_…`: shown in this answer only, never stored")


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """An instant in UTC, written with `Z` as every time the API writes (a new key's expiry comes with the offset
    of the request that set it)."""
    return None if moment is None else moment.astimezone(dt.UTC)


def _out(k, model: type[KeyOut] = KeyOut, **extra) -> KeyOut:  # noqa: ANN001 - a KeyInfo
    return model(id=k.id, name=k.name, scopes=list(k.scopes), created_at=_utc(k.created_at),
                 expires_at=_utc(k.expires_at), revoked_at=_utc(k.revoked_at), last_used_at=_utc(k.last_used_at),
                 state=k.state(), created_by=k.created_by, created_by_key_id=k.created_by_key_id,
                 revoked_by=k.revoked_by, revoked_by_key_id=k.revoked_by_key_id, name_reserved=k.name_reserved,
                 **extra)


def _caller(request: Request) -> tuple[str, str | None]:
    """(name, key id) of who calls: the key's (a token's key too), or `insecure` under --insecure-no-auth."""
    principal = getattr(request.state, "principal", None)
    return who(request), getattr(principal, "key_id", None)


def _ungranted(principal, scopes: list[str]) -> list[str]:  # noqa: ANN001 - an auth.Principal or None
    """The known scopes asked for that the caller does not hold (`Principal.allows`): `admin` alone does not
    hold `evidence`, so it cannot give it to a key of its own making. Unknown ones are `create_key`'s 422."""
    known = [s for s in dict.fromkeys(scopes) if s in SCOPES]
    return known if principal is None else [s for s in known if not principal.allows(s)]


def _log_change(done: str, k, by: str, by_key_id: str | None) -> None:  # noqa: ANN001 - a KeyInfo
    """One line per key created or revoked: the key's id, name and scopes, and who (never the key itself)."""
    expiry = f"expires {k.expires_at.isoformat()}" if k.expires_at else "never expires"
    log.warning("API key sw_%s %r %s by %r%s: scopes %s, %s", k.id, k.name, done, by,
                f" (sw_{by_key_id})" if by_key_id else "", " ".join(k.scopes), expiry)


@router.get("/api/v1/keys", response_model=list[KeyOut], summary="Every API key (never the keys themselves)")
def keys(request: Request) -> list[KeyOut]:
    return [_out(k) for k in list_keys(get_engine(request.app.state.settings.database_url))]


@router.post("/api/v1/keys", status_code=201, response_model=KeyCreated,
             responses={403: {"description": "a scope the calling key does not hold itself"},
                        409: {"description": "an active key has that name"}},
             summary="Create a key; the key is in this answer only")
def new_key(request: Request, body: KeyCreate) -> KeyCreated:
    for field, check in (("name", check_name), ("scopes", check_scopes)):  # each refusal names its field
        try:
            check(getattr(body, field))
        except ApiKeyError as exc:
            raise field_error(("body", field), str(exc)) from None
    if body.expires_at is not None and body.expires_at <= dt.datetime.now(dt.UTC):
        raise field_error(("body", "expires_at"), f"{utc_text(body.expires_at)} has passed: such a key would never "
                                                  "work (null = a key that does not expire)")
    by, by_key_id = _caller(request)
    missing = _ungranted(getattr(request.state, "principal", None), body.scopes)
    if missing:
        raise HTTPException(403, grant_refusal(by, missing))
    # a key creates keys within its own scopes and expiry (`create_key` checks both again on the creator's row)
    try:
        info, key = create_key(get_engine(request.app.state.settings.database_url), body.name, body.scopes,
                               body.expires_at, created_by=by, creator_key_id=by_key_id)
    except ExpiryRefused as exc:
        raise field_error(("body", "expires_at"), str(exc)) from None
    except (KeyNameInUse, ScopeNotHeld) as exc:
        raise HTTPException(409 if isinstance(exc, KeyNameInUse) else 403, str(exc)) from None
    except ApiKeyError as exc:  # the calling key was revoked or removed meanwhile
        raise refusal(str(exc)) from None
    _log_change("created", info, by, by_key_id)
    return _out(info, KeyCreated, key=key)


@router.delete("/api/v1/keys/{id_or_name}", response_model=list[KeyOut],
               responses={403: {"description": "the key holds a scope the calling key does not, or outlives it "
                                               "(the command line revokes any key)"},
                          404: {"description": "no key of that id or name"}}, summary="Revoke a key (by id or name)")
def revoke(request: Request, id_or_name: str) -> list[KeyOut]:
    by, by_key_id = _caller(request)
    # a key revokes within its own scopes and expiry, as it creates (`revoke_key` checks, on the caller's row)
    try:
        revoked = revoke_key(get_engine(request.app.state.settings.database_url), id_or_name, by, by_key_id)
    except RevocationRefused as exc:
        raise HTTPException(403, str(exc)) from None
    except ApiKeyError as exc:
        raise HTTPException(404, str(exc)) from None
    memory = key_memory(request.app)
    for k in revoked:  # a revoked key is not taken from memory in a later outage
        memory.forget(k.id)
        _log_change("revoked", k, by, by_key_id)
    return [_out(k) for k in revoked]
