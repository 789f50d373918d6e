"""Who may call what: API keys, short-lived tokens, and the scope every route declares.

- An API key (`signalwise keys create`) is sent as `X-API-Key: sw_…`, or
  exchanged at `POST /api/v1/auth/token` for a JWT (HS256, PyJWT) with `exp`
  and the key's scopes, sent as `Authorization: Bearer …`. Browsers cannot set
  headers on a WebSocket or an EventSource: streams also take `?token=`.
- Scopes: `read`, `ingest`, `operate`, `admin` (holds every scope but `evidence`), `evidence` (violation
  images: number plates and faces; only a key granted it explicitly reads them), `preempt` (preemption calls
  into a live run and nothing else: a fire department's dispatch system; `operate` holds it too).
- `ROUTE_SCOPES` is the one table of what each route needs; a route missing
  from it is refused (404 for unknown paths is FastAPI's; a route we add and
  forget to declare is a 500 in tests, never an open door).
- Local use stays easy: when the server listens on a loopback address, reads
  (`read` routes) are open without a key. Everything else needs its scope,
  unless the server was started with `--insecure-no-auth` (which warns). A stream (WebSocket, SSE)
  whose handshake carries the `Origin` of another site gets neither of those open doors: CORS does not
  guard a WebSocket, so a page the operator opens elsewhere would read the live run; it must send a key
  or token (`foreign_origin`).
- While the database cannot be reached, a key (or a token's key) this process verified within
  `key_cache_grace_s` is taken from its memory (`store.keys.KeyMemory`), so a live run stays under operators'
  control through a database outage; the answer's `X-Auth-Checked` header and the log say so.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
from fastapi import HTTPException
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from signalwise.listening import is_loopback
from signalwise.store.keys import SCOPES, ApiKeyError, KeyInfo, KeyMemory, holds, list_keys, verify_key

#: what a database that does not answer raises (a refused key is an `ApiKeyError`, a misnamed database a
#: `DatabaseURLError`: neither is an outage)
UNREACHABLE = (OperationalError, InterfaceError)

log = logging.getLogger("signalwise.api.auth")

ALGORITHM = "HS256"
OPEN = None  # no scope needed

#: (methods, path pattern) -> scope; patterns are the routes' own paths ({param} matches one segment)
ROUTE_SCOPES: list[tuple[frozenset[str], str, str | None]] = []


def _declare(methods: str, path: str, scope: str | None) -> None:
    ROUTE_SCOPES.append((frozenset(methods.split(",")), path, scope))


for _path in ("/health", "/health/live", "/health/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc",
              "/openapi.json", "/", "/dashboard", "/static/{path:path}", "/docs-assets/{path:path}"):
    _declare("GET,HEAD", _path, OPEN)
_declare("POST", "/api/v1/auth/token", OPEN)  # it needs the key it exchanges, checked by the route itself
_declare("GET,HEAD", "/api/v1/{rest:path}", "read")  # every read under /api/v1
_declare("POST", "/api/v1/ml/predict", "read")  # predictions change nothing
_declare("POST", "/api/v1/ml/predict/batch", "read")
_declare("POST", "/api/v1/ingest/{rest:path}", "ingest")
_declare("POST", "/api/v1/events/{rest:path}", "ingest")
_declare("POST", "/api/v1/live/feeds/{rest:path}", "ingest")
_declare("POST,PUT,DELETE", "/api/v1/live/{rest:path}", "operate")
_declare("POST", "/api/v1/live/preempt", "preempt")  # a dispatch system's key places calls and changes nothing else
_declare("POST,PUT,DELETE", "/api/v1/ml/{rest:path}", "operate")  # train, cancel, deploy, rollback
_declare("DELETE", "/api/v1/ml/models/{model_id}", "admin")  # deletes files nobody can bring back
_declare("POST", "/api/v1/ml/metrics", "ingest")  # figures measured elsewhere: stored data, nothing that runs
_declare("POST,PUT,DELETE", "/api/v1/streams/{rest:path}", "operate")
_declare("POST,PUT,DELETE", "/api/v1/streams", "operate")
_declare("POST,PUT,DELETE", "/api/v1/admin/{rest:path}", "admin")
_declare("POST,PUT,DELETE", "/api/v1/keys/{rest:path}", "admin")
_declare("POST,PUT,DELETE", "/api/v1/keys", "admin")
_declare("GET,HEAD", "/api/v1/keys", "admin")  # listing keys is an admin matter, not a read
_declare("GET,HEAD", "/api/v1/evidence/{rest:path}", "evidence")
_declare("GET,HEAD", "/api/v1/evidence/access", "admin")  # the log of who read evidence is not evidence
_declare("WEBSOCKET", "/api/v1/ws/{rest:path}", "read")


def _compile(pattern: str) -> re.Pattern:
    rx = re.sub(r"\{[^}:]+:path\}", ".+", pattern)
    rx = re.sub(r"\{[^}]+\}", "[^/]+", rx)
    return re.compile(f"^{rx}$")


_COMPILED = [(m, _compile(p), s, p) for m, p, s in ROUTE_SCOPES]


def scope_for(method: str, path: str) -> str | None:
    """The scope the route needs; the most specific declaration wins (the last that matches).

    Raises LookupError for a route nobody declared.
    """
    found = [(p, s) for methods, rx, s, p in _COMPILED if method in methods and rx.match(path)]
    if not found:
        raise LookupError(f"route {method} {path} declares no scope in signalwise.api.auth.ROUTE_SCOPES")
    # the declaration with the longest literal prefix is the most specific
    return max(found, key=lambda f: len(f[0].split("{")[0]))[1]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name (or `local` / `insecure`), with its scopes."""

    name: str
    scopes: frozenset[str]
    key_id: str | None = None
    via: str = "key"  # key | token | local | insecure
    #: why the key was checked from this process's memory (the database's error); None when the database answered
    memory_reason: str | None = None
    #: that reason is the store's schema revision (the database answers), not an outage
    memory_mismatch: bool = False

    def allows(self, scope: str) -> bool:
        """Granted it, or `admin` (all but evidence: `store.keys.NOT_IMPLIED_BY_ADMIN`)."""
        return holds(self.scopes, scope)


