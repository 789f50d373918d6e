"""API keys: created with scopes (and an expiry), stored hashed, verified in constant time, revoked.

A key reads `sw_<id>_<secret>`: the id finds the row, the whole key's
SHA-256 is compared with `hmac.compare_digest`. The secret has 256 bits of
entropy, so a plain SHA-256 is enough (no slow password hash: a key is not a
password a person chose). The key is shown once, at creation.

Rotating a key: create the new one (same scopes), move the clients to it,
revoke the old one (`signalwise keys create`, then `signalwise keys revoke`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select, update

from .tables import ApiKey

#: what each scope allows; `admin` also holds every other scope but `evidence` (`api.auth.NOT_IMPLIED_BY_ADMIN`)
SCOPES = {
    "read": "analytics, snapshots, streams, predictions",
    "ingest": "records, event logs, detector feeds",
    "operate": "runtime changes, overrides, controller switch, deploy, rollback, training",
    "admin": "keys, cache, server configuration (and everything above; not evidence)",
    "evidence": "violation evidence images (each access is logged)",
}
PREFIX = "sw_"
#: `last_used_at` is a minute-precise figure
TOUCH_EVERY = dt.timedelta(minutes=1)


class ApiKeyError(ValueError):
    """A key that cannot be created, found or used: the reason, in one line."""


class KeyNameInUse(ApiKeyError):
    """A new key would share its name with an active one."""


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def state(self, now: dt.datetime | None = None) -> str:
        now = now or _now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, tuple(row.scopes.split()), row.created_at, row.expires_at, row.revoked_at,
                   row.last_used_at)


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}" if unknown
                        else f"a key needs at least one scope: {', '.join(SCOPES)}")
    return tuple(dict.fromkeys(scopes))


def create_key(engine: Engine, name: str, scopes: list[str] | tuple[str, ...],
               expires_at: dt.datetime | None = None) -> tuple[KeyInfo, str]:
    """A new key; returns its record and the key itself (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ApiKeyError("a key needs a name of 1 to 128 characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ApiKeyError("a key's name has no control characters (it is written into change logs and listings)")
    scopes = check_scopes(scopes)
    # one active key per name: revoking by name (`keys revoke NAME`) would otherwise revoke every key sharing it
    if any(k.name == name and k.state() == "active" for k in list_keys(engine)):
        raise KeyNameInUse(f"an active key is named {name!r}: revoke it first, or choose another name")
    if expires_at is not None and expires_at.tzinfo is None:
        raise ApiKeyError("the expiry needs a time zone")
    key_id = secrets.token_hex(5)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKey(id=key_id, name=name, scopes=" ".join(scopes), secret_sha256=_digest(key), created_at=_now(),
                 expires_at=expires_at)
    with engine.begin() as conn:
        conn.execute(ApiKey.__table__.insert().values(
            id=row.id, name=row.name, scopes=row.scopes, secret_sha256=row.secret_sha256,
            created_at=row.created_at, expires_at=row.expires_at))
    return _info(row), key


def verify_key(engine: Engine, key: str, touch: bool = True) -> KeyInfo:
    """The key's record if the key is valid and active; `ApiKeyError` saying why not (never which part was wrong)."""
    parts = key.strip().split("_", 2) if key else []
    if len(parts) != 3 or parts[0] + "_" != PREFIX:
        raise ApiKeyError("not a signalwise API key")
    t = ApiKey.__table__
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == parts[1])).first()
    # compare even when the id is unknown, so the time taken says nothing about which ids exist
    expected = row.secret_sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(expected, _digest(key.strip())) or row is None:
        raise ApiKeyError("unknown or wrong API key")
    info = KeyInfo(row.id, row.name, tuple(row.scopes.split()), row.created_at, row.expires_at, row.revoked_at,
                   row.last_used_at)
    state = info.state()
    if state != "active":
        raise ApiKeyError(f"API key {info.name!r} is {state}")
    now = _now()
    if touch and (info.last_used_at is None or now - info.last_used_at > TOUCH_EVERY):
        # at most one write a minute per key: a busy client must not turn every read into a write
        with engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == info.id).values(last_used_at=now))
    return info


def list_keys(engine: Engine) -> list[KeyInfo]:
    t = ApiKey.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.created_at)).all()
    return [KeyInfo(r.id, r.name, tuple(r.scopes.split()), r.created_at, r.expires_at, r.revoked_at,
                    r.last_used_at) for r in rows]


def revoke_key(engine: Engine, id_or_name: str) -> list[KeyInfo]:
    """Revoke the key with this id, or every active key with this name; returns what was revoked."""
    t = ApiKey.__table__
    now = _now()
    targets = [k for k in list_keys(engine) if k.revoked_at is None and id_or_name in (k.id, k.name)]
    if not targets:
        raise ApiKeyError(f"no active key with id or name {id_or_name!r}")
    with engine.begin() as conn:
        conn.execute(update(t).where(t.c.id.in_([k.id for k in targets])).values(revoked_at=now))
    return [KeyInfo(k.id, k.name, k.scopes, k.created_at, k.expires_at, now, k.last_used_at) for k in targets]


class KeyMemory:
    """The keys this process verified against the database, each with when (epoch s).

    While the database cannot be reached, a key verified within a grace period is taken from here with its
    scopes as last read, so operators keep control of a live run through a database outage. A key the database
    refuses (revoked, expired, unknown) is forgotten at once, so a revocation holds from the database's first
    answer. A key this process never verified is not here: it cannot be checked until the database answers.
    Keyed by the key's digest (the key itself is never kept) and by its id (a token names its key by id).
    """

    MAX_KEYS = 10_000  # cleared whole when full: a deployment has tens of keys

    def __init__(self) -> None:
        self._id_of_digest: dict[str, str] = {}
        self._by_id: dict[str, tuple[KeyInfo, float]] = {}
        self._lock = threading.Lock()

    def remember(self, info: KeyInfo, key: str | None = None) -> None:
        with self._lock:
            if len(self._by_id) >= self.MAX_KEYS:
                self._by_id.clear()
                self._id_of_digest.clear()
            self._by_id[info.id] = (info, time.time())
            if key is not None:
                self._id_of_digest[_digest(key.strip())] = info.id

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._by_id.pop(key_id, None)
            for digest in [d for d, i in self._id_of_digest.items() if i == key_id]:
                del self._id_of_digest[digest]

    def forget_key(self, key: str) -> None:
        """Forget the key this very key verified as (a wrong secret for a known id evicts nothing)."""
        with self._lock:
            key_id = self._id_of_digest.get(_digest(key.strip()))
        if key_id is not None:
            self.forget(key_id)

    def recall(self, grace_s: float, key: str | None = None, key_id: str | None = None) -> tuple[KeyInfo, float] | None:
        """(the key's record, seconds since it was verified) for a key verified within `grace_s` and still
        unexpired by its record; None otherwise."""
        with self._lock:
            if key is not None:
                key_id = self._id_of_digest.get(_digest(key.strip()))
            found = self._by_id.get(key_id) if key_id is not None else None
        if found is None:
            return None
        info, verified_at = found
        age_s = time.time() - verified_at
        if age_s > grace_s or info.state() != "active":
            return None
        return info, age_s