LOCAL_READER = Principal("local", frozenset({"read"}), via="local")
INSECURE = Principal("insecure", frozenset(SCOPES), via="insecure")


#: route path -> what records a caller refused there for lacking the route's scope (403), called in a worker
#: thread before the 403 is answered; registered by the route's own module (`record_refusals`)
REFUSAL_RECORDERS: dict[str, Callable[[HTTPConnection, Principal], None]] = {}


def record_refusals(path: str, recorder: Callable[[HTTPConnection, Principal], None]) -> None:
    """Have `authorize` call `recorder(conn, principal)` when it refuses a known caller at this route for lacking
    its scope: a route whose every access is logged (evidence images) logs the refused ones too. A 401 (no
    credential, or one refused) is not passed on: it names nobody, and anyone may send one."""
    REFUSAL_RECORDERS[path] = recorder


async def _record_refusal(conn: HTTPConnection, path: str, principal: Principal) -> None:
    recorder = REFUSAL_RECORDERS.get(path)
    if recorder is None:
        return
    try:
        await run_in_threadpool(recorder, conn, principal)
    except Exception as exc:  # noqa: BLE001 - the refusal stands whether or not it could be recorded
        log.warning("%s %s: the refusal of %r could not be recorded: %s", conn.scope.get("method", ""), path,
                    principal.name, _db_error(exc))


def issue_token(key: KeyInfo, secret: str, ttl_s: int) -> tuple[str, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    exp = now + dt.timedelta(seconds=ttl_s)
    if key.expires_at is not None:
        exp = min(exp, key.expires_at)
    claims = {"sub": key.name, "kid": key.id, "scopes": list(key.scopes), "iat": now, "exp": exp,
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm=ALGORITHM), exp


#: tokens already verified, with their expiry (epoch s): a busy client sends the same token hundreds of times
#: a second, and re-checking its HMAC and claims was a fifth of a prediction's CPU. Keyed by secret and token,
#: so a changed secret verifies afresh; bounded, and cleared whole when full (tokens live minutes).
_VERIFIED: dict[tuple[str, str], tuple[Principal, float]] = {}
_VERIFIED_MAX = 4096


def decode_token(token: str, secret: str) -> Principal:
    known = _VERIFIED.get((secret, token))
    if known is not None and known[1] > time.time():
        return known[0]
    principal, exp_s = _decode(token, secret)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[(secret, token)] = (principal, exp_s)
    return principal


#: the 401's reason for a bearer that is no JWT (segments, base64, JSON of its header or claims)
MALFORMED_TOKEN = "not a token this server issued (malformed)"


def _decode(token: str, secret: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise HTTPException(401, "token expired: exchange your API key for a new one at POST /api/v1/auth/token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    except jwt.InvalidSignatureError as exc:
        raise HTTPException(401, f"invalid token: {exc}",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    except jwt.DecodeError as exc:  # no JWT at all: its decoder's words (codecs, offsets) are for the log
        log.debug("invalid token: %s", exc)
        raise HTTPException(401, f"invalid token: {MALFORMED_TOKEN}",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    except jwt.InvalidTokenError as exc:
        raise HTTPException(401, f"invalid token: {exc}",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    scopes = claims.get("scopes")
    if not isinstance(scopes, list):
        raise HTTPException(401, "invalid token: no scopes")
    principal = Principal(str(claims["sub"]), frozenset(map(str, scopes)), claims.get("kid"), via="token")
    return principal, float(claims["exp"])


def jwt_secret(settings) -> str:
    """The signing secret: the configured one, else one made for this process (tokens end with it)."""
    return settings.jwt_secret or _PROCESS_SECRET


_PROCESS_SECRET = secrets.token_urlsafe(48)


#: said after a refusal when a request sent both credentials: the token is the one read (`_credentials`)
BOTH_SENT = ("; the request sent both Authorization: Bearer and X-API-Key: the bearer token is the credential "
             "read, the key is not")


def _both_sent(conn: HTTPConnection) -> bool:
    return conn.headers.get("authorization", "")[:7].lower() == "bearer " and bool(conn.headers.get("x-api-key"))


def _credentials(conn: HTTPConnection) -> tuple[str, str] | None:
    """("token" | "key", value): a bearer token when `Authorization: Bearer` comes, whatever else does (an
    `X-API-Key` beside it is not read); else the `X-API-Key`; else, on a stream, `?token=`."""
    auth = conn.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return "token", auth[7:].strip()
    key = conn.headers.get("x-api-key")
    if key:
        return "key", key.strip()
    if conn.scope.get("type") == "websocket" or conn.url.path.startswith(("/api/v1/sse/", "/api/v1/ws/")):
        token = conn.query_params.get("token")
        if token:
            return "token", token
    return None


#: what `verify_key` says of a key this server's database does not hold
UNKNOWN_KEY = "unknown or wrong API key"
#: said after it: the usual cause is a key made in another database (`keys create` without the server's --db,
#: so into sqlite:///signalwise.db). The URL itself is never told to a caller who is not authenticated, nor is
#: anything else of the server (which database, how many keys): the operator finds it in the start-up line.
UNKNOWN_KEY_HINT = ("; keys are checked in this server's own database (its --db, else SIGNALWISE_DATABASE_URL): "
                    "a key made with `signalwise keys create` for another database is unknown here; "
                    "`signalwise keys list --db URL`, with the URL the server was started with, lists the keys it "
                    "knows (its start-up line names that database)")


def authenticate(conn: HTTPConnection) -> Principal | None:
    """The caller, from a bearer token or an API key; None when it sent neither; 401 for a bad one."""
    found = _credentials(conn)
    if found is None:
        return None
    kind, value = found
    app = conn.app
    if kind == "token":
        return decode_token(value, jwt_secret(app.state.settings))
    info, reason, mismatch = _check_key(app, value)
    return Principal(info.name, frozenset(info.scopes), info.id, via="key", memory_reason=reason,
                     memory_mismatch=mismatch is not None)


def key_memory(app) -> KeyMemory:
    """The app's memory of verified keys (made on first use: tests build apps in many ways)."""
    memory = getattr(app.state, "key_memory", None)
    if memory is None:
        memory = app.state.key_memory = KeyMemory()
    return memory


def check_key(app, key: str) -> tuple[KeyInfo, str | None]:
    """(the key's record, None) as the database has it; while the database cannot be reached, (the record as
    last read, the database's error) for a key this process verified within `key_cache_grace_s`.

    401 for a key the database refuses (it is forgotten: a revoked key stops at the database's first answer);
    503 for one that cannot be checked (never verified here, or too long ago)."""
    info, reason, _mismatch = _check_key(app, key)
    return info, reason


def _check_key(app, key: str) -> tuple[KeyInfo, str | None, str | None]:
    """`check_key`, and the store's schema mismatch when that is why the key was taken from memory."""
    from signalwise.store import get_engine

    settings = app.state.settings
    memory = key_memory(app)
    try:
        info = verify_key(get_engine(settings.database_url), key)
    except ApiKeyError as exc:
        memory.forget_key(key)
        raise key_refused(exc) from None
    except DBAPIError as exc:
        reason, mismatch = _unchecked(app, exc)
        found = memory.recall(settings.key_cache_grace_s, key=key)
        if found is None:  # the database's error is for the log: nothing of the server is told to a stranger
            log.warning("%s (%s): a key this server has not verified within the grace period was refused with 503",
                        "database unreachable" if mismatch is None else "keys cannot be read", reason)
            raise HTTPException(503, f"{_cannot_check(mismatch)}; API keys are checked in the database and "
                                     f"this server has not verified this key in the last "
                                     f"{settings.key_cache_grace_s:g} s (SIGNALWISE_KEY_CACHE_GRACE_S), so it "
                                     f"cannot be checked until {_checkable(mismatch)}",
                                headers={"Retry-After": "5"}) from None
        _from_memory(app, found[0], found[1], reason, mismatch)
        return found[0], reason, mismatch
    memory.remember(info, key)
    _database_back(app)
    return info, None, None


def _unchecked(app, exc: DBAPIError) -> tuple[str, str | None]:  # noqa: ANN001 - a FastAPI app
    """Why a key could not be checked, for the log, and the store's schema mismatch when that is why (`errors.
    schema_mismatch`: a store taken to another revision under this server, whose key table this release cannot
    read; SQLite's "no such column" is an OperationalError, as an outage is). Re-raises `exc` when it is neither
    an outage nor a mismatch (a bug: a 500)."""
    from .errors import schema_mismatch

    mismatch = schema_mismatch(app, exc)
    if mismatch is None and not isinstance(exc, UNREACHABLE):
        raise exc
    return (mismatch or _db_error(exc)), mismatch


def _cannot_check(mismatch: str | None) -> str:
    """How a 503 for a key that cannot be checked begins: the database does not answer, or the store is at
    another schema revision (both revisions and what to do; `/health/ready` tells anyone the same)."""
    return "database unavailable" if mismatch is None else f"database unavailable: {mismatch}"


def _checkable(mismatch: str | None) -> str:
    return "the database answers" if mismatch is None else "the store is at this release's schema revision"


def _db_error(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


def _from_memory(app, info: KeyInfo, age_s: float, reason: str, mismatch: str | None) -> None:
    """Logs, once per key until the database answers again, that a key was taken from memory."""
    noted = _noted(app)
    if info.id in noted:
        return
    noted.add(info.id)
    log.warning("%s (%s): key %r (sw_%s) checked from this server's memory, as verified %.0f s ago, with scopes %s",
                _memory_cause(mismatch), reason, info.name, info.id, age_s, " ".join(info.scopes))


def _memory_cause(mismatch: str | None) -> str:
    """Why keys are checked from memory, as `X-Auth-Checked` and the log say it."""
    return MEMORY_UNREACHABLE if mismatch is None else MEMORY_MISMATCH


def _noted(app) -> set[str]:
    noted = getattr(app.state, "keys_from_memory", None)
    if noted is None:
        noted = app.state.keys_from_memory = set()
    return noted


def _database_back(app) -> None:
    noted = getattr(app.state, "keys_from_memory", None)
    if noted:
        log.warning("the database answers again: keys are checked in it (%d were checked from memory)", len(noted))
        noted.clear()


def key_refused(exc: ApiKeyError) -> HTTPException:
    """The 401 for a key the database refuses; an unknown one with where keys are looked up (`UNKNOWN_KEY_HINT`)."""
    hint = UNKNOWN_KEY_HINT if str(exc) == UNKNOWN_KEY else ""
    return HTTPException(401, f"{exc}{hint}", headers={"WWW-Authenticate": "Bearer"})


def describe_credential(conn: HTTPConnection) -> str:
    """What the caller sent, for the log: a key by its public id (`sw_<id>`), never the key or a token."""
    found = _credentials(conn)
    if found is None:
        return "no credential"
    kind, value = found
    if kind == "token":
        return "a bearer token"
    match = re.match(r"^sw_([0-9a-f]{10})_", value)
    return f"key sw_{match.group(1)}" if match else f"an X-API-Key that is not a signalwise key ({len(value)} characters)"


async def authorize(conn: HTTPConnection) -> Principal | None:
    """App-wide: what the matched route needs, and whether this caller has it (401 / 403 say why not)."""
    route = conn.scope.get("route")
    path = getattr(route, "path", conn.url.path)
    method = "WEBSOCKET" if conn.scope.get("type") == "websocket" else conn.scope.get("method", "GET")
    try:
        needed = scope_for(method, path)
    except LookupError as exc:
        raise HTTPException(500, str(exc)) from None
    if needed is OPEN:  # whatever credential comes along: a probe or a page sending a stale key is not refused
        conn.state.authorized = True
        return None
    settings = conn.app.state.settings
    try:
        # in a worker thread: a key check waits on the database, and a database slow to answer (or away until a
        # connect timeout) must not hold the event loop, and every other request with it
        principal = await run_in_threadpool(authenticate, conn)
    except HTTPException as exc:
        if exc.status_code == 401:
            count_failure(conn, exc)
            if _both_sent(conn):
                raise HTTPException(401, f"{exc.detail}{BOTH_SENT}", headers=exc.headers) from None
        raise
    if principal is None:
        origin = foreign_origin(conn)
        if origin is not None:
            raise HTTPException(403, f"{method} {path} from a page of {origin} needs an API key or token: reads "
                                     "open without one are for this server's own pages and SIGNALWISE_CORS_ORIGINS "
                                     "(pass ?token= from POST /api/v1/auth/token)")
        if settings.insecure_no_auth:
            principal = INSECURE
        elif needed == "read" and settings.open_reads_on_loopback and is_loopback(settings.bind_host):
            principal = LOCAL_READER
        else:
            raise HTTPException(401, f"{method} {path} needs an API key or token with scope {needed!r} "
                                     "(X-API-Key header, or Authorization: Bearer from POST /api/v1/auth/token)",
                                headers={"WWW-Authenticate": "Bearer"})
    conn.state.principal = principal
    if not principal.allows(needed):
        await _record_refusal(conn, path, principal)
        raise HTTPException(403, f"{principal.name!r} lacks scope {needed!r} for {method} {path} "
                                 f"(it has {', '.join(sorted(principal.scopes))})"
                                 f"{BOTH_SENT if _both_sent(conn) else ''}")
    if principal.via == "token" and needed != "read":
        unchecked, key_scopes = await run_in_threadpool(_check_token_key, conn, principal)
        reason, mismatch = unchecked if unchecked is not None else (None, None)
        # a token carries no more than its key holds now: a key narrowed since, or claims signed by whoever
        # learnt the secret, give nothing the key lacks
        held = frozenset(s for s in principal.scopes if holds(key_scopes, s))
        principal = conn.state.principal = Principal(principal.name, held, principal.key_id, principal.via,
                                                     reason, mismatch is not None)
        if not principal.allows(needed):
            await _record_refusal(conn, path, principal)
            raise HTTPException(403, f"{principal.name!r} lacks scope {needed!r} for {method} {path}: its token "
                                     f"names it, but the key it was issued for holds {', '.join(key_scopes)}")
    if principal.memory_reason is not None:
        conn.state.auth_headers = MEMORY_MISMATCH_HEADER if principal.memory_mismatch else MEMORY_HEADER
    conn.state.authorized = True  # `errors`: a body refused before this ran is answered after it has
    return principal


def foreign_origin(conn: HTTPConnection) -> str | None:
    """The `Origin` of a stream handshake from another site (None: no Origin, this server's own, or one of
    SIGNALWISE_CORS_ORIGINS). Browsers send Origin on every WebSocket and EventSource; other clients send none.

    This server's own origin is its Host header; on a loopback server that host must be a loopback one too, so a
    name an attacker points at 127.0.0.1 (DNS rebinding) is not taken for it."""
    if conn.scope.get("type") != "websocket" and not conn.url.path.startswith("/api/v1/sse/"):
        return None
    origin = conn.headers.get("origin")
    if origin is None:
        return None
    allowed = conn.app.state.settings.cors_origins or ()
    if "*" in allowed or origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in allowed}:
        return None
    parts = urlsplit(origin)
    host = conn.headers.get("host", "")
    own = parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc.lower() == host.lower()
    if own and is_loopback(conn.app.state.settings.bind_host):
        own = is_loopback(parts.hostname)
    return None if own else origin


#: why keys are checked from memory: the database does not answer, or its store is at another schema revision
MEMORY_UNREACHABLE, MEMORY_MISMATCH = "database unreachable", "store at another schema revision"
#: the header an answer carries when its key was checked from memory (the database's error is in the log)
MEMORY_HEADER = {"X-Auth-Checked": f"memory; {MEMORY_UNREACHABLE}"}
#: the same, when the database answers but its store is at another schema revision than this release's
MEMORY_MISMATCH_HEADER = {"X-Auth-Checked": f"memory; {MEMORY_MISMATCH}"}


def count_failure(conn: HTTPConnection, exc: HTTPException) -> None:
    """A refused credential counts against its client address (`auth_failure`): past the limit the answer is
    429, so a client retrying a bad key backs off; a good key is never refused by it."""
    limits = getattr(conn.app.state, "rate_limits", None)
    if limits is None:
        return
    retry = limits.auth_failure(conn.client.host if conn.client else "?")
    if retry is not None:
        raise HTTPException(429, f"too many refused credentials from this address; retry in {retry} s "
                                 f"(the last: {exc.detail})", headers={"Retry-After": str(retry)}) from None


def _check_token_key(conn: HTTPConnection, principal: Principal
                     ) -> tuple[tuple[str, str | None] | None, tuple[str, ...]]:
    """(None or why the key was checked from memory, the key's scopes now); 401 unless the key a token was
    issued for is still active. Checked on calls that need more than `read`
    (a revoked admin key's token could otherwise make itself a new key); reads with the token go on until its
    `exp`, since a verified token is remembered and predictions must not pay a database read each.

    While the database cannot be reached, a key this process verified within the grace period passes ((the
    database's error, the store's schema mismatch or None) is returned, with its scopes as last read); one it
    has not is a 503, whose answer never holds the database's error (it is logged)."""
    from signalwise.store import get_engine

    app = conn.app
    memory = key_memory(app)
    settings = app.state.settings
    try:
        keys = list_keys(get_engine(settings.database_url))
    except DBAPIError as exc:
        reason, mismatch = _unchecked(app, exc)
        found = memory.recall(settings.key_cache_grace_s, key_id=principal.key_id)
        if found is None:  # the database's error is for the log (it may name the database's host), as check_key's
            log.warning("%s (%s): a token of a key this server has not verified within the grace period was "
                        "refused with 503", "database unreachable" if mismatch is None else "keys cannot be read",
                        reason)
            raise HTTPException(503, f"{_cannot_check(mismatch)}; this server has not verified the API key "
                                     f"this token was issued for ({principal.name!r}) in the last "
                                     f"{settings.key_cache_grace_s:g} s (SIGNALWISE_KEY_CACHE_GRACE_S), so it "
                                     f"cannot be checked until {_checkable(mismatch)}",
                                headers={"Retry-After": "5"}) from None
        _from_memory(app, found[0], found[1], reason, mismatch)
        return (reason, mismatch), found[0].scopes
    key = next((k for k in keys if principal.key_id is not None and k.id == principal.key_id), None)
    state = "unknown to this server's database" if key is None else key.state()
    if state != "active":
        if principal.key_id is not None:
            memory.forget(principal.key_id)
        raise HTTPException(401, f"the API key this token was issued for ({principal.name!r}) is {state}: "
                                 "exchange an active key at POST /api/v1/auth/token",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    memory.remember(key)
    _database_back(app)
    return None, key.scopes


def writer_key_id(conn: HTTPConnection) -> str:
    """What a write records as its author: the id of the caller's key (a token's too), or `insecure` under
    --insecure-no-auth (stored writes: `store.writers.run_ids`, `sent_by_key_id`)."""
    principal = getattr(conn.state, "principal", None)
    if principal is None:
        return "local"
    return principal.key_id or principal.name[:16]


def who(conn: HTTPConnection) -> str:
    """The name a change is recorded under: the key's name, `local`, or `insecure`."""
    principal = getattr(conn.state, "principal", None)
    return principal.name if principal is not None else "local"


def app_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route of an app, included routers too ("WEBSOCKET" for WebSocket routes)."""
    from starlette.routing import Mount

    out: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount):
            continue  # static files (the docs' assets): no dependencies run there; they are open by design
        contexts = getattr(route, "effective_route_contexts", None)
        # an included WebSocket route's context leaves `path` empty; its starlette_route holds it
        items = [(getattr(c, "methods", None), c.path or getattr(c.starlette_route, "path", "")) for c in contexts()] \
            if callable(contexts) else [(getattr(route, "methods", None), route.path)]
        for methods, path in items:
            out.update((m, path) for m in methods) if methods else out.add(("WEBSOCKET", path))
    return sorted(out)
